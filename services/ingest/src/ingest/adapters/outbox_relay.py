"""The outbox relay: publishes committed conversations to RabbitMQ, surviving broker outages.

EndConversation writes the conversation and an outbox row in one transaction. This relay
(an asyncio task inside the server process) claims unpublished rows in batches with
`SELECT ... FOR UPDATE SKIP LOCKED` (several replicas may run), publishes each on a channel
with publisher confirms, and marks the confirmed rows published in the same transaction.
A row whose publish was not confirmed stays unpublished and is tried again: delivery is
at-least-once and the consumers are idempotent by conversation_id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from typing import Any

import aio_pika
import sqlalchemy as sa
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange
from aio_pika.connection import make_url
from prometheus_client import Counter, Gauge
from sqlalchemy.engine import Connection, Engine

from ingest.adapters.lease_sweeper import LeaseSweeper
from ingest.adapters.tables import conversations, outbox
from servicekit.db import BlockingRunner, DatabaseUnavailable
from servicekit.messaging import ROUTING_KEY_ENDED, Topology

log = logging.getLogger(__name__)

OUTBOX_BACKLOG = Gauge("ingest_outbox_backlog", "Outbox rows not yet published to RabbitMQ")
OUTBOX_PUBLISHED = Counter("ingest_outbox_published_total", "Outbox rows published")
OUTBOX_PUBLISH_FAILURES = Counter(
    "ingest_outbox_publish_failures_total", "Publish attempts that were not confirmed"
)
OUTBOX_OLDEST_AGE = Gauge(
    "ingest_outbox_oldest_age_seconds",
    "Age of the oldest outbox row not yet published (0 when none): the relay's lag",
)

MAX_BACKOFF_S = 10.0
FIRST_BACKOFF_S = 0.5


class BrokerUnavailable(Exception):
    pass


def message_body(conversation_id: str, trace_id: str = "") -> bytes:
    """Ids, never the log. The trace id lets the analyzer's log lines join ingest's."""
    payload = {"conversation_id": conversation_id}
    if trace_id:
        payload["trace_id"] = trace_id
    return json.dumps(payload).encode()


class OutboxStore:
    """Blocking outbox queries, run through a BlockingRunner."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def claim_batch(self, limit: int) -> tuple[Connection | None, list[tuple[int, str, str]]]:
        """Lock up to `limit` unpublished rows; the open transaction holds the locks.

        Rows are (outbox id, conversation id, trace id); the trace id is "" for a
        conversation that has none (accepted before migration 0004) or no longer exists.
        """
        conn = self._engine.connect()
        try:
            conn.begin()
            rows = conn.execute(
                sa.select(
                    outbox.c.id,
                    outbox.c.conversation_id,
                    sa.func.coalesce(conversations.c.trace_id, "").label("trace_id"),
                )
                .select_from(
                    outbox.outerjoin(
                        conversations,
                        conversations.c.conversation_id == outbox.c.conversation_id,
                    )
                )
                .where(outbox.c.published_at.is_(None))
                .order_by(outbox.c.id)
                .limit(limit)
                .with_for_update(of=outbox, skip_locked=True)
            ).all()
        except BaseException:
            conn.invalidate()
            conn.close()
            raise
        if not rows:
            conn.rollback()
            conn.close()
            return None, []
        return conn, [(int(r.id), str(r.conversation_id), str(r.trace_id)) for r in rows]

    @staticmethod
    def finish_batch(conn: Connection, published: Sequence[int], failed: Sequence[int]) -> None:
        try:
            if published:
                conn.execute(
                    sa.update(outbox)
                    .where(outbox.c.id.in_(published))
                    .values(
                        published_at=sa.func.now(),
                        publish_attempts=outbox.c.publish_attempts + 1,
                    )
                )
            if failed:
                conn.execute(
                    sa.update(outbox)
                    .where(outbox.c.id.in_(failed))
                    .values(publish_attempts=outbox.c.publish_attempts + 1)
                )
            conn.commit()
        finally:
            conn.close()

    @staticmethod
    def abandon_batch(conn: Connection) -> None:
        try:
            conn.rollback()
        finally:
            conn.close()

    def backlog(self) -> tuple[int, float]:
        """(unpublished rows, age in seconds of the oldest of them, 0 when none)."""
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.coalesce(
                        sa.func.extract("epoch", sa.func.now() - sa.func.min(outbox.c.created_at)),
                        0,
                    ),
                )
                .select_from(outbox)
                .where(outbox.c.published_at.is_(None))
            ).one()
        return int(row[0]), max(float(row[1]), 0.0)


