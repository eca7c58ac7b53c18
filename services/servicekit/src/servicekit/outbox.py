"""The outbox relay: publishes committed outbox rows to RabbitMQ, surviving broker outages.

A service writes its change and an outbox row in one transaction. This relay (an asyncio
task inside the server process) claims unpublished rows in batches with
`SELECT ... FOR UPDATE SKIP LOCKED` (several replicas may run), publishes each on a channel
with publisher confirms, and marks the confirmed rows published in the same transaction.
A row whose publish was not confirmed stays unpublished and is tried again: delivery is
at-least-once, with the same message_id every time; consumers are idempotent by it.

What differs per service is given to the relay: the store (its outbox table and how a row
becomes an `OutboxMessage`), how to declare the exchange, the metrics, the log lines, and
an optional hook run after each drain (ingest's lease sweeper).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import aio_pika
import sqlalchemy as sa
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange
from aio_pika.connection import make_url
from prometheus_client import Counter, Gauge
from sqlalchemy.engine import Connection, Engine

from servicekit.db import BlockingRunner, DatabaseUnavailable

MAX_BACKOFF_S = 10.0
FIRST_BACKOFF_S = 0.5


class BrokerUnavailable(Exception):
    pass


@dataclass(frozen=True)
class OutboxMessage:
    """What one outbox row publishes."""

    routing_key: str
    body: bytes
    message_id: str
    content_type: str
    type: str | None = None


@dataclass(frozen=True)
class Backlog:
    count: int  # rows not yet published
    oldest_age_s: float  # age of the oldest of them, 0 when none


class OutboxStore(Protocol):
    """Blocking outbox queries (run through the relay's BlockingRunner)."""

    def claim_batch(
        self, limit: int
    ) -> tuple[Connection | None, list[tuple[int, OutboxMessage]]]: ...

    def finish_batch(
        self, conn: Connection, published: Sequence[int], failed: Sequence[int]
    ) -> None: ...

    def abandon_batch(self, conn: Connection) -> None: ...

    def backlog(self) -> Backlog: ...


class SqlOutboxStore:
    """An outbox table with columns id, created_at, published_at and publish_attempts.

    `select` names the columns a message needs (id first, joins allowed); `to_message` turns
    one selected row into its message.
    """

    def __init__(
        self,
        engine: Engine,
        table: sa.Table,
        select: sa.Select[Any],
        to_message: Callable[[sa.Row[Any]], OutboxMessage],
    ) -> None:
        self._engine = engine
        self._table = table
        self._select = select
        self._to_message = to_message

    def claim_batch(
        self, limit: int
    ) -> tuple[Connection | None, list[tuple[int, OutboxMessage]]]:
        """Lock up to `limit` unpublished rows; the open transaction holds the locks."""
        table = self._table
        conn = self._engine.connect()
        try:
            conn.begin()
            rows = conn.execute(
                self._select.where(table.c.published_at.is_(None))
                .order_by(table.c.id)
                .limit(limit)
                .with_for_update(of=table, skip_locked=True)
            ).all()
        except BaseException:
            conn.invalidate()
            conn.close()
            raise
        if not rows:
            conn.rollback()
            conn.close()
            return None, []
        return conn, [(int(r.id), self._to_message(r)) for r in rows]

    def finish_batch(
        self, conn: Connection, published: Sequence[int], failed: Sequence[int]
    ) -> None:
        table = self._table
        try:
            if published:
                conn.execute(
                    sa.update(table)
                    .where(table.c.id.in_(published))
                    .values(
                        published_at=sa.func.now(),
                        publish_attempts=table.c.publish_attempts + 1,
                    )
                )
            if failed:
                conn.execute(
                    sa.update(table)
                    .where(table.c.id.in_(failed))
                    .values(publish_attempts=table.c.publish_attempts + 1)
                )
            conn.commit()
        finally:
            conn.close()

    def abandon_batch(self, conn: Connection) -> None:
        try:
            conn.rollback()
        finally:
            conn.close()

    def backlog(self) -> Backlog:
        table = self._table
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.coalesce(
                        sa.func.extract("epoch", sa.func.now() - sa.func.min(table.c.created_at)),
                        0,
                    ),
                )
                .select_from(table)
                .where(table.c.published_at.is_(None))
            ).one()
        return Backlog(int(row[0]), max(float(row[1]), 0.0))


@dataclass(frozen=True)
class RelayMetrics:
    backlog: Gauge
    published: Counter
    publish_failures: Counter
    oldest_age: Gauge | None = None


