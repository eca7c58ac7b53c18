"""Use cases. Each owns its unit of work; repositories never commit.

Blocking (the repositories speak to PostgreSQL through psycopg2): the gRPC servicer runs these
through servicekit's BlockingRunner, which bounds both concurrency and time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Protocol, Self

from friendship.domain.friendship import (
    ApplyCommand,
    FriendshipStatus,
    LedgerEntry,
    apply_conversation,
)
from friendship.domain.levels import Level, LevelThresholds, level_for, next_level_score
from friendship.domain.scoring import ScoreWeights
from friendship.domain.topics import TopicState
from friendship.domain.validation import InvalidRequest, validate_user_id


class FriendshipRepository(Protocol):
    def get_status(self, user_id: str) -> FriendshipStatus | None: ...

    def list_topics(self, user_id: str) -> list[TopicState]:
        """The user's topics, sorted by topic_id."""
        ...

    def lock_status(self, user_id: str) -> FriendshipStatus:
        """Create the user's row if missing, then lock it until the end of the unit of work."""
        ...

    def lock_topic(self, user_id: str, topic_id: str) -> TopicState:
        """Create the topic row if missing, then lock it until the end of the unit of work."""
        ...

    def find_ledger(self, conversation_id: str) -> LedgerEntry | None: ...

    def insert_ledger(self, entry: LedgerEntry) -> bool:
        """False (and nothing written) when the conversation_id is already in the ledger."""
        ...

    def save_status(self, status: FriendshipStatus) -> None: ...

    def save_topic(self, topic: TopicState) -> None: ...


class UnitOfWork(Protocol):
    """One transaction; rolled back on exit unless commit() was called."""

    @property
    def friendship(self) -> FriendshipRepository: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def commit(self) -> None: ...


@dataclass(frozen=True)
class LevelView:
    user_id: str
    level: Level
    score: float
    next_level_score: float
    conversations: int
    updated_at: datetime | None


@dataclass(frozen=True)
class ApplyResult:
    applied: bool  # False: this conversation had been applied before
    score_change: float  # the formula's total (before the 0 floor)
    score: float  # the user's score after this conversation
    level: Level  # the user's level after this conversation

    @classmethod
    def from_ledger(cls, entry: LedgerEntry, *, applied: bool) -> ApplyResult:
        return cls(
            applied=applied,
            score_change=entry.breakdown.total,
            score=entry.score_after,
            level=entry.level_after,
        )


def _utc_now() -> datetime:
    return datetime.now(UTC)


class FriendshipHandlers:
    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        *,
        weights: ScoreWeights,
        thresholds: LevelThresholds,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._uow_factory = uow_factory
        self._weights = weights
        self._thresholds = thresholds
        self._clock = clock

    def get_level(self, user_id: str) -> LevelView:
        violations = validate_user_id(user_id)
        if violations:
            raise InvalidRequest(violations)
        with self._uow_factory() as uow:
            status = uow.friendship.get_status(user_id) or FriendshipStatus(user_id=user_id)
        return LevelView(
            user_id=user_id,
            level=level_for(status.score, self._thresholds),
            score=status.score,
            next_level_score=next_level_score(status.score, self._thresholds),
            conversations=status.conversations,
            updated_at=status.updated_at,
        )

    def get_topic_metrics(self, user_id: str) -> list[TopicState]:
        violations = validate_user_id(user_id)
        if violations:
            raise InvalidRequest(violations)
        with self._uow_factory() as uow:
            return uow.friendship.list_topics(user_id)

    def apply_conversation(self, command: ApplyCommand) -> ApplyResult:
        """Exactly once per conversation_id; a repeat returns the stored result, changes nothing.

        Lock order is always the user's row, then the topic row: conversations of the same user
        run one after the other (no lost update, no deadlock), and the ledger row is written
        under the user lock, so its score_before/score_after are exact.
        """
        with self._uow_factory() as uow:
            repo = uow.friendship
            status = repo.lock_status(command.user_id)
            stored = repo.find_ledger(command.conversation_id)
            if stored is not None:
                return ApplyResult.from_ledger(stored, applied=False)
            topic = None
            if command.agent_tag:
                topic = repo.lock_topic(command.user_id, command.agent_tag)
            outcome = apply_conversation(
                status,
                topic,
                command,
                weights=self._weights,
                thresholds=self._thresholds,
                now=self._clock(),
            )
            if not repo.insert_ledger(outcome.ledger):
                # The same conversation_id raced in under another user_id and won.
                stored = repo.find_ledger(command.conversation_id)
                if stored is None:  # pragma: no cover - the unique key makes this impossible
                    raise RuntimeError("ledger conflict without a stored row")
                return ApplyResult.from_ledger(stored, applied=False)
            repo.save_status(outcome.status)
            if outcome.topic is not None:
                repo.save_topic(outcome.topic)
            uow.commit()
        return ApplyResult.from_ledger(outcome.ledger, applied=True)