class OutboxRelay:
    def __init__(
        self,
        *,
        engine: Engine,
        amqp_url: str,
        namespace: str,
        amqp_timeout_s: float,
        batch_size: int,
        poll_interval_s: float,
        db_timeout_s: float = 10.0,
        sweeper: LeaseSweeper | None = None,
        sweep_interval_s: float = 30.0,
    ) -> None:
        self._store = OutboxStore(engine)
        # One thread: the claimed batch's connection is used by one thread at a time.
        self._runner = BlockingRunner(workers=1, timeout_s=db_timeout_s, name="outbox-relay")
        self._amqp_url = amqp_url
        self._topology = Topology(namespace)
        self._amqp_timeout_s = amqp_timeout_s
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._broker_down = False
        self._db_down = False
        self._sweeper = sweeper
        self._sweep_interval_s = sweep_interval_s
        self._next_sweep = 0.0

    # --- control ---------------------------------------------------------------------------
    def wake(self) -> None:
        """Publish now (called after a commit) instead of at the next poll."""
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, self._amqp_timeout_s + 15)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
                with contextlib.suppress(BaseException):
                    await self._task
            self._task = None
        await self._disconnect()
        self._runner.shutdown()

    async def backlog(self) -> int:
        """Unpublished outbox rows (also exported as the ingest_outbox_backlog gauge, with
        the oldest one's age as ingest_outbox_oldest_age_seconds)."""
        count, oldest_age_s = await self._runner(self._store.backlog)
        OUTBOX_BACKLOG.set(count)
        OUTBOX_OLDEST_AGE.set(oldest_age_s)
        return count

    # --- the loop --------------------------------------------------------------------------
    async def _run(self) -> None:
        backoff = FIRST_BACKOFF_S
        while not self._stopping.is_set():
            try:
                await self._ensure_connected()
                self._wake.clear()
                await self._drain()
                if await self._sweep_if_due():
                    await self._drain()
                await self.backlog()
                self._db_recovered()
                backoff = FIRST_BACKOFF_S
            except BrokerUnavailable as exc:
                await self._disconnect()
                if not self._broker_down:
                    self._broker_down = True
                    log.warning(
                        "broker unreachable; conversations stay in the outbox until it returns",
                        extra={"error": str(exc)},
                    )
                await self._refresh_gauges()
                await self._sleep(backoff, wakeable=False)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            except DatabaseUnavailable as exc:
                if not self._db_down:
                    self._db_down = True
                    log.warning("outbox relay cannot reach the database", extra={"error": str(exc)})
                await self._sleep(backoff, wakeable=False)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            except Exception:
                log.exception("outbox relay iteration failed")
                await self._sleep(backoff, wakeable=False)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            await self._sleep(self._poll_interval_s, wakeable=True)

    async def _refresh_gauges(self) -> None:
        """Backlog and oldest age keep moving while the broker is away (the stuck alert)."""
        with contextlib.suppress(Exception):
            await self.backlog()

    async def _sleep(self, seconds: float, *, wakeable: bool) -> None:
        waiters = [asyncio.ensure_future(self._stopping.wait())]
        if wakeable:
            waiters.append(asyncio.ensure_future(self._wake.wait()))
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _sweep_if_due(self) -> bool:
        """True when the sweep enqueued conversations again (drain them now)."""
        loop = asyncio.get_running_loop()
        if self._sweeper is None or loop.time() < self._next_sweep:
            return False
        self._next_sweep = loop.time() + self._sweep_interval_s
        result = await self._runner(self._sweeper.sweep)
        if result.total:
            log.warning(
                "sweeper enqueued conversations again",
                extra={"lease_expired": result.released, "pending_stale": result.nudged},
            )
        return result.total > 0

    def _db_recovered(self) -> None:
        if self._db_down:
            self._db_down = False
            log.info("outbox relay reaches the database again")

    async def _drain(self) -> None:
        """Publish batches until fewer than a full batch is left (or we are stopping)."""
        while not self._stopping.is_set():
            conn, rows = await self._runner(self._store.claim_batch, self._batch_size)
            if conn is None:
                return
            try:
                published, failed = await self._publish_all(rows)
            except BaseException:
                await self._runner(self._store.abandon_batch, conn)
                raise
            await self._runner(self._store.finish_batch, conn, published, failed)
            OUTBOX_PUBLISHED.inc(len(published))
            if failed:
                OUTBOX_PUBLISH_FAILURES.inc(len(failed))
                raise BrokerUnavailable(f"{len(failed)} publishes not confirmed")
            if len(rows) < self._batch_size:
                return

    async def _publish_all(
        self, rows: list[tuple[int, str, str]]
    ) -> tuple[list[int], list[int]]:
        results = await asyncio.gather(
            *(self._publish(conversation_id, trace_id) for _, conversation_id, trace_id in rows),
            return_exceptions=True,
        )
        published = [row[0] for row, r in zip(rows, results, strict=True) if r is None]
        failed = [row[0] for row, r in zip(rows, results, strict=True) if r is not None]
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result  # cancellation
        return published, failed

    async def _publish(self, conversation_id: str, trace_id: str = "") -> None:
        exchange = self._exchange
        if exchange is None:
            raise BrokerUnavailable("not connected")
        message = aio_pika.Message(
            body=message_body(conversation_id, trace_id),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=conversation_id,
        )
        await exchange.publish(message, routing_key=ROUTING_KEY_ENDED, timeout=self._amqp_timeout_s)

    # --- the broker connection -------------------------------------------------------------
    async def _ensure_connected(self) -> None:
        if (
            self._connection is not None
            and not self._connection.is_closed
            and self._channel is not None
            and not self._channel.is_closed
            and self._exchange is not None
        ):
            return
        await self._disconnect()
        try:
            # A plain (not robust) connection: this loop owns reconnection and its backoff.
            # Built here (not with aio_pika.connect) so a failed attempt is closed by us,
            # not left to the garbage collector.
            connection: Any = aio_pika.Connection(make_url(self._amqp_url))
            self._connection = connection
            await connection.connect(timeout=self._amqp_timeout_s)
            channel = await asyncio.wait_for(
                connection.channel(publisher_confirms=True), self._amqp_timeout_s
            )
            self._channel = channel
            exchange, _queue = await asyncio.wait_for(
                self._topology.declare(channel), self._amqp_timeout_s
            )
            self._exchange = exchange
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise BrokerUnavailable(f"{type(exc).__name__}") from exc
        if self._broker_down:
            self._broker_down = False
            log.info("broker reachable again; draining the outbox")

    async def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        self._channel = None
        self._exchange = None
        if connection is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), self._amqp_timeout_s)
