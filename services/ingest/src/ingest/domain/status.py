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
