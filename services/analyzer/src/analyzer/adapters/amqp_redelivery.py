"""Retry queues and the dead-letter exchange on RabbitMQ (the Redelivery port)."""

from __future__ import annotations

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage

from servicekit.messaging import ROUTING_KEY_ENDED, Topology

ATTEMPT_HEADER = "x-attempt"
LAST_ERROR_HEADER = "x-last-error"
DEATH_REASON_HEADER = "x-death-reason"
ATTEMPTS_HEADER = "x-attempts"


def previous_attempts(message: AbstractIncomingMessage) -> int:
    """Failed attempts recorded on the message by earlier retries (0 for a fresh one)."""
    value = (message.headers or {}).get(ATTEMPT_HEADER)
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    try:
        return max(int(value), 0) if value is not None else 0  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0


class AmqpRedelivery:
    """Bound to one incoming message: republishes its body with our headers.

    The channel has publisher confirms and raises on returned (unroutable) messages,
    so a publish that returns without error is in a durable queue.
    """

    def __init__(
        self,
        channel: AbstractChannel,
        dead_letter_exchange: AbstractExchange,
        topology: Topology,
        message: AbstractIncomingMessage,
        timeout_s: float,
    ) -> None:
        self._channel = channel
        self._dlx = dead_letter_exchange
        self._topology = topology
        self._message = message
        self._timeout_s = timeout_s

    def _copy(self, headers: dict[str, str | int]) -> aio_pika.Message:
        return aio_pika.Message(
            body=self._message.body,
            headers=dict(headers),
            content_type=self._message.content_type or "application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=self._message.message_id,
        )

    async def retry_later(self, delay_s: int, attempts: int, reason: str) -> None:
        # Declared at start for every configured delay; declaring again is idempotent
        # and cheap, and covers a queue deleted by an operator meanwhile.
        queue = await self._topology.declare_retry_queue(self._channel, delay_s)
        await self._channel.default_exchange.publish(
            self._copy({ATTEMPT_HEADER: attempts, LAST_ERROR_HEADER: reason}),
            routing_key=queue,
            timeout=self._timeout_s,
        )

    async def dead_letter(self, reason: str, attempts: int) -> None:
        await self._dlx.publish(
            self._copy(
                {
                    DEATH_REASON_HEADER: reason,
                    ATTEMPTS_HEADER: attempts,
                    ATTEMPT_HEADER: attempts,
                    LAST_ERROR_HEADER: reason,
                }
            ),
            routing_key=ROUTING_KEY_ENDED,
            timeout=self._timeout_s,
        )
