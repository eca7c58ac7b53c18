"""Handlers with the in-memory unit of work: level events, rule changes, erasure."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from friendship.domain.events import LevelChangeCause
from friendship.domain.friendship import ApplyCommand
from friendship.domain.levels import Level, LevelThresholds
from friendship.domain.rules import RuleMode, RuleSet
from friendship.domain.scoring import AnalysisInput, Emotion, ScoreWeights
from friendship.handlers import FriendshipHandlers, RuleConflict
from tests.unit.friendship.fakes import FakeUnitOfWork, Tables

NOW = datetime(2025, 5, 1, tzinfo=UTC)
V1 = RuleSet("v1", ScoreWeights(), LevelThresholds())
DOUBLE = RuleSet("v2", ScoreWeights(points_per_turn=1.0), LevelThresholds())


def make() -> tuple[FriendshipHandlers, Tables, list[int]]:
    tables = Tables()
    woken: list[int] = []
    ids = itertools.count()
    handlers = FriendshipHandlers(
        lambda: FakeUnitOfWork(tables), default_rules=V1, clock=lambda: NOW,
        new_event_id=lambda: f"e{next(ids)}", on_events=lambda: woken.append(1),
    )
    handlers.ensure_rules()
    return handlers, tables, woken


def apply(handlers: FriendshipHandlers, cid: str, turns: int, user: str = "u1") -> None:
    handlers.apply_conversation(
        ApplyCommand(cid, user, "bot", "math", AnalysisInput(turns, 0, Emotion.NEUTRAL, 0))
    )


def test_a_level_crossing_writes_exactly_one_event_and_wakes_the_relay() -> None:
    handlers, tables, woken = make()
    apply(handlers, "c1", 150)  # 75
    assert tables.outbox == [] and woken == []
    apply(handlers, "c2", 60)  # 105: acquaintance
    apply(handlers, "c2", 60)  # repeat: nothing
    apply(handlers, "c3", 2)  # still acquaintance
    (event,) = tables.outbox
    assert (event.event_id, event.old_level, event.new_level, event.score,
            event.conversation_id, event.rule_version, event.cause) == (
        "e0", Level.STRANGER, Level.ACQUAINTANCE, 105, "c2", "v1",
        LevelChangeCause.CONVERSATION,
    )
    assert woken == [1]


def test_ensure_rules_stores_the_environment_once() -> None:
    handlers, tables, _ = make()
    assert handlers.ensure_rules() == (V1, False)
    assert list(tables.rule_sets) == ["v1"]


def test_recompute_matches_its_dry_run_and_is_idempotent() -> None:
    handlers, tables, _ = make()
    apply(handlers, "a1", 120, "a")  # 60 -> v2: 120
    apply(handlers, "b1", 10, "b")  # 5 -> v2: 10
    dry = handlers.dry_run(DOUBLE, RuleMode.RECOMPUTE)
    done = handlers.apply_rules(DOUBLE, RuleMode.RECOMPUTE)
    assert done.report == dry
    assert (dry.users, dry.level_changes, dry.score_delta.max) == (2, 1, 60)
    assert tables.status["a"].score == 120 and tables.status["a"].level is Level.ACQUAINTANCE
    assert tables.ledger["a1"].rule_version == "v2"
    assert [e.cause for e in tables.outbox] == [LevelChangeCause.RULES_RECOMPUTED]
    again = handlers.apply_rules(DOUBLE, RuleMode.RECOMPUTE)
    assert again.already_applied and again.report == dry
    assert len(tables.outbox) == 1


def test_a_version_is_immutable_and_a_job_must_finish_first() -> None:
    handlers, _, _ = make()
    for user in "abc":
        apply(handlers, f"{user}1", 10, user)
    handlers.apply_rules(DOUBLE, RuleMode.RECOMPUTE, batch=1, max_users=1)
    with pytest.raises(RuleConflict, match="unfinished"):
        handlers.apply_rules(RuleSet("v3", ScoreWeights(), LevelThresholds()), RuleMode.FORWARD)
    with pytest.raises(RuleConflict, match="other rules"):
        handlers.apply_rules(RuleSet("v2", ScoreWeights(), LevelThresholds()),
                             RuleMode.RECOMPUTE)
    finished = handlers.apply_rules(DOUBLE, RuleMode.RECOMPUTE, batch=1)
    assert not finished.already_applied and finished.report.users == 3


def test_an_apply_during_a_recompute_moves_the_user_first() -> None:
    handlers, tables, _ = make()
    apply(handlers, "a1", 100, "a")
    apply(handlers, "b1", 100, "b")
    handlers.apply_rules(DOUBLE, RuleMode.RECOMPUTE, batch=1, max_users=0)  # activated only
    apply(handlers, "b2", 10, "b")  # b is recomputed (100) then b2 applies (+10)
    assert tables.status["b"].score == 110 and tables.status["b"].rule_version == "v2"
    assert tables.status["a"].score == 50  # not reached yet: old, consistent view
    assert handlers.get_level("a").next_level_score == 100
    handlers.apply_rules(DOUBLE, RuleMode.RECOMPUTE)
    assert tables.status["a"].score == 100


def test_forward_keeps_scores_and_relevels_with_events() -> None:
    handlers, tables, _ = make()
    apply(handlers, "a1", 180, "a")  # 90
    lower = RuleSet("v2", ScoreWeights(), LevelThresholds(80, 300))
    assert handlers.dry_run(lower, RuleMode.FORWARD).level_changes == 1
    handlers.apply_rules(lower, RuleMode.FORWARD)
    assert (tables.status["a"].score, tables.status["a"].level) == (90, Level.ACQUAINTANCE)
    assert tables.ledger["a1"].rule_version == "v1"  # history keeps what computed it
    assert [e.cause for e in tables.outbox] == [LevelChangeCause.RULES_FORWARD]


def test_delete_user_data_is_idempotent_and_reports_counts() -> None:
    handlers, tables, _ = make()
    apply(handlers, "c1", 250, "u1")
    apply(handlers, "x1", 4, "other")
    counts = handlers.delete_user_data("u1")
    assert counts == {"ledger": 1, "topic_metrics": 1, "outbox": 1, "rule_results": 0,
                      "friendship_status": 1}
    assert set(handlers.delete_user_data("u1").values()) == {0}
    assert handlers.get_level("u1").conversations == 0
    assert "other" in tables.status
