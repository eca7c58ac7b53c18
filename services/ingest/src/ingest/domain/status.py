"""Conversation statuses and the transitions between them (MISSION.md, point 4)."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    PROCESSED = "PROCESSED"
    SKIPPED = "SKIPPED"
    FAILED = "FAILED"


TERMINAL = frozenset({Status.PROCESSED, Status.SKIPPED, Status.FAILED})
COMPLETION_STATUSES = frozenset({Status.PROCESSED, Status.SKIPPED})


def is_terminal(status: Status) -> bool:
    return status in TERMINAL


def can_claim(status: Status) -> bool:
    """Every non-terminal conversation can be claimed, PROCESSING included.

    A worker that died mid-way leaves it PROCESSING; the redelivered message must
    not be dropped. Downstream effects are idempotent by conversation_id.
    """
    return not is_terminal(status)


def claimable_statuses() -> frozenset[Status]:
    """The statuses can_claim accepts (for a claim written as one conditional update)."""
    return frozenset(s for s in Status if can_claim(s))


def completable_statuses(outcome: Status) -> frozenset[Status]:
    """The statuses a completion as `outcome` moves, each of them to `outcome` (for a
    completion written as one conditional update); from any other it changes nothing."""
    moved = frozenset(s for s in Status if after_complete(s, outcome) != s)
    assert all(after_complete(s, outcome) == outcome for s in moved)
    return moved


def after_complete(current: Status, outcome: Status) -> Status:
    """The status once a worker reports `outcome`; terminal states never change."""
    if outcome not in COMPLETION_STATUSES:
        raise ValueError(f"a conversation completes as PROCESSED or SKIPPED, not {outcome}")
    return current if is_terminal(current) else outcome


def after_fail(current: Status, dead_lettered: bool) -> Status:
    """A failed attempt: back to PENDING for its retry, or FAILED once dead-lettered."""
    if is_terminal(current):
        return current
    return Status.FAILED if dead_lettered else Status.PENDING


class RequeueAction(StrEnum):
    RESET = "reset"  # back to PENDING with a fresh attempt budget, and enqueued
    RELEASE = "release"  # back to PENDING, attempts kept, and enqueued
    NUDGE = "nudge"  # status unchanged, enqueued once more
    NOTHING = "nothing"


def requeue_action(current: Status, *, lease_expired: bool, already_queued: bool) -> (
    tuple[RequeueAction, str]
):
    """What an operator's replay/re-process does to a conversation in `current`.

    PROCESSED is never reset: friendship applied its effect exactly once and a second
    run would recompute nothing (the analyzer keeps its first analysis, the ledger its
    first entry). A PROCESSING conversation under a live lease belongs to a worker.
    """
    if current == Status.PROCESSED:
        return RequeueAction.NOTHING, "already processed; its effect is applied exactly once"
    if current in (Status.FAILED, Status.SKIPPED):
        return RequeueAction.RESET, f"was {current.value}; attempts reset"
    if current == Status.PROCESSING and not lease_expired:
        return RequeueAction.NOTHING, "being processed under a live lease"
    if already_queued:
        return RequeueAction.NOTHING, "already waiting in the outbox"
    if current == Status.PROCESSING:
        return RequeueAction.RELEASE, "lease expired (worker lost)"
    return RequeueAction.NUDGE, "pending; enqueued again"
