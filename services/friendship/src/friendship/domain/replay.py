"""Recompute: replay a user's ledger inputs in order with a rule set (pure).

The same function serves the dry run and the applied recompute, so a dry run's figures are,
by construction, the applied result (both read the same ledger in the same order).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from friendship.domain.friendship import (
    ApplyCommand,
    FriendshipStatus,
    LedgerEntry,
    apply_conversation,
)
from friendship.domain.levels import Level, level_for
from friendship.domain.rules import RuleSet
from friendship.domain.topics import TopicState


def ledger_order(entry: LedgerEntry) -> tuple[object, str]:
    """Oldest first: (applied_at, conversation_id), the order the history pages in reverse."""
    return (entry.applied_at, entry.conversation_id)


@dataclass(frozen=True)
class UserReplay:
    """A user's state after replaying their whole ledger with one rule set."""

    status: FriendshipStatus
    topics: tuple[TopicState, ...]  # sorted by topic_id
    ledger: tuple[LedgerEntry, ...]  # oldest first, rewritten with the rule set


def replay_user(
    user_id: str, entries: Iterable[LedgerEntry], rules: RuleSet
) -> UserReplay:
    """Every entry applied again from a zero score, in ledger order, with the 0 floor.

    applied_at is kept, so the status's and topics' updated_at are those of the last entry
    that touched them, as when the conversations were first applied.
    """
    ordered = sorted(entries, key=ledger_order)
    status = FriendshipStatus(user_id=user_id, rule_version=rules.version)
    topics: dict[str, TopicState] = {}
    rewritten: list[LedgerEntry] = []
    for entry in ordered:
        if entry.user_id != user_id:
            raise ValueError("ledger entry belongs to another user")
        outcome = apply_conversation(
            status,
            topics.get(entry.agent_tag) if entry.agent_tag else None,
            ApplyCommand(
                conversation_id=entry.conversation_id,
                user_id=user_id,
                bot_id=entry.bot_id,
                agent_tag=entry.agent_tag,
                analysis=entry.analysis,
            ),
            weights=rules.weights,
            thresholds=rules.thresholds,
            now=entry.applied_at,
            rule_version=rules.version,
        )
        status = outcome.status
        if outcome.topic is not None:
            topics[outcome.topic.topic_id] = outcome.topic
        rewritten.append(outcome.ledger)
    return UserReplay(
        status=status,
        topics=tuple(topics[key] for key in sorted(topics)),
        ledger=tuple(rewritten),
    )


def relevel(status: FriendshipStatus, rules: RuleSet) -> FriendshipStatus:
    """Forward mode: the score stays, the level follows the new thresholds."""
    return replace(
        status,
        level=level_for(status.score, rules.thresholds),
        rule_version=rules.version,
    )


@dataclass(frozen=True)
class UserChange:
    """What a rule change did (or would do) to one user."""

    user_id: str
    old_score: float
    new_score: float
    old_level: Level
    new_level: Level

    @property
    def delta(self) -> float:
        return self.new_score - self.old_score


@dataclass(frozen=True)
class Distribution:
    count: int
    min: float | None
    p50: float | None
    p90: float | None
    max: float | None


def percentile(ordered: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an ascending, non-empty sequence."""
    if not ordered:
        raise ValueError("no values")
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def distribution(values: Iterable[float]) -> Distribution:
    ordered = sorted(values)
    if not ordered:
        return Distribution(count=0, min=None, p50=None, p90=None, max=None)
    return Distribution(
        count=len(ordered),
        min=ordered[0],
        p50=percentile(ordered, 50),
        p90=percentile(ordered, 90),
        max=ordered[-1],
    )


@dataclass(frozen=True)
class RuleChangeReport:
    users: int
    level_changes: int
    transitions: dict[str, int]  # "stranger->acquaintance": users
    score_delta: Distribution

    def to_dict(self) -> dict[str, object]:
        d = self.score_delta
        return {
            "users": self.users,
            "level_changes": self.level_changes,
            "transitions": dict(sorted(self.transitions.items())),
            "score_delta": {"count": d.count, "min": d.min, "p50": d.p50, "p90": d.p90,
                            "max": d.max},
        }


def summarize(changes: Iterable[UserChange]) -> RuleChangeReport:
    items = list(changes)
    transitions: dict[str, int] = {}
    for change in items:
        if change.old_level is not change.new_level:
            key = f"{change.old_level.value}->{change.new_level.value}"
            transitions[key] = transitions.get(key, 0) + 1
    return RuleChangeReport(
        users=len(items),
        level_changes=sum(transitions.values()),
        transitions=transitions,
        score_delta=distribution(change.delta for change in items),
    )
