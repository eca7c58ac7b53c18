"""Use cases of the ingest service. Each owns its transaction through a unit of work.

No grpc, sqlalchemy or aio_pika here: the servicer maps proto <-> domain and runs these
(blocking) functions through servicekit.db.BlockingRunner; adapters implement the ports.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Protocol, Self

from ingest.domain.content_hash import content_hash
from ingest.domain.model import Analysis, ConversationInput, NormalizedConversation, Turn
from ingest.domain.normalization import normalize_turns
from ingest.domain.status import (
    COMPLETION_STATUSES,
    RequeueAction,
    Status,
    after_complete,
    after_fail,
    can_claim,
    claimable_statuses,
    completable_statuses,
    is_terminal,
    requeue_action,
)
from ingest.domain.validation import Violation, id_violation, validate_conversation
from servicekit.erasure import erasure_hash

MAX_ERROR_CHARS = 200
DEFAULT_LEASE_S = 300
MAX_LEASE_S = 24 * 3600
_CLAIMABLE = claimable_statuses()
_COMPLETABLE = {outcome: completable_statuses(outcome) for outcome in COMPLETION_STATUSES}


# --- errors the servicer maps to status codes ----------------------------------------------
class InvalidRequest(Exception):
    def __init__(self, violations: list[Violation]) -> None:
        super().__init__("invalid request")
        self.violations = violations


class ContentConflict(Exception):
    """The id was accepted before with different content."""


class ConversationNotFound(Exception):
    pass


# --- records ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class NewConversation:
    request: ConversationInput
    normalized: tuple[Turn, ...]
    content_hash: str
    accepted_at: datetime
    trace_id: str = ""


@dataclass(frozen=True, slots=True)
class ConversationState:
    conversation_id: str
    status: Status
    attempts: int
    last_error: str
    score_change: float | None
    analysis: Analysis | None
    content_hash: str
    accepted_at: datetime
    updated_at: datetime
    lease_expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class EndResult:
    conversation_id: str
    status: Status
    duplicate: bool
    accepted_at: datetime


@dataclass(frozen=True, slots=True)
class RequeueResult:
    requeued: bool
    previous_status: Status
    status: Status
    attempts: int
    detail: str


@dataclass(frozen=True, slots=True)
class ErasureResult:
    deleted: dict[str, int]  # rows removed, by table
    erased_conversation_hashes: list[str]  # every erased conversation of the user, ever


@dataclass(frozen=True, slots=True)
class ClaimResult:
    claimed: bool
    status: Status
    attempts: int
    conversation: NormalizedConversation | None


# --- ports -------------------------------------------------------------------------------------
class ConversationRepository(Protocol):
    # --- single-statement writes (atomic on their own: fine in a unit without a transaction)
    def insert_with_outbox_if_absent(self, conversation: NewConversation) -> bool:
        """The conversation (PENDING) and its outbox row, together in one atomic statement:
        True if inserted; False if the id existed (nothing written)."""

    def claim_if(
        self,
        conversation_id: str,
        claimable: frozenset[Status],
        lease_expires_at: datetime,
        now: datetime,
    ) -> tuple[int, NormalizedConversation] | None:
        """If the conversation's status is one of `claimable`: PROCESSING, attempts + 1, the
        lease, updated_at = now, in one atomic statement; returns the new attempts and the
        normalized conversation. None (nothing written) if absent or not claimable."""

    def complete_if(
        self,
        conversation_id: str,
        from_statuses: frozenset[Status],
        outcome: Status,
        score_change: float | None,
        analysis: Analysis | None,
        now: datetime,
    ) -> datetime | None:
        """If the conversation's status is one of `from_statuses`: `outcome` with the score
        change and analysis, lease cleared, updated_at = now, in one atomic statement; returns
        its accepted_at. None (nothing written) if absent or in another status."""

    # --- reads and writes

    def get_state(self, conversation_id: str, *, for_update: bool = False) -> (
        ConversationState | None
    ): ...

    def save_state(self, state: ConversationState) -> None: ...

    def get_normalized(self, conversation_id: str) -> NormalizedConversation: ...

    # --- erasure and retention ---
    def delete_of_user(self, user_id: str) -> list[str]:
        """Deletes every conversation of the user (locking each row); returns their ids."""
        ...

    def add_tombstones(self, user_hash: str, conversation_hashes: list[str], now: datetime) -> None:
        """Records erased conversations (hashes only); existing ones are kept."""
        ...

    def tombstones_of(self, user_hash: str) -> list[str]:
        """Hashes of every erased conversation of this user, sorted."""
        ...

    def drop_raw_logs(self, accepted_before: datetime, limit: int, now: datetime) -> int:
        """Sets raw_log to NULL on at most `limit` conversations accepted before the cutoff
        that still have one (rows locked by others are skipped); returns how many."""
        ...


class OutboxRepository(Protocol):
    def add(self, conversation_id: str, created_at: datetime) -> None: ...

    def has_unpublished(self, conversation_id: str) -> bool:
        """True while an outbox row of this conversation waits to be published."""

    def delete_of(self, conversation_ids: list[str]) -> int:
        """Deletes the outbox rows (published or not) of these conversations."""
        ...


class UnitOfWork(Protocol):
    @property
    def conversations(self) -> ConversationRepository: ...

    @property
    def outbox(self) -> OutboxRepository: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Rolls back unless committed."""

    def commit(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, transaction: bool = True) -> UnitOfWork:
        """A unit of work. transaction=False: no transaction, each statement commits on its
        own (no BEGIN/COMMIT round trips) and commit() does nothing; for reads and the
        single-statement writes only (any other write refuses to run in it)."""
        ...


