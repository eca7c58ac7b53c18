"""FriendshipHandlers report committed changes (the GetLevel cache forgets them at once)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from friendship.domain.friendship import ApplyCommand
from friendship.domain.levels import LevelThresholds
from friendship.domain.rules import RuleMode, RuleSet
from friendship.domain.scoring import AnalysisInput, Emotion, ScoreWeights
from friendship.handlers import ConversationErased, FriendshipHandlers
from servicekit.erasure import erasure_hash
from tests.unit.friendship.fakes import FakeUnitOfWork, Tables

NOW = datetime(2025, 5, 1, tzinfo=UTC)


def make(committed: Tables | None = None) -> tuple[FriendshipHandlers, list[str]]:
    committed = committed or Tables()
    changes: list[str] = []
    handlers = FriendshipHandlers(
        lambda: FakeUnitOfWork(committed),
        default_rules=RuleSet("v1", ScoreWeights(), LevelThresholds()),
        clock=lambda: NOW,
        on_user_changed=changes.append,
        on_rules_changed=lambda: changes.append("*rules*"),
    )
    return handlers, changes


def cmd(conversation_id: str, user_id: str = "user-1") -> ApplyCommand:
    return ApplyCommand(conversation_id, user_id, "bot-1", "math",
                        AnalysisInput(10, 0, Emotion.NEUTRAL, 0, "local"))


def test_apply_reports_the_user_once_committed_and_a_repeat_reports_nothing() -> None:
    handlers, changes = make()
    handlers.apply_conversation(cmd("c1"))
    assert changes == ["user-1"]
    handlers.apply_conversation(cmd("c1"))  # already applied: nothing changed
    assert changes == ["user-1"]


def test_a_refused_apply_reports_nothing() -> None:
    handlers, changes = make(Tables(erased=frozenset({erasure_hash("c9")})))
    with pytest.raises(ConversationErased):
        handlers.apply_conversation(cmd("c9"))
    assert changes == []


def test_erasure_reports_the_user() -> None:
    handlers, changes = make()
    handlers.apply_conversation(cmd("c1"))
    handlers.delete_user_data("user-1")
    assert changes == ["user-1", "user-1"]


def test_reads_report_nothing() -> None:
    handlers, changes = make()
    handlers.get_level("user-1")
    handlers.get_topic_metrics("user-1")
    assert changes == []


def test_rule_changes_report_the_rules_and_every_user_moved() -> None:
    handlers, changes = make()
    handlers.ensure_rules()
    assert changes == ["*rules*"]
    handlers.apply_conversation(cmd("c1", "user-a"))
    handlers.apply_conversation(cmd("c2", "user-b"))
    changes.clear()
    rules = RuleSet("v2", ScoreWeights(points_per_turn=1.0), LevelThresholds())
    handlers.apply_rules(rules, RuleMode.RECOMPUTE)
    assert changes[0] == "*rules*"
    assert sorted(changes[1:]) == ["user-a", "user-b"]
