"""Broker housekeeping for tests: remove a test namespace's queues and exchanges."""

from __future__ import annotations

import contextlib

import aio_pika

from servicekit.messaging import Topology


async def delete_namespace(amqp_url: str, namespace: str, retry_delays_s: list[int]) -> None:
    topology = Topology(namespace)
    connection = await aio_pika.connect(amqp_url, timeout=5)
    async with connection:
        queues = [topology.work_queue, topology.dead_letter_queue]
        queues += [topology.retry_queue(d) for d in retry_delays_s]
        for name in queues:
            channel = await connection.channel()
            with contextlib.suppress(Exception):
                await channel.queue_delete(name)
        events_exchange = f"{namespace}.friendship.events"
        for name in (topology.exchange, topology.dead_letter_exchange, events_exchange):
            channel = await connection.channel()
            with contextlib.suppress(Exception):
                await channel.exchange_delete(name)


async def queue_depth(amqp_url: str, queue: str) -> int:
    connection = await aio_pika.connect(amqp_url, timeout=5)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)
