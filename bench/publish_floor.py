"""The floor of one hop through RabbitMQ: a persistent publish with confirm into a quorum
queue declared exactly like the work queue (servicekit.messaging.Topology), to its delivery.

    python -m bench.publish_floor --amqp-url amqp://... --namespace bench-x --messages 30

Prints one JSON line: count, p50_ms, p99_ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import aio_pika

from bench.stats import percentile
from servicekit.messaging import ROUTING_KEY_ENDED, Topology


async def measure(amqp_url: str, namespace: str, messages: int) -> dict[str, object]:
    topology = Topology(namespace)
    connection = await aio_pika.connect(amqp_url, timeout=5)
    latencies: list[float] = []
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange, queue = await topology.declare(channel)
        delivered: asyncio.Queue[float] = asyncio.Queue()

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            delivered.put_nowait(time.perf_counter())
            await message.ack()

        consumer_channel = await connection.channel()
        consume_queue = await consumer_channel.get_queue(topology.work_queue)
        await consume_queue.consume(on_message)
        for i in range(messages):
            started = time.perf_counter()
            await exchange.publish(
                aio_pika.Message(
                    json.dumps({"conversation_id": f"floor-{i}"}).encode(),
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=ROUTING_KEY_ENDED,
            )
            arrived = await asyncio.wait_for(delivered.get(), 10)
            latencies.append(arrived - started)
        await queue.delete(if_unused=False, if_empty=False)
        for name in (topology.dead_letter_queue,):
            await channel.queue_delete(name)
        for name in (topology.exchange, topology.dead_letter_exchange):
            await channel.exchange_delete(name)
    ms = [x * 1000 for x in latencies[3:]]  # the first ones warm the channel up
    return {"count": len(ms), "p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99)}


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.publish_floor")
    parser.add_argument("--amqp-url", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--messages", type=int, default=30)
    args = parser.parse_args()
    result = asyncio.run(measure(args.amqp_url, args.namespace, args.messages))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
