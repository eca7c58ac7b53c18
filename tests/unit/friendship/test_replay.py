"""Recompute math (pure): replaying a ledger, the 0 floor, topics, the change report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from friendship.domain.friendship import (
    ApplyCommand,
    FriendshipStatus,
    LedgerEntry,
    apply_conversation,
)
from friendship.domain.levels import Level, LevelThresholds
from friendship.domain.replay import (
    UserChange,
    distribution,
    percentile,
    relevel,
    replay_user,
    summarize,
)
from friendship.domain.rules import RuleSet
from friendship.domain.scoring import AnalysisInput, Emotion, ScoreWeights
from friendship.domain.topics import TopicState

T0 = datetime(2025, 5, 1, tzinfo=UTC)
V1 = RuleSet("v1", ScoreWeights(), LevelThresholds())


def history(inputs: list[tuple[str, int, Emotion]], rules: RuleSet = V1) -> list[LedgerEntry]:
    """Apply conversations one by one as ApplyConversation does; return their ledger."""
    status = FriendshipStatus("u1")
    topics: dict[str, TopicState] = {}
    out = []
    for i, (tag, turns, emotion) in enumerate(inputs):
        outcome = apply_conversation(
            status, topics.get(tag),
            ApplyCommand(f"c{i}", "u1", f"bot{i % 2}", tag, AnalysisInput(turns, 1, emotion, 1)),
            weights=rules.weights, thresholds=rules.thresholds,
            now=T0 + timedelta(minutes=i), rule_version=rules.version,
        )
        status = outcome.status
        if outcome.topic is not None:
            topics[tag] = outcome.topic
        out.append(outcome.ledger)
    return out


INPUTS = [("math", 100, Emotion.HAPPY), ("", 2, Emotion.BORING), ("art", 300, Emotion.SAD),
          ("math", 0, Emotion.BORING), ("math", 0, Emotion.ANGRY), ("art", 10, Emotion.HAPPY)]


def test_replay_with_the_same_rules_reproduces_the_ledger_in_any_input_order() -> None:
    entries = history(INPUTS)
    replayed = replay_user("u1", reversed(entries), V1)
    assert list(replayed.ledger) == entries
    assert replayed.status.score == entries[-1].score_after
    assert replayed.status.conversations == len(entries)
    assert replayed.status.updated_at == entries[-1].applied_at
    assert [t.topic_id for t in replayed.topics] == ["art", "math"]


def test_replay_with_new_rules_applies_the_floor_at_each_step() -> None:
    entries = history([("", 4, Emotion.BORING), ("", 40, Emotion.NEUTRAL)])
    harsh = RuleSet("v2", ScoreWeights(points_per_turn=1, points_per_question=0,
                                       points_per_memory=0), LevelThresholds(10, 20))
    replayed = replay_user("u1", entries, harsh)
    first, second = replayed.ledger
    assert (first.breakdown.total, first.score_after, first.applied_delta) == (-11, 0, 0)
    assert (second.score_before, second.score_after) == (0, 40)
    assert (second.level_before, second.level_after) == (Level.STRANGER, Level.FRIEND)
    assert {e.rule_version for e in replayed.ledger} == {"v2"}
    assert replayed.status.level is Level.FRIEND


def test_replayed_topics_follow_the_same_floor_per_topic() -> None:
    entries = history([("math", 10, Emotion.NEUTRAL), ("math", 0, Emotion.BORING),
                       ("math", 2, Emotion.INTERESTING)])
    (math,) = replay_user("u1", entries, V1).topics
    # 5+3+5=13 -> max(0, 13-15+3+5=6) ... computed step by step as ApplyConversation would
    expected = 0.0
    for e in entries:
        expected = max(0.0, expected + e.breakdown.total)
    assert math.score == expected
    assert math.turns == 12
    assert math.agents_used == ("bot0", "bot1")


def test_replay_refuses_another_users_entry() -> None:
    with pytest.raises(ValueError, match="another user"):
        replay_user("u2", history(INPUTS[:1]), V1)


def test_relevel_keeps_the_score_and_follows_thresholds() -> None:
    status = FriendshipStatus("u1", score=150, level=Level.ACQUAINTANCE)
    moved = relevel(status, RuleSet("v3", ScoreWeights(), LevelThresholds(50, 120)))
    assert (moved.score, moved.level, moved.rule_version) == (150, Level.FRIEND, "v3")


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 11)]
    assert percentile(values, 50) == 5
    assert percentile(values, 90) == 9
    assert percentile([7.0], 90) == 7
    d = distribution([3.0, -1.0, 2.0])
    assert (d.count, d.min, d.p50, d.p90, d.max) == (3, -1, 2, 3, 3)
    assert distribution([]).count == 0


def test_summary_counts_level_changes_by_transition() -> None:
    report = summarize([
        UserChange("a", 90, 110, Level.STRANGER, Level.ACQUAINTANCE),
        UserChange("b", 10, 10, Level.STRANGER, Level.STRANGER),
        UserChange("c", 95, 120, Level.STRANGER, Level.ACQUAINTANCE),
        UserChange("d", 310, 250, Level.FRIEND, Level.ACQUAINTANCE),
    ])
    assert report.users == 4
    assert report.level_changes == 3
    assert report.transitions == {"stranger->acquaintance": 2, "friend->acquaintance": 1}
    assert report.to_dict()["score_delta"] == {
        "count": 4, "min": -60, "p50": 0, "p90": 25, "max": 25
    }
