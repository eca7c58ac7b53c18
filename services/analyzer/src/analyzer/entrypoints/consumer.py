"""The RabbitMQ consumer: one task per delivered message, bounded by the prefetch.

Health follows the consumer: SERVING only while the channel is open and consuming.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from prometheus_client import Counter, Gauge, Histogram

from analyzer.adapters.amqp_redelivery import AmqpRedelivery, previous_attempts
from analyzer.domain.errors import RedeliveryFailed
from analyzer.handlers import MessagePolicy, Outcome, Pipeline, handle_conversation_ended
from servicekit.logging import conversation_id_var, trace_id_var, valid_trace_id
from servicekit.messaging import Topology

log = logging.getLogger(__name__)

MESSAGES = Counter("analyzer_messages_total", "Messages handled, by outcome", ["outcome"])
MESSAGE_SECONDS = Histogram(
    "analyzer_message_seconds",
    "Time to handle one message",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300),
)
IN_FLIGHT = Gauge("analyzer_messages_in_flight", "Messages being handled")
DEAD_LETTERS = Counter(
    "analyzer_dead_letters_total", "Messages sent to the dead-letter queue (status FAILED)"
)
ATTEMPT = Histogram(
    "analyzer_message_attempt",
    "Which attempt each handled message was (1 = first delivery; retries count up)",
    buckets=(1, 2, 3, 4, 5, 6, 8, 10, 15, 20),
)
for _label in (*(o.value for o in Outcome), "requeued", "error"):
    MESSAGES.labels(_label)  # every outcome exported from the start, at 0
QUEUE_DEPTH = Gauge(
    "analyzer_queue_depth",
    "Ready messages in the work queue, as this worker last read it (passive declare)",
)

HealthCallback = Callable[[bool], Coroutine[Any, Any, None]]


def _ids_for_logs(body: bytes) -> tuple[str | None, str | None]:
    """Conversation and trace ids only, for the log context; the handler parses for real."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None, None
    if not isinstance(payload, dict):
        return None, None
    value = payload.get("conversation_id")
    trace = payload.get("trace_id")
    return (
        value[:128] if isinstance(value, str) else None,
        valid_trace_id(trace) if isinstance(trace, str) else None,
    )


