"""Friendship's event relay: publishes committed level-change events to a topic exchange.

ApplyConversation (or a rule change) writes the new level and an outbox row in one
transaction; the generic relay (servicekit.outbox: SKIP LOCKED batches, publisher confirms,
backoff, one warning per outage) publishes each row to `<namespace>.friendship.events` with
the row's routing key and the same event_id (AMQP message_id) every time; subscribers
deduplicate by event_id and declare and bind their own queues (docs/friendship.md).
"""

from __future__ import annotations

import logging
from typing import Any

import aio_pika
import sqlalchemy as sa
from aio_pika.abc import AbstractChannel, AbstractExchange
from prometheus_client import Counter, Gauge
from sqlalchemy.engine import Engine

import servicekit.outbox
from friendship.adapters.tables import outbox
from servicekit.outbox import OutboxMessage, RelayMetrics, SqlOutboxStore

log = logging.getLogger(__name__)

METRICS = RelayMetrics(
    backlog=Gauge(
        "friendship_outbox_backlog", "Level-change events not yet published to RabbitMQ"
    ),
    published=Counter("friendship_outbox_published_total", "Level-change events published"),
    publish_failures=Counter(
        "friendship_outbox_publish_failures_total", "Event publishes that were not confirmed"
    ),
)

CLAIM = sa.select(
    outbox.c.id,
    outbox.c.event_id,
    outbox.c.routing_key,
    outbox.c.message_type,
    outbox.c.payload,
)


def events_exchange(namespace: str) -> str:
    return f"{namespace}.friendship.events"


def to_message(row: sa.Row[Any]) -> OutboxMessage:
    return OutboxMessage(
        routing_key=str(row.routing_key),
        body=bytes(row.payload),
        message_id=str(row.event_id),
        content_type="application/x-protobuf",
        type=str(row.message_type),
    )


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
    ) -> None:
        exchange_name = events_exchange(namespace)

        async def declare_exchange(channel: AbstractChannel) -> AbstractExchange:
            return await channel.declare_exchange(
                exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
            )

        super().__init__(
            name="friendship-outbox-relay",
            store=SqlOutboxStore(engine, outbox, CLAIM, to_message),
            declare_exchange=declare_exchange,
            metrics=METRICS,
            log=log,
            broker_down_message=(
                "broker unreachable; level events stay in the outbox until it returns"
            ),
            broker_up_message="broker reachable again; draining the level events outbox",
            amqp_url=amqp_url,
            amqp_timeout_s=amqp_timeout_s,
            batch_size=batch_size,
            poll_interval_s=poll_interval_s,
            db_timeout_s=db_timeout_s,
        )