# --- use cases -----------------------------------------------------------------------------------
def _require_id(conversation_id: str) -> None:
    violation = id_violation("conversation_id", conversation_id)
    if violation:
        raise InvalidRequest([violation])


def end_conversation(
    uow_factory: UnitOfWorkFactory,
    request: ConversationInput,
    *,
    max_turns: int,
    now: datetime,
    trace_id: str = "",
) -> EndResult:
    """Validate, normalize, then store the conversation and its outbox row atomically.

    The write is one statement (atomic on its own), so it needs no transaction: one round
    trip to the database.
    """
    violations = validate_conversation(request, max_turns)
    if violations:
        raise InvalidRequest(violations)
    new = NewConversation(
        request=request,
        normalized=normalize_turns(request.turns),
        content_hash=content_hash(request),
        accepted_at=now,
        trace_id=trace_id,
    )
    with uow_factory(transaction=False) as uow:
        if uow.conversations.insert_with_outbox_if_absent(new):
            uow.commit()
            return EndResult(request.conversation_id, Status.PENDING, False, now)
        existing = uow.conversations.get_state(request.conversation_id)
    if existing is None:  # deleted in between: not something this service does
        raise ConversationNotFound()
    if existing.content_hash != new.content_hash:
        raise ContentConflict()
    return EndResult(request.conversation_id, existing.status, True, existing.accepted_at)


def get_status(uow_factory: UnitOfWorkFactory, conversation_id: str) -> ConversationState:
    _require_id(conversation_id)
    with uow_factory(transaction=False) as uow:
        state = uow.conversations.get_state(conversation_id)
    if state is None:
        raise ConversationNotFound()
    return state


