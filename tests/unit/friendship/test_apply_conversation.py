"""apply_conversation: score floor, levels, topic update, ledger entry."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from friendship.domain.friendship import (
    ApplyCommand,
    ApplyOutcome,
    FriendshipStatus,
    apply_conversation,
)
from friendship.domain.levels import Level, LevelThresholds
from friendship.domain.scoring import AnalysisInput, Emotion, ScoreWeights
from friendship.domain.topics import TopicState

NOW = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)
WEIGHTS = ScoreWeights()
THRESHOLDS = LevelThresholds()


def command(
    *,
    turns: int = 0,
    questions: int = 0,
    emotion: Emotion = Emotion.UNSPECIFIED,
    memories: int = 0,
    agent_tag: str = "",
    bot_id: str = "bot-a",
) -> ApplyCommand:
    return ApplyCommand(
        conversation_id="conv-1",
        user_id="user-1",
        bot_id=bot_id,
        agent_tag=agent_tag,
        analysis=AnalysisInput(turns, questions, emotion, memories, "local"),
    )


def apply(
    status: FriendshipStatus, cmd: ApplyCommand, topic: TopicState | None = None
) -> ApplyOutcome:
    return apply_conversation(status, topic, cmd, weights=WEIGHTS, thresholds=THRESHOLDS, now=NOW)


def test_boring_conversation_on_a_fresh_user_stays_at_zero() -> None:
    outcome = apply(FriendshipStatus("user-1"), command(turns=4, emotion=Emotion.BORING))
    assert outcome.status.score == 0
    assert outcome.status.level is Level.STRANGER
    assert outcome.status.conversations == 1
    assert outcome.ledger.breakdown.total == -13
    assert outcome.ledger.applied_delta == 0
    assert (outcome.ledger.score_before, outcome.ledger.score_after) == (0, 0)


def test_negative_change_is_floored_partially() -> None:
    outcome = apply(FriendshipStatus("user-1", score=10), command(emotion=Emotion.BORING))
    assert outcome.status.score == 0
    assert outcome.ledger.applied_delta == -10
    assert outcome.ledger.breakdown.total == -15


def test_crossing_a_threshold_changes_the_level() -> None:
    status = FriendshipStatus("user-1", score=95, conversations=3)
    outcome = apply(status, command(turns=10))
    assert outcome.status.score == 100
    assert outcome.status.level is Level.ACQUAINTANCE
    assert outcome.status.conversations == 4
    assert outcome.status.updated_at == NOW
    ledger = outcome.ledger
    assert (ledger.level_before, ledger.level_after) == (Level.STRANGER, Level.ACQUAINTANCE)
    assert (ledger.score_before, ledger.score_after, ledger.applied_delta) == (95, 100, 5)
    assert ledger.applied_at == NOW
    assert ledger.rule_version == "v1"


def test_empty_agent_tag_updates_no_topic() -> None:
    outcome = apply(FriendshipStatus("user-1"), command(turns=10, agent_tag=""))
    assert outcome.topic is None


def test_topic_gets_the_change_turns_and_bot() -> None:
    topic = TopicState("user-1", "math", score=20, turns=6, agents_used=("bot-z", "bot-b"))
    outcome = apply(
        FriendshipStatus("user-1"),
        command(turns=10, emotion=Emotion.HAPPY, agent_tag="math", bot_id="bot-c"),
        topic,
    )
    assert outcome.topic == TopicState(
        "user-1", "math", score=35, turns=16, agents_used=("bot-b", "bot-c", "bot-z"),
        updated_at=NOW,
    )


def test_topic_agents_used_stay_unique() -> None:
    topic = TopicState("user-1", "math", agents_used=("bot-a",))
    outcome = apply(FriendshipStatus("user-1"), command(agent_tag="math", bot_id="bot-a"), topic)
    assert outcome.topic is not None
    assert outcome.topic.agents_used == ("bot-a",)


def test_new_topic_starts_from_zero_and_floors_at_zero() -> None:
    outcome = apply(
        FriendshipStatus("user-1"), command(turns=2, emotion=Emotion.BORING, agent_tag="art")
    )
    assert outcome.topic == TopicState("user-1", "art", score=0, turns=2,
                                       agents_used=("bot-a",), updated_at=NOW)


def test_status_of_another_user_is_refused() -> None:
    with pytest.raises(ValueError):
        apply(FriendshipStatus("user-2"), command())
