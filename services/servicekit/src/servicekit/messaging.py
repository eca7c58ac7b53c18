"""RabbitMQ topology shared by the publisher (ingest relay) and the consumer (analyzer).

Both sides declare it, so a message published before the analyzer ever ran still
lands in a durable queue. Only features of both RabbitMQ 3.10 and 4.x: quorum queues
with a delivery limit, dead-letter exchanges, queue TTL on our own retry queues.
Names carry a namespace (AMQP_NAMESPACE) so that test runs never share queues with
a running stack on the same broker.
"""

from __future__ import annotations

from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

ROUTING_KEY_ENDED = "conversation.ended"
# Second line of defence: the broker itself dead-letters a message redelivered this often.
DELIVERY_LIMIT = 20


@dataclass(frozen=True)
class Topology:
    namespace: str = "spring"

    @property
    def exchange(self) -> str:
        return f"{self.namespace}.conversations"

    @property
    def work_queue(self) -> str:
        return f"{self.namespace}.analyzer.conversations"

    @property
    def dead_letter_exchange(self) -> str:
        return f"{self.namespace}.conversations.dlx"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.work_queue}.dead"

    def retry_queue(self, delay_s: int) -> str:
        return f"{self.work_queue}.retry.{delay_s}s"

    async def declare(self, channel: AbstractChannel) -> tuple[AbstractExchange, AbstractQueue]:
        """Exchange, work queue and dead-letter queue; idempotent."""
        exchange = await channel.declare_exchange(
            self.exchange, aio_pika.ExchangeType.DIRECT, durable=True
        )
        dlx = await channel.declare_exchange(
            self.dead_letter_exchange, aio_pika.ExchangeType.DIRECT, durable=True
        )
        dead = await channel.declare_queue(
            self.dead_letter_queue, durable=True, arguments={"x-queue-type": "quorum"}
        )
        await dead.bind(dlx, routing_key=ROUTING_KEY_ENDED)
        queue = await channel.declare_queue(
            self.work_queue,
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-delivery-limit": DELIVERY_LIMIT,
                "x-dead-letter-exchange": self.dead_letter_exchange,
                "x-dead-letter-routing-key": ROUTING_KEY_ENDED,
            },
        )
        await queue.bind(exchange, routing_key=ROUTING_KEY_ENDED)
        return exchange, queue

    async def declare_retry_queue(self, channel: AbstractChannel, delay_s: int) -> str:
        """A holding queue whose messages expire after `delay_s` back into the work queue.

        Backoff without a plugin: publish a failed message here (default exchange,
        routing key = queue name); its TTL dead-letters it to the exchange when due.
        """
        name = self.retry_queue(delay_s)
        await channel.declare_queue(
            name,
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-message-ttl": delay_s * 1000,
                "x-dead-letter-exchange": self.exchange,
                "x-dead-letter-routing-key": ROUTING_KEY_ENDED,
            },
        )
        return name