def claim_conversation(
    uow_factory: UnitOfWorkFactory, conversation_id: str, lease_seconds: int, *, now: datetime
) -> ClaimResult:
    """A non-terminal conversation becomes PROCESSING (attempts + 1) under a lease.

    First as one conditional update (one round trip, no transaction); if that changed
    nothing, the conversation is absent or was not claimable a moment ago, and the answer is
    decided under the row lock (its status may have moved since).
    """
    _require_id(conversation_id)
    if lease_seconds < 0 or lease_seconds > MAX_LEASE_S:
        raise InvalidRequest([("lease_seconds", f"must lie in 0..{MAX_LEASE_S} (0 = default)")])
    lease = timedelta(seconds=lease_seconds or DEFAULT_LEASE_S)
    with uow_factory(transaction=False) as uow:
        done = uow.conversations.claim_if(conversation_id, _CLAIMABLE, now + lease, now)
        uow.commit()
    if done is not None:
        attempts, normalized = done
        return ClaimResult(True, Status.PROCESSING, attempts, normalized)
    with uow_factory() as uow:
        state = uow.conversations.get_state(conversation_id, for_update=True)
        if state is None:
            raise ConversationNotFound()
        if not can_claim(state.status):
            return ClaimResult(False, state.status, state.attempts, None)
        claimed = dataclasses.replace(
            state,
            status=Status.PROCESSING,
            attempts=state.attempts + 1,
            lease_expires_at=now + lease,
            updated_at=now,
        )
        uow.conversations.save_state(claimed)
        conversation = uow.conversations.get_normalized(conversation_id)
        uow.commit()
    return ClaimResult(True, claimed.status, claimed.attempts, conversation)


def complete_conversation(
    uow_factory: UnitOfWorkFactory,
    conversation_id: str,
    outcome: Status,
    score_change: float,
    analysis: Analysis | None,
    *,
    now: datetime,
    on_processed: Callable[[timedelta], None] | None = None,
) -> Status:
    """PROCESSED (with score change and analysis) or SKIPPED; a terminal state never moves.

    `on_processed` hears, once per conversation, the time from acceptance to PROCESSED.
    First as one conditional update (one round trip, no transaction); if that changed
    nothing, the answer is decided under the row lock, as a claim's.
    """
    _require_id(conversation_id)
    if outcome not in COMPLETION_STATUSES:
        raise InvalidRequest([("status", "must be PROCESSED or SKIPPED")])
    processed = outcome == Status.PROCESSED
    with uow_factory(transaction=False) as uow:
        accepted_at = uow.conversations.complete_if(
            conversation_id,
            _COMPLETABLE[outcome],
            outcome,
            score_change if processed else None,
            analysis if processed else None,
            now,
        )
        uow.commit()
    if accepted_at is not None:
        if processed and on_processed is not None:
            on_processed(now - accepted_at)
        return outcome
    with uow_factory() as uow:
        state = uow.conversations.get_state(conversation_id, for_update=True)
        if state is None:
            raise ConversationNotFound()
        new_status = after_complete(state.status, outcome)
        if new_status == state.status:
            return state.status
        processed = new_status == Status.PROCESSED
        uow.conversations.save_state(
            dataclasses.replace(
                state,
                status=new_status,
                score_change=score_change if processed else None,
                analysis=analysis if processed else None,
                lease_expires_at=None,
                updated_at=now,
            )
        )
        uow.commit()
    if processed and on_processed is not None:
        on_processed(now - state.accepted_at)
    return new_status


def short_error(error: str) -> str:
    """At most MAX_ERROR_CHARS characters, no NUL (PostgreSQL text refuses it)."""
    return error.replace("\x00", "")[:MAX_ERROR_CHARS]


def fail_conversation(
    uow_factory: UnitOfWorkFactory,
    conversation_id: str,
    error: str,
    dead_lettered: bool,
    *,
    now: datetime,
) -> tuple[Status, int]:
    """A failed attempt: PENDING again (its retry is coming) or FAILED when dead-lettered."""
    _require_id(conversation_id)
    with uow_factory() as uow:
        state = uow.conversations.get_state(conversation_id, for_update=True)
        if state is None:
            raise ConversationNotFound()
        if is_terminal(state.status):
            return state.status, state.attempts
        new_status = after_fail(state.status, dead_lettered)
        uow.conversations.save_state(
            dataclasses.replace(
                state,
                status=new_status,
                last_error=short_error(error),
                lease_expires_at=None,
                updated_at=now,
            )
        )
        uow.commit()
    return new_status, state.attempts


