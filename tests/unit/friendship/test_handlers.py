"""FriendshipHandlers with an in-memory unit of work: exactly once, rollback unless committed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

import pytest

from friendship.domain.friendship import ApplyCommand, FriendshipStatus, LedgerEntry
from friendship.domain.levels import Level, LevelThresholds
from friendship.domain.scoring import AnalysisInput, Emotion, ScoreWeights
from friendship.domain.topics import TopicState
from friendship.domain.validation import InvalidRequest
from friendship.handlers import FriendshipHandlers

NOW = datetime(2025, 5, 1, tzinfo=UTC)


@dataclass
class Tables:
    status: dict[str, FriendshipStatus] = field(default_factory=dict)
    topics: dict[tuple[str, str], TopicState] = field(default_factory=dict)
    ledger: dict[str, LedgerEntry] = field(default_factory=dict)


class FakeRepository:
    def __init__(self, tables: Tables) -> None:
        self.t = tables

    def get_status(self, user_id: str) -> FriendshipStatus | None:
        return self.t.status.get(user_id)

    def list_topics(self, user_id: str) -> list[TopicState]:
        return sorted((v for (u, _), v in self.t.topics.items() if u == user_id),
                      key=lambda topic: topic.topic_id)

    def lock_status(self, user_id: str) -> FriendshipStatus:
        return self.t.status.setdefault(user_id, FriendshipStatus(user_id))

    def lock_topic(self, user_id: str, topic_id: str) -> TopicState:
        return self.t.topics.setdefault((user_id, topic_id), TopicState(user_id, topic_id))

    def find_ledger(self, conversation_id: str) -> LedgerEntry | None:
        return self.t.ledger.get(conversation_id)

    def insert_ledger(self, entry: LedgerEntry) -> bool:
        if entry.conversation_id in self.t.ledger:
            return False
        self.t.ledger[entry.conversation_id] = entry
        return True

    def save_status(self, status: FriendshipStatus) -> None:
        self.t.status[status.user_id] = status

    def save_topic(self, topic: TopicState) -> None:
        self.t.topics[(topic.user_id, topic.topic_id)] = topic


class FakeUnitOfWork:
    """Works on a copy of the committed tables; commit() publishes the copy."""

    def __init__(self, committed: Tables) -> None:
        self.committed = committed

    @property
    def friendship(self) -> FakeRepository:
        return self._repo

    def __enter__(self) -> Self:
        self._work = Tables(
            dict(self.committed.status), dict(self.committed.topics), dict(self.committed.ledger)
        )
        self._repo = FakeRepository(self._work)
        return self

    def commit(self) -> None:
        self.committed.status = self._work.status
        self.committed.topics = self._work.topics
        self.committed.ledger = self._work.ledger

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


def make() -> tuple[FriendshipHandlers, Tables]:
    committed = Tables()
    handlers = FriendshipHandlers(
        lambda: FakeUnitOfWork(committed),
        weights=ScoreWeights(),
        thresholds=LevelThresholds(),
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