# Run after each drain with the relay's runner; True when it enqueued rows (drain again).
AfterDrain = Callable[[BlockingRunner], Awaitable[bool]]


class OutboxRelay:
    def __init__(
        self,
        *,
        name: str,
        store: OutboxStore,
        declare_exchange: Callable[[AbstractChannel], Awaitable[AbstractExchange]],
        metrics: RelayMetrics,
        log: logging.Logger,
        broker_down_message: str,
        broker_up_message: str,
        amqp_url: str,
        amqp_timeout_s: float,
        batch_size: int,
        poll_interval_s: float,
        db_timeout_s: float = 10.0,
        after_drain: AfterDrain | None = None,
    ) -> None:
        self._name = name
        self._store = store
        # One thread: the claimed batch's connection is used by one thread at a time.
        self._runner = BlockingRunner(workers=1, timeout_s=db_timeout_s, name=name)
        self._declare_exchange = declare_exchange
        self._metrics = metrics
        self._log = log
        self._broker_down_message = broker_down_message
        self._broker_up_message = broker_up_message
        self._amqp_url = amqp_url
        self._amqp_timeout_s = amqp_timeout_s
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._after_drain = after_drain
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
            self._task = asyncio.create_task(self._run(), name=self._name)

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
        """Unpublished outbox rows (also exported as the backlog gauge, with the oldest one's
        age as the oldest-age gauge when the service has one)."""
        backlog = await self._runner(self._store.backlog)
        self._metrics.backlog.set(backlog.count)
        if self._metrics.oldest_age is not None:
            self._metrics.oldest_age.set(backlog.oldest_age_s)
        return backlog.count

    # --- the loop --------------------------------------------------------------------------
    async def _run(self) -> None:
        backoff = FIRST_BACKOFF_S
        while not self._stopping.is_set():
            try:
                await self._ensure_connected()
                self._wake.clear()
                await self._drain()
                if self._after_drain is not None and await self._after_drain(self._runner):
                    await self._drain()
                await self.backlog()
                self._db_recovered()
                backoff = FIRST_BACKOFF_S
            except BrokerUnavailable as exc:
                await self._disconnect()
                if not self._broker_down:
                    self._broker_down = True
                    self._log.warning(self._broker_down_message, extra={"error": str(exc)})
                await self._refresh_gauges()
                await self._sleep(backoff, wakeable=False)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            except DatabaseUnavailable as exc:
                if not self._db_down:
                    self._db_down = True
                    self._log.warning(
                        "outbox relay cannot reach the database", extra={"error": str(exc)}
                    )
                await self._sleep(backoff, wakeable=False)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            except Exception:
                self._log.exception("outbox relay iteration failed")
                await self._sleep(backoff, wakeable=False)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            await self._sleep(self._poll_interval_s, wakeable=True)

    async def _refresh_gauges(self) -> None:
        """The backlog gauges keep moving while the broker is away (the stuck alert)."""
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

    def _db_recovered(self) -> None:
        if self._db_down:
            self._db_down = False
            self._log.info("outbox relay reaches the database again")

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
            self._metrics.published.inc(len(published))
            if failed:
                self._metrics.publish_failures.inc(len(failed))
                raise BrokerUnavailable(f"{len(failed)} publishes not confirmed")
            if len(rows) < self._batch_size:
                return

    async def _publish_all(
        self, rows: list[tuple[int, OutboxMessage]]
    ) -> tuple[list[int], list[int]]:
        results = await asyncio.gather(
            *(self._publish(message) for _, message in rows),
            return_exceptions=True,
        )
        published = [row[0] for row, r in zip(rows, results, strict=True) if r is None]
        failed = [row[0] for row, r in zip(rows, results, strict=True) if r is not None]
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result  # cancellation
        return published, failed

    async def _publish(self, message: OutboxMessage) -> None:
        exchange = self._exchange
        if exchange is None:
            raise BrokerUnavailable("not connected")
        await exchange.publish(
            aio_pika.Message(
                body=message.body,
                content_type=message.content_type,
                type=message.type,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=message.message_id,
            ),
            routing_key=message.routing_key,
            timeout=self._amqp_timeout_s,
        )

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
            self._exchange = await asyncio.wait_for(
                self._declare_exchange(channel), self._amqp_timeout_s
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise BrokerUnavailable(f"{type(exc).__name__}") from exc
        if self._broker_down:
            self._broker_down = False
            self._log.info(self._broker_up_message)

    async def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        self._channel = None
        self._exchange = None
        if connection is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), self._amqp_timeout_s)
