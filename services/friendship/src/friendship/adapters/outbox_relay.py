"""The event relay: publishes committed level-change events to RabbitMQ, surviving outages.

A mirror of ingest's outbox relay (services/ingest/src/ingest/adapters/outbox_relay.py), for
friendship's own outbox. ApplyConversation (or a rule change) writes the new level and an
outbox row in one transaction. This relay (an asyncio task inside the server process) claims
unpublished rows in batches with `SELECT ... FOR UPDATE SKIP LOCKED` (several replicas may
run), publishes each to the topic exchange `<namespace>.friendship.events` on a channel with
publisher confirms, and marks the confirmed rows published in the same transaction. A row
whose publish was not confirmed stays unpublished and is tried again: delivery is
at-least-once, with the same event_id (AMQP message_id) every time; subscribers deduplicate
by event_id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aio_pika
import sqlalchemy as sa
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange
from aio_pika.connection import make_url
from prometheus_client import Counter, Gauge
from sqlalchemy.engine import Connection, Engine

from friendship.adapters.tables import outbox
from servicekit.db import BlockingRunner, DatabaseUnavailable

log = logging.getLogger(__name__)

OUTBOX_BACKLOG = Gauge(
    "friendship_outbox_backlog", "Level-change events not yet published to RabbitMQ"
)
OUTBOX_PUBLISHED = Counter("friendship_outbox_published_total", "Level-change events published")
OUTBOX_PUBLISH_FAILURES = Counter(
    "friendship_outbox_publish_failures_total", "Event publishes that were not confirmed"
)

MAX_BACKOFF_S = 10.0
FIRST_BACKOFF_S = 0.5


class BrokerUnavailable(Exception):
    pass


def events_exchange(namespace: str) -> str:
    return f"{namespace}.friendship.events"


@dataclass(frozen=True)
class OutboxRow:
    id: int
    event_id: str
    routing_key: str
    message_type: str
    payload: bytes


class OutboxStore:
    """Blocking outbox queries, run through a BlockingRunner."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def claim_batch(self, limit: int) -> tuple[Connection | None, list[OutboxRow]]:
        """Lock up to `limit` unpublished rows; the open transaction holds the locks."""
        conn = self._engine.connect()
        try:
            conn.begin()
            rows = conn.execute(
                sa.select(
                    outbox.c.id,
                    outbox.c.event_id,
                    outbox.c.routing_key,
                    outbox.c.message_type,
                    outbox.c.payload,
                )
                .where(outbox.c.published_at.is_(None))
                .order_by(outbox.c.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
        except BaseException:
            conn.invalidate()
            conn.close()
            raise
        if not rows:
            conn.rollback()
            conn.close()
            return None, []
        return conn, [
            OutboxRow(int(r.id), str(r.event_id), str(r.routing_key), str(r.message_type),
                      bytes(r.payload))
            for r in rows
        ]

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

    def backlog(self) -> int:
        with self._engine.connect() as conn:
            count = conn.execute(
                sa.select(sa.func.count())
                .select_from(outbox)
                .where(outbox.c.published_at.is_(None))
            ).scalar_one()
        return int(count)


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
    ) -> None:
        self._store = OutboxStore(engine)
        # One thread: the claimed batch's connection is used by one thread at a time.
        self._runner = BlockingRunner(
            workers=1, timeout_s=db_timeout_s, name="friendship-outbox-relay"
        )
        self._amqp_url = amqp_url
        self._exchange_name = events_exchange(namespace)
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

    # --- control ---------------------------------------------------------------------------
    def wake(self) -> None:
        """Publish now (called after a commit) instead of at the next poll."""
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="friendship-outbox-relay")

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
        """Unpublished outbox rows (also exported as the friendship_outbox_backlog gauge)."""
        count = await self._runner(self._store.backlog)
        OUTBOX_BACKLOG.set(count)
        return count

    # --- the loop --------------------------------------------------------------------------
    async def _run(self) -> None:
        backoff = FIRST_BACKOFF_S
        while not self._stopping.is_set():
            try:
                await self._ensure_connected()
                self._wake.clear()
                await self._drain()
                await self.backlog()
                self._db_recovered()
                backoff = FIRST_BACKOFF_S
            except BrokerUnavailable as exc:
                await self._disconnect()
                if not self._broker_down:
                    self._broker_down = True
                    log.warning(
                        "broker unreachable; level events stay in the outbox until it returns",
                        extra={"error": str(exc)},
                    )
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

    async def _sleep(self, seconds: float, *, wakeable: bool) -> None:
        waiters = [asyncio.ensure_future(self._stopping.wait())]
        if wakeable:
            waiters.append(asyncio.ensure_future(self._wake.wait()))
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

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

    async def _publish_all(self, rows: list[OutboxRow]) -> tuple[list[int], list[int]]:
        results = await asyncio.gather(
            *(self._publish(row) for row in rows),
            return_exceptions=True,
        )
        published = [row.id for row, r in zip(rows, results, strict=True) if r is None]
        failed = [row.id for row, r in zip(rows, results, strict=True) if r is not None]
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result  # cancellation
        return published, failed

    async def _publish(self, row: OutboxRow) -> None:
        exchange = self._exchange
        if exchange is None:
            raise BrokerUnavailable("not connected")
        message = aio_pika.Message(
            body=row.payload,
            content_type="application/x-protobuf",
            type=row.message_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=row.event_id,
        )
        await exchange.publish(message, routing_key=row.routing_key, timeout=self._amqp_timeout_s)

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
            # Subscribers declare and bind their own queues (docs/friendship.md).
            exchange = await asyncio.wait_for(
                channel.declare_exchange(
                    self._exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
                ),
                self._amqp_timeout_s,
            )
            self._exchange = exchange
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise BrokerUnavailable(f"{type(exc).__name__}") from exc
        if self._broker_down:
            self._broker_down = False
            log.info("broker reachable again; draining the level events outbox")

    async def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        self._channel = None
        self._exchange = None
        if connection is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), self._amqp_timeout_s)
