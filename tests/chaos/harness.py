"""A stack of the real processes on a database of its own, with a supervisor and faults.

The services reach PostgreSQL through a TcpProxy (an outage is a refused or silent proxy;
the machine's server is never stopped). A supervisor thread plays Kubernetes: whatever
process exits (killed, crashed at start-up, recycled) is started again.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika
import grpc
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from servicekit.messaging import ROUTING_KEY_ENDED, Topology
from spring.friendship.v1 import friendship_pb2, friendship_pb2_grpc
from spring.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from tests.support.auth import READER_SCOPES, ROBOT_SCOPES, TEST_JWT_SECRET, bearer
from tests.support.broker import delete_namespace
from tests.support.env import AMQP_URL, free_port, new_namespace
from tests.support.own_db import engine_for, own_database
from tests.support.stack import ServiceProcess, Stack, build_stack
from tests.support.tcp_proxy import TcpProxy

RETRY_DELAYS_S = [1, 2]
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


class Supervisor:
    """Restarts any exited service after `delay_s`, like a pod's restartPolicy: Always."""

    def __init__(self, stack: Stack, delay_s: float = 0.5) -> None:
        self._stack = stack
        self._delay_s = delay_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.exits: list[tuple[str, int]] = []
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> Supervisor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def exit_codes(self, name: str) -> list[int]:
        with self._lock:
            return [code for who, code in self.exits if who == name]

    def kill(self, service: ServiceProcess) -> None:
        """kill -9; the supervisor starts it again."""
        with self._lock:
            if service.process is not None and service.process.poll() is None:
                service.process.send_signal(signal.SIGKILL)

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            for service in self._stack.services:
                with self._lock:
                    process = service.process
                    if process is None or process.poll() is None:
                        continue
                    self.exits.append((service.name, int(process.returncode)))
                time.sleep(self._delay_s)
                with self._lock:
                    if not self._stop.is_set():
                        service.start()


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


def restart_broker(down_s: float) -> None:
    rabbitmqctl("stop_app")
    try:
        time.sleep(down_s)
    finally:
        rabbitmqctl("start_app")
        rabbitmqctl("await_startup")


async def _publish_raw(namespace: str, bodies: list[bytes]) -> None:
    connection = await aio_pika.connect(AMQP_URL, timeout=5)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange, _ = await Topology(namespace).declare(channel)
        for body in bodies:
            await exchange.publish(
                aio_pika.Message(body=body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=ROUTING_KEY_ENDED,
            )


def publish_raw(namespace: str, bodies: list[bytes]) -> None:
    """Messages straight onto the work exchange (what a foreign or stale producer sends)."""
    asyncio.run(_publish_raw(namespace, bodies))


@dataclass
class OwnStack:
    stack: Stack
    db_url: str  # direct, for the checks
    proxy: TcpProxy
    engine: sa.Engine
    log_dir: Path
    supervisor: Supervisor | None = None
    accepted: set[str] = field(default_factory=set)

    @property
    def namespace(self) -> str:
        return self.stack.namespace

    def supervise(self) -> Supervisor:
        self.supervisor = Supervisor(self.stack).start()
        return self.supervisor

    # -- the robot ----------------------------------------------------------------------
    def send(
        self, request: ingest_pb2.EndConversationRequest, give_up_after_s: float = 60
    ) -> bool:
        """EndConversation as a robot does it: retried (same content) until answered."""
        deadline = time.monotonic() + give_up_after_s
        while time.monotonic() < deadline:
            try:
                with grpc.insecure_channel(self.stack.ingest.target) as channel:
                    reply = ingest_pb2_grpc.IngestServiceStub(channel).EndConversation(
                        request, metadata=bearer(ROBOT_SCOPES), timeout=3
                    )
            except grpc.RpcError as err:
                code = err.code() if isinstance(err, grpc.Call) else None
                if code not in RETRYABLE:
                    raise
                time.sleep(0.3)
                continue
            assert reply.conversation_id == request.conversation_id
            self.accepted.add(request.conversation_id)
            return True
        return False

    def level(self, user_id: str) -> friendship_pb2.GetLevelResponse:
        deadline = time.monotonic() + 30
        while True:
            try:
                with grpc.insecure_channel(self.stack.friendship.target) as channel:
                    stub = friendship_pb2_grpc.FriendshipServiceStub(channel)
                    reply: friendship_pb2.GetLevelResponse = stub.GetLevel(
                        friendship_pb2.GetLevelRequest(user_id=user_id),
                        metadata=bearer(READER_SCOPES),
                        timeout=3,
                    )
                return reply
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)

    # -- what the database says -----------------------------------------------------------
    def statuses(self) -> dict[str, str]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT conversation_id, status FROM ingest.conversations")
            ).all()
        return {str(cid): str(status) for cid, status in rows}

    def wait_drained(self, ids: set[str], timeout_s: float) -> tuple[bool, float]:
        """Until every id is terminal and the outbox is empty; (drained, seconds waited)."""
        started = time.monotonic()
        while True:
            statuses = self.statuses()
            with self.engine.connect() as conn:
                backlog = conn.execute(
                    sa.text("SELECT count(*) FROM ingest.outbox WHERE published_at IS NULL")
                ).scalar_one()
            pending = [cid for cid in ids if statuses.get(cid) not in TERMINAL]
            waited = time.monotonic() - started
            if not pending and backlog == 0:
                return True, waited
            if waited > timeout_s:
                return False, waited
            time.sleep(0.5)

    def ledger(self) -> list[tuple[str, str, float]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT conversation_id, user_id, applied_delta FROM friendship.ledger")
            ).all()
        return [(str(c), str(u), float(d)) for c, u, d in rows]

    def processed_scores(self) -> dict[str, float]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT conversation_id, score_change FROM ingest.conversations "
                    "WHERE status = 'PROCESSED'"
                )
            ).all()
        return {str(c): float(s) for c, s in rows}


TERMINAL = {"PROCESSED", "SKIPPED", "FAILED"}


@contextlib.contextmanager
def own_stack(
    tmp_dir: Path, extra_env: dict[str, str] | None = None, prefix: str = "chaos"
) -> Iterator[OwnStack]:
    env = {
        "ANALYZER_RETRY_DELAYS_S": str(RETRY_DELAYS_S),
        "ANALYZER_MAX_ATTEMPTS": "3",
        "RELAY_POLL_INTERVAL_S": "0.2",
        "SHUTDOWN_GRACE_S": "5",
        "DB_POOL_SIZE": "8",
    }
    env.update(extra_env or {})
    with own_database(prefix) as db_url:
        url = make_url(db_url)
        proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432, free_port()).start()
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
        namespace = new_namespace()
        stack = build_stack(
            database_url=proxied, amqp_url=AMQP_URL, namespace=namespace,
            jwt_secret=TEST_JWT_SECRET, log_dir=tmp_dir, extra_env=env,
        )  # fmt: skip
        engine = engine_for(db_url)
        own = OwnStack(stack, db_url, proxy, engine, tmp_dir)
        try:
            for service in stack.services:
                service.start()
                service.wait_serving()
            yield own
        finally:
            if own.supervisor is not None:
                own.supervisor.stop()
            for service in stack.services:
                if service.process is not None:
                    service.stop(timeout_s=20)
            engine.dispose()
            proxy.close()
            with contextlib.suppress(Exception):
                asyncio.run(delete_namespace(AMQP_URL, namespace, RETRY_DELAYS_S))