def requeue_conversation(
    uow_factory: UnitOfWorkFactory, conversation_id: str, reason: str, *, now: datetime
) -> RequeueResult:
    """Operators' replay / re-process: enqueue the conversation again through the outbox.

    FAILED and SKIPPED go back to PENDING with attempts reset to 0 (the operator judged
    the cause fixed: a fresh budget of attempts); PENDING is enqueued once more unless a
    row already waits; PROCESSING only once its lease expired; PROCESSED never (its effect
    is applied exactly once). Safe to run twice: the second run finds PENDING and an
    unpublished row, and does nothing.
    """
    _require_id(conversation_id)
    with uow_factory() as uow:
        state = uow.conversations.get_state(conversation_id, for_update=True)
        if state is None:
            raise ConversationNotFound()
        lease_expired = state.lease_expires_at is None or state.lease_expires_at <= now
        action, detail = requeue_action(
            state.status,
            lease_expired=lease_expired,
            already_queued=uow.outbox.has_unpublished(conversation_id),
        )
        if action == RequeueAction.NOTHING:
            return RequeueResult(False, state.status, state.status, state.attempts, detail)
        new_state = state
        if action in (RequeueAction.RESET, RequeueAction.RELEASE):
            note = short_error(reason) if reason else state.last_error
            new_state = dataclasses.replace(
                state,
                status=Status.PENDING,
                attempts=0 if action == RequeueAction.RESET else state.attempts,
                last_error=note,
                lease_expires_at=None,
                updated_at=now,
            )
            uow.conversations.save_state(new_state)
        uow.outbox.add(conversation_id, now)
        uow.commit()
    return RequeueResult(True, state.status, new_state.status, new_state.attempts, detail)


def delete_user_data(
    uow_factory: UnitOfWorkFactory, user_id: str, *, now: datetime
) -> ErasureResult:
    """Erasure: every conversation of the user and its outbox rows, in one transaction.

    Each conversation row is locked before it goes: a claim, completion or failure of it
    running at that moment finishes first; afterwards they find nothing (NOT_FOUND) and the
    analyzer's message ends dead-lettered, holding only the id. A tombstone per conversation
    (hashes only) lets the analyzer and friendship refuse what is still in flight. A repeat
    deletes nothing and reports zeros, with the same hashes.
    """
    violation = id_violation("user_id", user_id)
    if violation:
        raise InvalidRequest([violation])
    user_hash = erasure_hash(user_id)
    with uow_factory() as uow:
        conversation_ids = uow.conversations.delete_of_user(user_id)
        outbox_rows = uow.outbox.delete_of(conversation_ids)
        uow.conversations.add_tombstones(
            user_hash, [erasure_hash(c) for c in conversation_ids], now
        )
        hashes = uow.conversations.tombstones_of(user_hash)
        uow.commit()
    return ErasureResult(
        deleted={"conversations": len(conversation_ids), "outbox": outbox_rows},
        erased_conversation_hashes=hashes,
    )


def drop_raw_logs(
    uow_factory: UnitOfWorkFactory,
    *,
    older_than: timedelta,
    batch_size: int,
    now: datetime,
    max_batches: int | None = None,
) -> int:
    """Retention: drops the raw log of conversations accepted more than `older_than` ago.

    The normalized log (the analysis input a re-process needs), the status, the analysis
    and the content hash (duplicate detection) stay. One short transaction per batch, so
    the job never holds many rows; running it again finds nothing left to drop.
    """
    if batch_size < 1:
        raise InvalidRequest([("batch_size", "must be at least 1")])
    cutoff = now - older_than
    total = 0
    batches = 0
    while max_batches is None or batches < max_batches:
        with uow_factory() as uow:
            dropped = uow.conversations.drop_raw_logs(cutoff, batch_size, now)
            uow.commit()
        total += dropped
        batches += 1
        if dropped < batch_size:
            break
    return total
