"""`make run` restarts what exits: the analyzer's recycling at once, crashes after a backoff."""

from __future__ import annotations

import os
import sys
import time

import pytest

from springctl.devrun import (
    RESTART_BACKOFF_S,
    STABLE_AFTER_S,
    Supervised,
    restart_delay,
    stop_all,
)


@pytest.mark.parametrize(
    ("exit_code", "ran_s", "failures", "expected"),
    [
        (75, 1.0, 3, (0.0, 0)),  # recycled: at once, not a failure
        (2, 1.0, 0, (None, 0)),  # invalid configuration: a restart cannot help
        (1, 1.0, 0, (RESTART_BACKOFF_S[0], 1)),
        (1, 1.0, 1, (RESTART_BACKOFF_S[1], 2)),
        (-9, 1.0, 99, (RESTART_BACKOFF_S[-1], 100)),  # capped
        (1, STABLE_AFTER_S, 4, (RESTART_BACKOFF_S[0], 1)),  # ran long enough: fresh backoff
        (0, 1.0, 0, (RESTART_BACKOFF_S[0], 1)),  # an exit nobody asked for
    ],
)
def test_restart_delay(
    exit_code: int, ran_s: float, failures: int, expected: tuple[float | None, int]
) -> None:
    assert restart_delay(exit_code, ran_s, failures) == expected


def _child(code: int, sleep_s: float = 0.0) -> list[str]:
    return [sys.executable, "-c", f"import sys, time; time.sleep({sleep_s}); sys.exit({code})"]


def _poll_until(supervised: Supervised, done: object, timeout_s: float = 10) -> bool:
    assert callable(done)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not supervised.poll():
            return False
        if done():
            return True
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_a_recycled_process_is_started_again_and_others_keep_running() -> None:
    recycling = Supervised("analyzer", _child(75, 0.2), dict(os.environ))
    steady = Supervised("ingest", _child(0, 60), dict(os.environ))
    try:
        assert _poll_until(recycling, lambda: recycling.restarts >= 2)
        assert steady.poll() and steady.running() is not None
    finally:
        stop_all([recycling, steady], grace_s=5)
    assert steady.child.returncode is not None


def test_a_crash_is_restarted_after_a_backoff_and_a_config_error_stops() -> None:
    crashing = Supervised("friendship", _child(1), dict(os.environ))
    started = time.monotonic()
    assert _poll_until(crashing, lambda: crashing.restarts >= 1)
    assert time.monotonic() - started >= RESTART_BACKOFF_S[0]
    misconfigured = Supervised("ingest", _child(2), dict(os.environ))
    assert _poll_until(misconfigured, lambda: False) is False
    stop_all([crashing, misconfigured], grace_s=5)
