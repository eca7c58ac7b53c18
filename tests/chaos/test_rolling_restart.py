"""A rolling restart of every service under load, on the real processes: nothing lost or
applied twice.

What a Deployment with `maxSurge: 1, maxUnavailable: 0` does to a pod is played here on
one machine, one service at a time, while a robot load flows:
1. start a second process of the service (the surge) and wait until it is SERVING;
2. SIGTERM the old one: it goes NOT_SERVING, finishes in-flight work within
   SHUTDOWN_GRACE_S and exits 0 (the analyzer: stops consuming, drains its messages).
ingest and friendship bind their gRPC port with SO_REUSEPORT (gRPC's default on Linux),
so the new process listens on the same port next to the old one and the kernel spreads
new connections over both, the way a Service spreads them over pods; clients holding a
connection to the old process get GOAWAY and reconnect. The robot retries UNAVAILABLE,
as it must anyway.

What this proves: the drains (server grace, consumer cancel + in-flight finish, outbox
relay handing over to the next relay) lose nothing and the exactly-once ledger holds
through a restart of each service under load. What only a cluster shows: endpoint
removal timing (preStop), kube-proxy/Envoy balancing, probe-driven readiness gates.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.chaos.harness import OwnStack, own_stack
from tests.support.conversations import conversation
from tests.support.env import free_port, new_id
from tests.support.figures import report
from tests.support.stack import ServiceProcess

pytestmark = pytest.mark.e2e

USERS = 6
# What each service's twin logs for work it did itself.
WORK_LINE = {
    "analyzer": '"conversation handled"',
    "ingest": '"conversation accepted"',
    "friendship": '"conversation applied"',
}


def surge(service: ServiceProcess, log_dir: Path, new_grpc_port: bool) -> ServiceProcess:
    """A second process of the same service: same gRPC port (SO_REUSEPORT) unless asked."""
    grpc_port = free_port() if new_grpc_port else service.grpc_port
    metrics_port = free_port()
    env = dict(service.env, GRPC_PORT=str(grpc_port), METRICS_PORT=str(metrics_port))
    twin = dataclasses.replace(
        service, grpc_port=grpc_port, metrics_port=metrics_port, env=env,
        log_path=log_dir / f"{service.name}-2.log", process=None,
    )  # fmt: skip
    twin.start()
    twin.wait_serving()
    # SERVING on a shared port may be the old process answering: wait for the twin's own
    # "listening" line (it exits if it cannot bind).
    deadline = time.monotonic() + 30
    while '"listening"' not in twin.log_text():
        assert twin.process is not None and twin.process.poll() is None, twin.log_text()[-2000:]
        assert time.monotonic() < deadline, f"{twin.name} twin never listened"
        time.sleep(0.1)
    return twin


def robot_load(own: OwnStack, users: list[str], stop: threading.Event, sent: list[str]) -> None:
    i = 0
    while not stop.is_set():
        request = conversation(user_id=users[i % len(users)], questions=1, agent_tag="music")
        if own.send(request, give_up_after_s=30):
            sent.append(request.conversation_id)
        i += 1
        time.sleep(0.05)


def test_rolling_restart_of_every_service_under_load_loses_nothing(tmp_path: Path) -> None:
    with own_stack(tmp_path, {"SHUTDOWN_GRACE_S": "10"}, prefix="rolling") as own:
        users = [new_id("rolling-user") for _ in range(USERS)]
        stop = threading.Event()
        sent: list[str] = []
        robot = threading.Thread(target=robot_load, args=(own, users, stop, sent))
        robot.start()
        exits: dict[str, int] = {}
        started = time.monotonic()
        try:
            time.sleep(2)
            for name in ("analyzer", "ingest", "friendship"):
                old: ServiceProcess = getattr(own.stack, name)
                # The analyzer's gRPC port serves health only: the twin gets its own.
                new = surge(old, tmp_path, new_grpc_port=name == "analyzer")
                setattr(own.stack, name, new)  # own_stack's cleanup stops the new one
                time.sleep(1.5)  # both serve for a moment, under load
                exits[name] = old.stop(timeout_s=30)
                time.sleep(1.5)
        finally:
            stop.set()
            robot.join(timeout=60)
        load_s = time.monotonic() - started

        drained, drain_s = own.wait_drained(own.accepted, timeout_s=90)
        statuses = own.statuses()
        by_status = Counter(statuses.get(c, "MISSING") for c in own.accepted)
        ledger = own.ledger()
        ledger_ids = Counter(c for c, _, _ in ledger)
        applied_twice = sum(n - 1 for n in ledger_ids.values() if n > 1)
        processed = own.processed_scores()
        with own.engine.connect() as conn:
            ledger_scores = dict(
                conn.execute(
                    sa.text("SELECT conversation_id, score_change FROM friendship.ledger")
                ).all()
            )
        mismatched = []
        for user in users:
            level = own.level(user)
            expected = sum(d for _, u, d in ledger if u == user)
            count = sum(1 for _, u, _ in ledger if u == user)
            if abs(level.score - expected) > 1e-6 or level.conversations != count:
                mismatched.append(user)

        report(
            "rolling restart",
            sent=len(sent),
            accepted=len(own.accepted),
            processed=by_status["PROCESSED"],
            other_statuses={k: v for k, v in by_status.items() if k != "PROCESSED"},
            applied_twice=applied_twice,
            exit_codes=exits,
            load_s=round(load_s, 1),
            drain_s=round(drain_s, 1),
        )
        # Every old process drained and exited cleanly on SIGTERM; every twin took over.
        assert exits == {"analyzer": 0, "ingest": 0, "friendship": 0}
        for name, line in WORK_LINE.items():
            assert line in getattr(own.stack, name).log_text(), f"{name} twin did no work"
        assert drained, f"not drained: {by_status}"
        assert len(own.accepted) >= 40 and len(sent) == len(own.accepted)
        # Nothing lost: every accepted conversation PROCESSED (none failed, none stuck).
        assert by_status == Counter({"PROCESSED": len(own.accepted)})
        # Nothing applied twice, and the ledger is exactly ingest's PROCESSED set.
        assert applied_twice == 0
        assert set(ledger_ids) == set(processed) >= own.accepted
        assert all(abs(ledger_scores[c] - s) < 1e-9 for c, s in processed.items())
        assert mismatched == []