class Consumer:
    def __init__(
        self,
        *,
        amqp_url: str,
        topology: Topology,
        prefetch: int,
        amqp_timeout_s: float,
        retry_delays_s: Sequence[int],
        pipeline: Pipeline,
        policy: MessagePolicy,
        on_health: HealthCallback,
        queue_depth_interval_s: float = 5.0,
    ) -> None:
        self._amqp_url = amqp_url
        self._topology = topology
        self._prefetch = prefetch
        self._timeout_s = amqp_timeout_s
        self._retry_delays_s = sorted(set(retry_delays_s))
        self._pipeline = pipeline
        self._policy = policy
        self._on_health = on_health
        self._semaphore = asyncio.Semaphore(prefetch)
        self._inflight: set[asyncio.Task[Any]] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._dlx: AbstractExchange | None = None
        self._queue: AbstractQueue | None = None
        self._consumer_tag: str | None = None
        self._queue_depth_interval_s = queue_depth_interval_s

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    async def start(self) -> None:
        connection = await aio_pika.connect_robust(
            self._amqp_url,
            timeout=self._timeout_s,
            # Operators see which worker a broker connection belongs to.
            client_properties={"connection_name": f"analyzer {self._topology.namespace}"},
        )
        try:
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            await channel.set_qos(prefetch_count=self._prefetch)
            _, queue = await self._topology.declare(channel)
            self._dlx = await channel.declare_exchange(
                self._topology.dead_letter_exchange, aio_pika.ExchangeType.DIRECT, durable=True
            )
            for delay_s in self._retry_delays_s:
                await self._topology.declare_retry_queue(channel, delay_s)
            self._connection, self._channel, self._queue = connection, channel, queue
            self._consumer_tag = await queue.consume(self._on_message, timeout=self._timeout_s)
        except BaseException:
            await connection.close()
            raise
        connection.close_callbacks.add(self._lost)
        channel.close_callbacks.add(self._lost)
        connection.reconnect_callbacks.add(self._back)
        channel.reopen_callbacks.add(self._back)  # type: ignore[attr-defined]
        log.info(
            "consuming",
            extra={"queue": self._topology.work_queue, "prefetch": self._prefetch},
        )
        await self._on_health(True)
        depth = asyncio.get_running_loop().create_task(self._watch_queue_depth())
        self._background.add(depth)
        depth.add_done_callback(self._background.discard)

    async def _watch_queue_depth(self) -> None:
        """analyzer_queue_depth, read by a passive declare on a channel of its own (a failed
        passive declare closes its channel; the consuming one must not suffer for it)."""
        channel: AbstractChannel | None = None
        while not self._stopping:
            try:
                connection = self._connection
                if connection is None or connection.is_closed:
                    raise ConnectionError("not connected")
                if channel is None or channel.is_closed:
                    channel = await asyncio.wait_for(connection.channel(), self._timeout_s)
                queue = await channel.declare_queue(
                    self._topology.work_queue, passive=True, timeout=self._timeout_s
                )
                result = queue.declaration_result
                QUEUE_DEPTH.set(result.message_count or 0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                channel = None
                log.debug("queue depth not read", extra={"error_type": type(exc).__name__})
            await asyncio.sleep(self._queue_depth_interval_s)

    # -- health follows the channel ------------------------------------------------
    def _schedule_health(self, serving: bool) -> None:
        task = asyncio.get_running_loop().create_task(self._on_health(serving))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _lost(self, *_args: Any) -> None:
        if not self._stopping:
            log.warning("broker connection or channel lost; not serving")
        self._schedule_health(False)

    def _back(self, *_args: Any) -> None:
        if self._stopping:
            return
        log.info("broker connection restored; serving")
        self._schedule_health(True)

    # -- messages ----------------------------------------------------------------------
    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        try:
            async with self._semaphore:
                if self._stopping:
                    # Delivered but not started before shutdown: back to the queue now.
                    await self._settle(message, requeue=True)
                    return
                IN_FLIGHT.inc()
                try:
                    await self._handle(message)
                finally:
                    IN_FLIGHT.dec()
        finally:
            if task is not None:
                self._inflight.discard(task)

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        assert self._channel is not None and self._dlx is not None
        conversation_id, trace_id = _ids_for_logs(message.body)
        token = conversation_id_var.set(conversation_id)
        trace_token = trace_id_var.set(trace_id)
        attempt = previous_attempts(message) + 1
        started = time.perf_counter()
        label = "error"
        try:
            redelivery = AmqpRedelivery(
                self._channel, self._dlx, self._topology, message, self._timeout_s
            )
            try:
                outcome = await handle_conversation_ended(
                    message.body, attempt - 1, self._pipeline, redelivery, self._policy,
                )  # fmt: skip
            except RedeliveryFailed:
                log.error("could not schedule a retry or dead-letter; requeued", exc_info=True)
                label = "requeued"
                await self._settle(message, requeue=True)
                return
            except Exception:
                log.exception("unexpected error handling a message; requeued")
                label = "requeued"
                await self._settle(message, requeue=True)
                return
            label = outcome.value
            if outcome == Outcome.DEAD_LETTERED:
                DEAD_LETTERS.inc()
            await self._settle(message, requeue=None)
            if outcome in (Outcome.PROCESSED, Outcome.SKIPPED, Outcome.ALREADY_DONE):
                log.info("conversation handled", extra={"outcome": outcome.value})
        finally:
            MESSAGES.labels(label).inc()
            MESSAGE_SECONDS.observe(time.perf_counter() - started)
            ATTEMPT.observe(attempt)
            trace_id_var.reset(trace_token)
            conversation_id_var.reset(token)

    async def _settle(self, message: AbstractIncomingMessage, requeue: bool | None) -> None:
        """ack (requeue None) or nack; a closed channel means the broker redelivers anyway."""
        try:
            if requeue is None:
                await message.ack()
            else:
                await message.nack(requeue=requeue)
        except Exception as exc:
            log.warning(
                "could not settle a message; the broker will redeliver it",
                extra={"error_type": type(exc).__name__},
            )

    # -- shutdown ----------------------------------------------------------------------
    async def stop(self, grace_s: float) -> None:
        """No new messages; in-flight ones get `grace_s`; the rest go back to the queue."""
        self._stopping = True
        await self._on_health(False)
        if self._queue is not None and self._consumer_tag is not None:
            try:
                await self._queue.cancel(self._consumer_tag, timeout=self._timeout_s)
            except Exception as exc:
                log.warning("consumer cancel failed", extra={"error_type": type(exc).__name__})
        pending = set(self._inflight)
        if pending:
            log.info("draining in-flight messages", extra={"in_flight": len(pending)})
            _done, pending = await asyncio.wait(pending, timeout=grace_s)
        if pending:
            log.warning("grace period over; unfinished messages go back to the queue",
                        extra={"in_flight": len(pending)})  # fmt: skip
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._connection is not None:
            try:
                await asyncio.wait_for(self._connection.close(), self._timeout_s)
            except Exception as exc:
                log.warning("broker close failed", extra={"error_type": type(exc).__name__})
        for task in list(self._background):
            task.cancel()
