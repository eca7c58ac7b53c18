"""FriendshipHandlers with an in-memory unit of work: exactly once, rollback unless committed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from friendship.domain.friendship import ApplyCommand
from friendship.domain.levels import Level, LevelThresholds
from friendship.domain.rules import RuleSet
from friendship.domain.scoring import AnalysisInput, Emotion, ScoreWeights
from friendship.domain.validation import InvalidRequest
from friendship.handlers import FriendshipHandlers
from tests.unit.friendship.fakes import FakeUnitOfWork, Tables

NOW = datetime(2025, 5, 1, tzinfo=UTC)


def make() -> tuple[FriendshipHandlers, Tables]:
    committed = Tables()
    handlers = FriendshipHandlers(
        lambda: FakeUnitOfWork(committed),
        default_rules=RuleSet("v1", ScoreWeights(), LevelThresholds()),
        clock=lambda: NOW,
    )
    return handlers, committed


def cmd(conversation_id: str, turns: int, emotion: Emotion = Emotion.NEUTRAL) -> ApplyCommand:
    return ApplyCommand(conversation_id, "user-1", "bot-1", "math",
                        AnalysisInput(turns, 0, emotion, 0, "local"))


def test_unknown_user_is_a_stranger() -> None:
    handlers, _ = make()
    view = handlers.get_level("nobody")
    assert (view.level, view.score, view.next_level_score, view.conversations) == (
        Level.STRANGER, 0, 100, 0
    )
    assert view.updated_at is None
    assert handlers.get_topic_metrics("nobody") == []


def test_apply_once_then_repeat_changes_nothing() -> None:
    handlers, committed = make()
    first = handlers.apply_conversation(cmd("c1", 210))
    assert (first.applied, first.score_change, first.score, first.level) == (
        True, 105, 105, Level.ACQUAINTANCE
    )
    again = handlers.apply_conversation(cmd("c1", 210))
    assert (again.applied, again.score_change, again.score) == (False, 105, 105)
    assert committed.status["user-1"].conversations == 1
    assert committed.topics[("user-1", "math")].turns == 210


def test_repeat_does_not_create_a_user_for_another_user_id() -> None:
    handlers, committed = make()
    handlers.apply_conversation(cmd("c1", 2))
    other = ApplyCommand("c1", "user-2", "bot-1", "", AnalysisInput(2, 0, Emotion.NEUTRAL, 0))
    assert handlers.apply_conversation(other).applied is False
    assert "user-2" not in committed.status


def test_score_change_is_the_formula_total_even_at_the_floor() -> None:
    handlers, _ = make()
    result = handlers.apply_conversation(cmd("c1", 2, Emotion.BORING))
    assert (result.score_change, result.score) == (-14, 0)


def test_invalid_user_id_is_refused() -> None:
    handlers, _ = make()
    with pytest.raises(InvalidRequest):
        handlers.get_level("not valid")
