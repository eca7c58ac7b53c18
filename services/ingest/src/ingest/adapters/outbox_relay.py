"""Ingest's outbox relay: publishes committed conversation ids to the conversations exchange.

EndConversation writes the conversation and an outbox row in one transaction; the generic
relay (servicekit.outbox: SKIP LOCKED batches, publisher confirms, backoff, one warning per
outage) publishes each row as `{conversation_id, trace_id}` with routing key
conversation.ended. The lease sweeper runs in the relay's loop, on its DB thread.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import sqlalchemy as sa
from aio_pika.abc import AbstractChannel, AbstractExchange
from prometheus_client import Counter, Gauge
from sqlalchemy.engine import Engine

import servicekit.outbox
from ingest.adapters.lease_sweeper import LeaseSweeper
from ingest.adapters.tables import conversations, outbox
from servicekit.db import BlockingRunner
from servicekit.messaging import ROUTING_KEY_ENDED, Topology
from servicekit.outbox import OutboxMessage, RelayMetrics, SqlOutboxStore

log = logging.getLogger(__name__)

METRICS = RelayMetrics(
    backlog=Gauge("ingest_outbox_backlog", "Outbox rows not yet published to RabbitMQ"),
    published=Counter("ingest_outbox_published_total", "Outbox rows published"),
    publish_failures=Counter(
        "ingest_outbox_publish_failures_total", "Publish attempts that were not confirmed"
    ),
    oldest_age=Gauge(
        "ingest_outbox_oldest_age_seconds",
        "Age of the oldest outbox row not yet published (0 when none): the relay's lag",
    ),
)

# The trace id is "" for a conversation that has none (accepted before migration 0004) or
# no longer exists.
CLAIM = sa.select(
    outbox.c.id,
    outbox.c.conversation_id,
    sa.func.coalesce(conversations.c.trace_id, "").label("trace_id"),
).select_from(
    outbox.outerjoin(conversations, conversations.c.conversation_id == outbox.c.conversation_id)
)


def message_body(conversation_id: str, trace_id: str = "") -> bytes:
    """Ids, never the log. The trace id lets the analyzer's log lines join ingest's."""
    payload = {"conversation_id": conversation_id}
    if trace_id:
        payload["trace_id"] = trace_id
    return json.dumps(payload).encode()


def to_message(row: sa.Row[Any]) -> OutboxMessage:
    conversation_id = str(row.conversation_id)
    return OutboxMessage(
        routing_key=ROUTING_KEY_ENDED,
        body=message_body(conversation_id, str(row.trace_id)),
        message_id=conversation_id,
        content_type="application/json",
    )


class SweepWhenDue:
    """The relay's after-drain hook: one lease sweep every `interval_s`."""

    def __init__(self, sweeper: LeaseSweeper, interval_s: float) -> None:
        self._sweeper = sweeper
        self._interval_s = interval_s
        self._next_sweep = 0.0

    async def __call__(self, runner: BlockingRunner) -> bool:
        """True when the sweep enqueued conversations again (drain them now)."""
        loop = asyncio.get_running_loop()
        if loop.time() < self._next_sweep:
            return False
        self._next_sweep = loop.time() + self._interval_s
        result = await runner(self._sweeper.sweep)
        if result.total:
            log.warning(
                "sweeper enqueued conversations again",
                extra={"lease_expired": result.released, "pending_stale": result.nudged},
            )
        return result.total > 0


class OutboxRelay(servicekit.outbox.OutboxRelay):
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
        topology = Topology(namespace)

        async def declare_exchange(channel: AbstractChannel) -> AbstractExchange:
            exchange, _queue = await topology.declare(channel)
            return exchange

        super().__init__(
            name="outbox-relay",
            store=SqlOutboxStore(engine, outbox, CLAIM, to_message),
            declare_exchange=declare_exchange,
            metrics=METRICS,
            log=log,
            broker_down_message=(
                "broker unreachable; conversations stay in the outbox until it returns"
            ),
            broker_up_message="broker reachable again; draining the outbox",
            amqp_url=amqp_url,
            amqp_timeout_s=amqp_timeout_s,
            batch_size=batch_size,
            poll_interval_s=poll_interval_s,
            db_timeout_s=db_timeout_s,
            after_drain=None if sweeper is None else SweepWhenDue(sweeper, sweep_interval_s),
        )
