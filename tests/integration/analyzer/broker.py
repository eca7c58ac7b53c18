"""Remove a test namespace's queues and exchanges so the broker keeps no leftovers."""

from __future__ import annotations

from collections.abc import Iterable

import aio_pika

from servicekit.messaging import Topology
from tests.support.env import AMQP_URL

DEFAULT_DELAYS = (10, 60, 180, 600)


async def delete_namespace(namespace: str, retry_delays_s: Iterable[int] = DEFAULT_DELAYS) -> None:
    topology = Topology(namespace)
    connection = await aio_pika.connect_robust(AMQP_URL)
    async with connection:
        names = [topology.work_queue, topology.dead_letter_queue]
        names += [topology.retry_queue(d) for d in retry_delays_s]
        for name in names:
            async with connection.channel() as channel:
                await channel.queue_delete(name)
        for name in (topology.exchange, topology.dead_letter_exchange):
            async with connection.channel() as channel:
                await channel.exchange_delete(name)
