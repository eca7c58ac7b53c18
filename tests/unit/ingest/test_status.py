from __future__ import annotations

import pytest

from ingest.domain.status import (
    TERMINAL,
    Status,
    after_complete,
    after_fail,
    can_claim,
    claimable_statuses,
    completable_statuses,
    is_terminal,
)


def test_terminal_statuses() -> None:
    assert {Status.PROCESSED, Status.SKIPPED, Status.FAILED} == TERMINAL
    assert not is_terminal(Status.PENDING)
    assert not is_terminal(Status.PROCESSING)


@pytest.mark.parametrize("status", list(Status))
def test_only_non_terminal_conversations_can_be_claimed(status: Status) -> None:
    assert can_claim(status) == (status in {Status.PENDING, Status.PROCESSING})


def test_complete_moves_non_terminal_and_keeps_terminal() -> None:
    assert after_complete(Status.PROCESSING, Status.PROCESSED) == Status.PROCESSED
    assert after_complete(Status.PENDING, Status.SKIPPED) == Status.SKIPPED
    assert after_complete(Status.SKIPPED, Status.PROCESSED) == Status.SKIPPED
    assert after_complete(Status.FAILED, Status.PROCESSED) == Status.FAILED
    with pytest.raises(ValueError):
        after_complete(Status.PROCESSING, Status.FAILED)


def test_fail_returns_to_pending_or_dead_letters() -> None:
    assert after_fail(Status.PROCESSING, dead_lettered=False) == Status.PENDING
    assert after_fail(Status.PROCESSING, dead_lettered=True) == Status.FAILED
    assert after_fail(Status.PROCESSED, dead_lettered=True) == Status.PROCESSED
    assert after_fail(Status.SKIPPED, dead_lettered=False) == Status.SKIPPED


def test_the_conditional_updates_move_exactly_what_the_rules_move() -> None:
    # claim_if / complete_if are written from these sets: one target status per set.
    assert claimable_statuses() == {s for s in Status if can_claim(s)}
    for outcome in (Status.PROCESSED, Status.SKIPPED):
        moved = completable_statuses(outcome)
        assert moved == {Status.PENDING, Status.PROCESSING}
        for status in Status:
            assert after_complete(status, outcome) == (outcome if status in moved else status)
