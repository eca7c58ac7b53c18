"""Applying one analysed conversation: the user's score and level, the topic, the ledger entry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from friendship.domain.levels import Level, LevelThresholds, level_for
from friendship.domain.scoring import (
    RULE_VERSION,
    AnalysisInput,
    ScoreBreakdown,
    ScoreWeights,
    score_breakdown,
)
from friendship.domain.topics import TopicState, apply_to_topic


@dataclass(frozen=True)
class FriendshipStatus:
    user_id: str
    score: float = 0.0
    level: Level = Level.STRANGER
    conversations: int = 0
    updated_at: datetime | None = None
    rule_version: str = RULE_VERSION  # the rule set the score and level were computed with


@dataclass(frozen=True)
class ApplyCommand:
    conversation_id: str
    user_id: str
    bot_id: str
    agent_tag: str  # empty = no topic
    analysis: AnalysisInput


@dataclass(frozen=True)
class LedgerEntry:
    """What one conversation did, stored once per conversation_id."""

    conversation_id: str
    user_id: str
    bot_id: str
    agent_tag: str
    analysis: AnalysisInput
    breakdown: ScoreBreakdown
    applied_delta: float  # score_after - score_before (differs from the total at the 0 floor)
    score_before: float
    score_after: float
    level_before: Level
    level_after: Level
    applied_at: datetime
    rule_version: str = RULE_VERSION


@dataclass(frozen=True)
class ApplyOutcome:
    status: FriendshipStatus
    topic: TopicState | None
    ledger: LedgerEntry


def apply_conversation(
    status: FriendshipStatus,
    topic: TopicState | None,
    command: ApplyCommand,
    *,
    weights: ScoreWeights,
    thresholds: LevelThresholds,
    now: datetime,
    rule_version: str = RULE_VERSION,
) -> ApplyOutcome:
    """Pure: the new user status and topic, and the ledger entry that records the change."""
    if status.user_id != command.user_id:
        raise ValueError("status belongs to another user")
    breakdown = score_breakdown(command.analysis, weights)
    score_before = status.score
    score_after = max(0.0, score_before + breakdown.total)
    level_before = level_for(score_before, thresholds)
    level_after = level_for(score_after, thresholds)
    new_status = FriendshipStatus(
        user_id=status.user_id,
        score=score_after,
        level=level_after,
        conversations=status.conversations + 1,
        updated_at=now,
        rule_version=rule_version,
    )
    new_topic: TopicState | None = None
    if command.agent_tag:
        current = topic or TopicState(user_id=command.user_id, topic_id=command.agent_tag)
        if current.user_id != command.user_id or current.topic_id != command.agent_tag:
            raise ValueError("topic does not match the conversation")
        new_topic = apply_to_topic(
            current,
            score_change=breakdown.total,
            turns=command.analysis.total_turns,
            bot_id=command.bot_id,
            now=now,
        )
    ledger = LedgerEntry(
        conversation_id=command.conversation_id,
        user_id=command.user_id,
        bot_id=command.bot_id,
        agent_tag=command.agent_tag,
        analysis=command.analysis,
        breakdown=breakdown,
        applied_delta=score_after - score_before,
        score_before=score_before,
        score_after=score_after,
        level_before=level_before,
        level_after=level_after,
        applied_at=now,
        rule_version=rule_version,
    )
    return ApplyOutcome(status=new_status, topic=new_topic, ledger=ledger)
