"""Operators' commands on the real processes: dead letters listed, replayed, re-processed.

Friendship is down, so two conversations fail three times and are dead-lettered (FAILED);
a malformed message joins them. `springctl` (the real command, as an operator runs it)
lists them without losing any, replays one, then all, and re-processes a PROCESSED one;
every command run twice changes nothing the second time, and the friendship ledger holds
each conversation once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.harness import OwnStack, own_stack, publish_raw
from tests.support.auth import TEST_JWT_SECRET
from tests.support.conversations import conversation
from tests.support.env import AMQP_URL

pytestmark = pytest.mark.e2e
SPRINGCTL = Path(sys.executable).parent / "springctl"


def springctl(own: OwnStack, *args: str) -> tuple[int, list[dict[str, Any]]]:
    env = dict(
        os.environ,
        AUTH_JWT_SECRET=TEST_JWT_SECRET,
        AMQP_URL=AMQP_URL,
        AMQP_NAMESPACE=own.namespace,
        INGEST_GRPC_TARGET=own.stack.ingest.target,
    )
    done = subprocess.run(
        [str(SPRINGCTL), args[0], "--json", *args[1:]],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines() if line]


def wait_status(own: OwnStack, cid: str, wanted: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while own.statuses().get(cid) != wanted:
        assert time.monotonic() < deadline, f"{cid} is {own.statuses().get(cid)}, not {wanted}"
        time.sleep(0.2)


def by_id(rows: list[dict[str, Any]]) -> dict[str | None, dict[str, Any]]:
    return {row["conversation_id"]: row for row in rows}


def test_dead_letters_are_listed_replayed_and_reprocessed_idempotently(tmp_path: Path) -> None:
    with own_stack(tmp_path, prefix="operator") as own:
        own.stack.friendship.stop()
        user = "user-operator"
        first, second = conversation(user_id=user), conversation(user_id=user)
        for request in (first, second):
            assert own.send(request)
        publish_raw(own.namespace, [b"not json at all"])
        for request in (first, second):
            wait_status(own, request.conversation_id, "FAILED")

        code, listed = springctl(own, "dlq-list")
        letters = by_id(listed)
        assert code == 0 and set(letters) == {first.conversation_id, second.conversation_id, None}
        failed = letters[first.conversation_id]
        assert failed["status"] == "FAILED" and failed["attempts"] == 3
        assert failed["reason"].startswith("friendship.")  # e.g. friendship.Apply UNAVAILABLE
        assert failed["age_s"] is not None and 0 <= failed["age_s"] < 60
        assert letters[None]["reason"] == "malformed message"
        _, again = springctl(own, "dlq-list")
        assert sorted(map(str, by_id(again))) == sorted(map(str, letters))  # nothing lost

        own.stack.friendship.start()
        own.stack.friendship.wait_serving()

        code, replayed = springctl(own, "replay", first.conversation_id)
        assert code == 0
        assert [r["action"] for r in replayed] == ["requeued"]
        wait_status(own, first.conversation_id, "PROCESSED")
        code, replayed_again = springctl(own, "replay", first.conversation_id)
        assert code == 0 and [r["action"] for r in replayed_again] == ["absent"]

        code, replayed_all = springctl(own, "replay", "--all")
        outcome = by_id(replayed_all)
        assert outcome[second.conversation_id]["action"] == "requeued"
        assert outcome[None]["action"] == "kept"  # a malformed message has nothing to replay
        wait_status(own, second.conversation_id, "PROCESSED")
        _, left = springctl(own, "dlq-list")
        assert list(by_id(left)) == [None]

        level_before = own.level(user)
        code, reprocessed = springctl(own, "reprocess", first.conversation_id)
        assert code == 0 and reprocessed[0]["action"] == "unchanged"
        assert "PROCESSED -> PROCESSED" in reprocessed[0]["detail"]
        time.sleep(1.0)
        assert own.level(user).score == level_before.score

        ledger = own.ledger()
        assert sorted(c for c, _, _ in ledger) == sorted(
            [first.conversation_id, second.conversation_id]
        )
        assert own.level(user).score == pytest.approx(sum(d for _, _, d in ledger))
        assert own.level(user).conversations == 2
