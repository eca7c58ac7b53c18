"""Use cases with an in-memory unit of work (a fake that honours the ports' contract)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Self

import pytest

from ingest import handlers
from ingest.domain.model import Analysis, NormalizedConversation, Turn
from ingest.domain.status import Status
from ingest.handlers import ConversationState, NewConversation

from .fixtures import conversation

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class Store:
    def __init__(self) -> None:
        self.rows: dict[str, tuple[NewConversation, ConversationState]] = {}
        self.outbox: list[str] = []
        # Outbox rows not yet published; tests mark them published by clearing this list.
        self.unpublished: list[str] = []
        self.units: list[bool] = []  # the `transaction` flag of each unit of work opened
        self.fast_calls: list[str] = []
        # Runs when a conditional update (claim_if, complete_if) changes nothing: lets a test
        # move the status between it and the locked path, as a concurrent call could.
        self.on_fast_miss: Callable[[], None] = lambda: None


class FakeConversations:
    """Without a transaction (transaction=False) each write lands in the store at once, and
    only the single-statement writes and plain reads are allowed, as in the SQL adapter."""

    def __init__(
        self,
        store: Store,
        staged: dict[str, tuple[NewConversation, ConversationState]],
        staged_outbox: list[str],
        transaction: bool,
    ) -> None:
        self._store = store
        self._staged = staged
        self._staged_outbox = staged_outbox
        self._transaction = transaction

    def _all(self) -> dict[str, tuple[NewConversation, ConversationState]]:
        return {**self._store.rows, **self._staged}

    def _put(self, cid: str, row: tuple[NewConversation, ConversationState]) -> None:
        (self._staged if self._transaction else self._store.rows)[cid] = row

    def _needs_transaction(self) -> None:
        if not self._transaction:
            raise RuntimeError("needs a unit of work with a transaction")

    def insert_with_outbox_if_absent(self, conversation: NewConversation) -> bool:
        cid = conversation.request.conversation_id
        if cid in self._all():
            return False
        self._put(cid, (conversation, ConversationState(
            cid, Status.PENDING, 0, "", None, None, conversation.content_hash,
            conversation.accepted_at, conversation.accepted_at,
        )))
        if self._transaction:
            self._staged_outbox.append(cid)
        else:
            self._store.outbox.append(cid)
            self._store.unpublished.append(cid)
        return True

    def claim_if(self, conversation_id: str, claimable: frozenset[Status],
                 lease_expires_at: datetime, now: datetime) -> (
        tuple[int, NormalizedConversation] | None
    ):
        self._store.fast_calls.append("claim_if")
        row = self._all().get(conversation_id)
        if row is None or row[1].status not in claimable:
            self._store.on_fast_miss()
            return None
        new, state = row
        state = dataclasses.replace(state, status=Status.PROCESSING, attempts=state.attempts + 1,
                                    lease_expires_at=lease_expires_at, updated_at=now)
        self._put(conversation_id, (new, state))
        return state.attempts, self.get_normalized(conversation_id)

    def complete_if(self, conversation_id: str, from_statuses: frozenset[Status],
                    outcome: Status, score_change: float | None, analysis: Analysis | None,
                    now: datetime) -> datetime | None:
        self._store.fast_calls.append("complete_if")
        row = self._all().get(conversation_id)
        if row is None or row[1].status not in from_statuses:
            self._store.on_fast_miss()
            return None
        new, state = row
        state = dataclasses.replace(state, status=outcome, score_change=score_change,
                                    analysis=analysis, lease_expires_at=None, updated_at=now)
        self._put(conversation_id, (new, state))
        return state.accepted_at

    def get_state(self, conversation_id: str, *, for_update: bool = False) -> (
        ConversationState | None
    ):
        if for_update:
            self._needs_transaction()
        row = self._all().get(conversation_id)
        return None if row is None else row[1]

    def save_state(self, state: ConversationState) -> None:
        self._needs_transaction()
        new, _ = self._all()[state.conversation_id]
        self._staged[state.conversation_id] = (new, state)

    def get_normalized(self, conversation_id: str) -> NormalizedConversation:
        new, _ = self._all()[conversation_id]
        r = new.request
        return NormalizedConversation(r.conversation_id, r.user_id, r.bot_id, r.bot_type,
                                      r.agent_tag, new.normalized, r.metadata)


class FakeOutbox:
    def __init__(self, staged: list[str], transaction: bool) -> None:
        self._staged = staged
        self._transaction = transaction

    def add(self, conversation_id: str, created_at: datetime) -> None:
        if not self._transaction:
            raise RuntimeError("needs a unit of work with a transaction")
        self._staged.append(conversation_id)

    def has_unpublished(self, conversation_id: str) -> bool:
        # Nothing is published in this fake: every row waits, committed or staged.
        return conversation_id in self._staged or conversation_id in self.published_never

    published_never: list[str]


class FakeUnitOfWork:
    def __init__(self, store: Store, transaction: bool = True) -> None:
        self._store = store
        self._rows: dict[str, tuple[NewConversation, ConversationState]] = {}
        self._outbox: list[str] = []
        self.conversations = FakeConversations(store, self._rows, self._outbox, transaction)
        self.outbox = FakeOutbox(self._outbox, transaction)
        self.outbox.published_never = store.unpublished
        store.units.append(transaction)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._rows.clear()
        self._outbox.clear()

    def commit(self) -> None:
        self._store.rows.update(self._rows)
        self._store.outbox += self._outbox
        self._store.unpublished += self._outbox
        self._rows.clear()
        self._outbox.clear()


@pytest.fixture
def store() -> Store:
    return Store()


def uow(store: Store) -> handlers.UnitOfWorkFactory:
    def factory(*, transaction: bool = True) -> FakeUnitOfWork:
        return FakeUnitOfWork(store, transaction)

    return factory


def test_end_conversation_stores_it_with_one_outbox_row(store: Store) -> None:
    result = handlers.end_conversation(uow(store), conversation(), max_turns=10, now=NOW)
    assert result == handlers.EndResult("conv-1", Status.PENDING, False, NOW)
    assert store.outbox == ["conv-1"]
    new, state = store.rows["conv-1"]
    assert new.normalized == (Turn("user", "Hello there"), Turn("assistant", "Hi! How are you?"))
    assert state.status == Status.PENDING


def test_duplicate_and_conflict(store: Store) -> None:
    handlers.end_conversation(uow(store), conversation(), max_turns=10, now=NOW)
    later = NOW + timedelta(minutes=1)
    again = handlers.end_conversation(uow(store), conversation(), max_turns=10, now=later)
    assert again == handlers.EndResult("conv-1", Status.PENDING, True, NOW)
    with pytest.raises(handlers.ContentConflict):
        handlers.end_conversation(
            uow(store), conversation(turns=(Turn("user", "other"),)), max_turns=10, now=later
        )
    assert store.outbox == ["conv-1"]


def test_invalid_request_writes_nothing(store: Store) -> None:
    with pytest.raises(handlers.InvalidRequest) as caught:
        handlers.end_conversation(uow(store), conversation(turns=()), max_turns=10, now=NOW)
    assert caught.value.violations == [("conversation_log", "is required: at least one turn")]
    assert store.rows == {} and store.outbox == []


def test_claim_fail_complete(store: Store) -> None:
    handlers.end_conversation(uow(store), conversation(), max_turns=10, now=NOW)
    claimed = handlers.claim_conversation(uow(store), "conv-1", 30, now=NOW)
    assert (claimed.claimed, claimed.status, claimed.attempts) == (True, Status.PROCESSING, 1)
    assert store.rows["conv-1"][1].lease_expires_at == NOW + timedelta(seconds=30)
    assert claimed.conversation is not None and len(claimed.conversation.turns) == 2

    assert handlers.fail_conversation(uow(store), "conv-1", "e" * 300, False, now=NOW) == (
        Status.PENDING, 1
    )
    assert store.rows["conv-1"][1].last_error == "e" * 200
    assert handlers.claim_conversation(uow(store), "conv-1", 0, now=NOW).attempts == 2
    analysis = Analysis(2, 0, 3, 1, "local")
    assert handlers.complete_conversation(
        uow(store), "conv-1", Status.PROCESSED, 6.0, analysis, now=NOW
    ) == Status.PROCESSED
    state = store.rows["conv-1"][1]
    assert (state.score_change, state.analysis, state.lease_expires_at) == (6.0, analysis, None)
    # Terminal: nothing changes any more.
    before = dataclasses.replace(state)
    assert handlers.fail_conversation(uow(store), "conv-1", "x", True, now=NOW) == (
        Status.PROCESSED, 2
    )
    assert handlers.claim_conversation(uow(store), "conv-1", 30, now=NOW).claimed is False
    assert store.rows["conv-1"][1] == before


def test_unknown_ids_and_bad_arguments(store: Store) -> None:
    with pytest.raises(handlers.ConversationNotFound):
        handlers.get_status(uow(store), "nope")
    with pytest.raises(handlers.InvalidRequest):
        handlers.get_status(uow(store), "bad id")
    with pytest.raises(handlers.InvalidRequest):
        handlers.complete_conversation(uow(store), "x", Status.FAILED, 0.0, None, now=NOW)
    with pytest.raises(handlers.InvalidRequest):
        handlers.claim_conversation(uow(store), "x", -5, now=NOW)


# --- operators' requeue (springctl replay / reprocess) ----------------------------------------
def _accepted(store: Store) -> str:
    request = conversation(conversation_id="c-requeue")
    handlers.end_conversation(uow(store), request, max_turns=10, now=NOW)
    store.unpublished.clear()  # the relay published it
    return request.conversation_id


def test_requeue_resets_a_failed_conversation_once(store: Store) -> None:
    cid = _accepted(store)
    for _ in range(3):
        handlers.claim_conversation(uow(store), cid, 60, now=NOW)
        handlers.fail_conversation(uow(store), cid, "friendship.Apply UNAVAILABLE", False, now=NOW)
    handlers.claim_conversation(uow(store), cid, 60, now=NOW)
    handlers.fail_conversation(uow(store), cid, "friendship.Apply UNAVAILABLE", True, now=NOW)
    assert store.rows[cid][1].status == Status.FAILED

    first = handlers.requeue_conversation(uow(store), cid, "replayed by operator", now=NOW)
    assert (first.requeued, first.previous_status, first.status, first.attempts) == (
        True, Status.FAILED, Status.PENDING, 0
    )
    assert store.rows[cid][1].last_error == "replayed by operator"
    assert store.outbox == [cid, cid]

    again = handlers.requeue_conversation(uow(store), cid, "replayed by operator", now=NOW)
    assert not again.requeued and again.status == Status.PENDING
    assert again.detail == "already waiting in the outbox"
    assert store.outbox == [cid, cid]  # nothing more enqueued


def test_requeue_leaves_processed_and_live_leases_alone(store: Store) -> None:
    cid = _accepted(store)
    handlers.claim_conversation(uow(store), cid, 60, now=NOW)
    live = handlers.requeue_conversation(uow(store), cid, "", now=NOW + timedelta(seconds=10))
    assert not live.requeued and live.status == Status.PROCESSING

    expired = handlers.requeue_conversation(uow(store), cid, "", now=NOW + timedelta(seconds=61))
    assert expired.requeued and expired.status == Status.PENDING
    assert expired.attempts == 1  # a lost worker's attempt still counts
    store.unpublished.clear()

    handlers.claim_conversation(uow(store), cid, 60, now=NOW)
    handlers.complete_conversation(uow(store), cid, Status.PROCESSED, 4.0, None, now=NOW)
    done = handlers.requeue_conversation(uow(store), cid, "", now=NOW)
    assert not done.requeued and done.status == Status.PROCESSED
    assert store.rows[cid][1].score_change == 4.0
    assert store.outbox == [cid, cid]


def test_requeue_of_a_pending_conversation_enqueues_it_again(store: Store) -> None:
    cid = _accepted(store)
    nudged = handlers.requeue_conversation(uow(store), cid, "", now=NOW)
    assert nudged.requeued and nudged.status == Status.PENDING and nudged.attempts == 0
    assert store.outbox == [cid, cid]
    with pytest.raises(handlers.ConversationNotFound):
        handlers.requeue_conversation(uow(store), "c-unknown", "", now=NOW)
    with pytest.raises(handlers.InvalidRequest):
        handlers.requeue_conversation(uow(store), "bad id!", "", now=NOW)


# --- one round trip: single-statement writes in units without a transaction -----------------
def test_accept_claim_and_complete_each_take_one_unit_without_a_transaction(store: Store) -> None:
    handlers.end_conversation(uow(store), conversation(), max_turns=10, now=NOW)
    handlers.claim_conversation(uow(store), "conv-1", 30, now=NOW)
    seen: list[timedelta] = []
    handlers.complete_conversation(uow(store), "conv-1", Status.PROCESSED, 1.0, None,
                                   now=NOW + timedelta(seconds=3), on_processed=seen.append)
    assert store.units == [False, False, False]
    assert store.fast_calls == ["claim_if", "complete_if"]
    assert seen == [timedelta(seconds=3)]
    assert store.outbox == ["conv-1"]


def test_a_duplicate_reads_the_stored_status_without_writing(store: Store) -> None:
    handlers.end_conversation(uow(store), conversation(), max_turns=10, now=NOW)
    handlers.claim_conversation(uow(store), "conv-1", 30, now=NOW)
    again = handlers.end_conversation(uow(store), conversation(), max_turns=10, now=NOW)
    assert (again.duplicate, again.status) == (True, Status.PROCESSING)
    assert store.outbox == ["conv-1"]


def test_claim_of_a_conversation_requeued_meanwhile_is_decided_under_the_lock(
    store: Store,
) -> None:
    handlers.end_conversation(uow(store), conversation(), max_turns=10, now=NOW)
    handlers.claim_conversation(uow(store), "conv-1", 30, now=NOW)
    handlers.fail_conversation(uow(store), "conv-1", "boom", True, now=NOW)  # FAILED
    store.fast_calls.clear()

    def requeue() -> None:  # an operator's replay lands between the two statements
        store.on_fast_miss = lambda: None
        handlers.requeue_conversation(uow(store), "conv-1", "", now=NOW)

    store.on_fast_miss = requeue
    claimed = handlers.claim_conversation(uow(store), "conv-1", 30, now=NOW)
    assert store.fast_calls == ["claim_if"]
    assert (claimed.claimed, claimed.status, claimed.attempts) == (True, Status.PROCESSING, 1)
    assert claimed.conversation is not None


def test_claim_and_complete_of_a_terminal_conversation_change_nothing(store: Store) -> None:
    handlers.end_conversation(uow(store), conversation(), max_turns=10, now=NOW)
    handlers.claim_conversation(uow(store), "conv-1", 30, now=NOW)
    handlers.complete_conversation(uow(store), "conv-1", Status.SKIPPED, 2.0,
                                   Analysis(1, 0, 0, 0, "x"), now=NOW)
    state = store.rows["conv-1"][1]
    assert (state.status, state.score_change, state.analysis) == (Status.SKIPPED, None, None)
    seen: list[timedelta] = []
    assert handlers.complete_conversation(
        uow(store), "conv-1", Status.PROCESSED, 5.0, None, now=NOW, on_processed=seen.append
    ) == Status.SKIPPED
    again = handlers.claim_conversation(uow(store), "conv-1", 30, now=NOW)
    assert (again.claimed, again.status, again.attempts) == (False, Status.SKIPPED, 1)
    assert store.rows["conv-1"][1] == state and seen == []
    with pytest.raises(handlers.ConversationNotFound):
        handlers.claim_conversation(uow(store), "nope", 30, now=NOW)
    with pytest.raises(handlers.ConversationNotFound):
        handlers.complete_conversation(uow(store), "nope", Status.PROCESSED, 0.0, None, now=NOW)
