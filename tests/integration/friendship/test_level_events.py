"""Level-change events through the outbox to RabbitMQ, across a server crash (SIGKILL between
commit and publish) and a lost publish mark: one event per crossing, by event_id."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import grpc
import pytest
import sqlalchemy as sa
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

from friendship.adapters.outbox_relay import events_exchange
from friendship.entrypoints.migrate import run as migrate
from servicekit.db import sqlalchemy_url
from spring.friendship.v1 import (
    events_pb2,
    friendship_internal_pb2_grpc,
    friendship_pb2,
)
from tests.contract.friendship.test_friendship_contract import INTERNAL, apply_request
from tests.support.auth import TEST_JWT_SECRET
from tests.support.env import AMQP_URL, free_port, new_id, new_namespace
from tests.support.stack import ServiceProcess
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration


class Subscriber:
    """A subscribing team: its own queue bound to level.changed, declared before any event."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.queue_name = f"{namespace}.test-subscriber"
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._queue: AbstractQueue | None = None

    async def open(self) -> None:
        self._connection = await aio_pika.connect(AMQP_URL, timeout=5)
        channel = await self._connection.channel()
        exchange = await channel.declare_exchange(
            events_exchange(self.namespace), aio_pika.ExchangeType.TOPIC, durable=True
        )
        self._queue = await channel.declare_queue(self.queue_name, durable=True)
        await self._queue.bind(exchange, routing_key="level.changed")

    async def take(self, timeout_s: float) -> list[AbstractIncomingMessage]:
        """Everything that arrives within timeout_s."""
        assert self._queue is not None
        messages: list[AbstractIncomingMessage] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            message = await self._queue.get(no_ack=True, fail=False, timeout=5)
            if message is None:
                await asyncio.sleep(0.1)
            else:
                messages.append(message)
        return messages

    async def close(self) -> None:
        if self._connection is not None:
            channel = await self._connection.channel()
            await channel.queue_delete(self.queue_name)
            await channel.exchange_delete(events_exchange(self.namespace))
            await self._connection.close()


@pytest.fixture
async def subscriber() -> AsyncIterator[Subscriber]:
    sub = Subscriber(new_namespace())
    await sub.open()
    yield sub
    await sub.close()


@pytest.fixture
def broker_proxy() -> Iterator[TcpProxy]:
    url = urlsplit(AMQP_URL)
    proxy = TcpProxy(url.hostname or "127.0.0.1", url.port or 5672, free_port()).start()
    yield proxy
    proxy.close()


def server(db_url: str, amqp_url: str, namespace: str, log_dir: Path) -> ServiceProcess:
    grpc_port, metrics_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTH_", "AMQP_"))}
    env.update(
        DATABASE_URL=db_url, AMQP_URL=amqp_url, AMQP_NAMESPACE=namespace,
        AUTH_JWT_SECRET=TEST_JWT_SECRET, GRPC_PORT=str(grpc_port),
        METRICS_PORT=str(metrics_port), FRIENDSHIP_RELAY_POLL_INTERVAL_S="0.2",
        AMQP_TIMEOUT_S="2", SHUTDOWN_GRACE_S="2",
    )
    return ServiceProcess("friendship", "friendship-server", grpc_port, metrics_port, env,
                          log_dir / "friendship.log")


def unpublished(db_url: str) -> int:
    engine = sa.create_engine(sqlalchemy_url(db_url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(
                "SELECT count(*) FROM friendship.outbox WHERE published_at IS NULL"
            )).scalar_one())
    finally:
        engine.dispose()


async def test_a_crossing_is_published_once_across_a_crash_and_a_lost_mark(
    fresh_database_url: str, subscriber: Subscriber, broker_proxy: TcpProxy, tmp_path: Path
) -> None:
    migrate(fresh_database_url)
    broker = urlsplit(AMQP_URL)
    proxied_amqp = urlunsplit(broker._replace(
        netloc=broker.netloc.replace(f"{broker.hostname}:{broker.port or 5672}",
                                     f"127.0.0.1:{broker_proxy.port}")
    ))
    broker_proxy.set_mode("refuse")  # the broker is away: the event stays in the outbox
    first = server(fresh_database_url, proxied_amqp, subscriber.namespace, tmp_path)
    first.start()
    first.wait_serving()
    user = new_id("user")
    crossing = apply_request(user, turns=220)  # 1 + 110: stranger -> acquaintance
    async with grpc.aio.insecure_channel(first.target) as channel:
        stub = friendship_internal_pb2_grpc.FriendshipInternalServiceStub(channel)
        await stub.ApplyConversation(apply_request(user, turns=2), metadata=INTERNAL)
        reply = await stub.ApplyConversation(crossing, metadata=INTERNAL)
    assert reply.level == friendship_pb2.FRIENDSHIP_LEVEL_PHASE2_ACQUAINTANCE
    assert unpublished(fresh_database_url) == 1

    # Crash: the process dies between the commit and any publish.
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    broker_proxy.set_mode("forward")
    second = server(fresh_database_url, proxied_amqp, subscriber.namespace, tmp_path)
    second.start()
    try:
        second.wait_serving()
        messages = await subscriber.take(timeout_s=4)
        assert len(messages) == 1
        event = events_pb2.LevelChanged.FromString(messages[0].body)
        assert messages[0].message_id == event.event_id
        assert messages[0].type == "spring.friendship.v1.LevelChanged"
        assert (event.user_id, event.conversation_id, event.rule_version) == (
            user, crossing.conversation_id, "v1"
        )
        assert (event.old_level, event.new_level) == (
            friendship_pb2.FRIENDSHIP_LEVEL_PHASE1_STRANGER,
            friendship_pb2.FRIENDSHIP_LEVEL_PHASE2_ACQUAINTANCE,
        )
        assert event.score == 111 and event.cause == events_pb2.LEVEL_CHANGE_CAUSE_CONVERSATION
        assert unpublished(fresh_database_url) == 0

        # A publish confirmed but never marked (a crash right after the confirm) is published
        # again with the same event_id: subscribers that dedupe by event_id see one event.
        engine = sa.create_engine(sqlalchemy_url(fresh_database_url), poolclass=sa.pool.NullPool)
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE friendship.outbox SET published_at = NULL"))
        engine.dispose()
        again = await subscriber.take(timeout_s=3)
        assert [m.message_id for m in again] == [event.event_id]
        assert len({m.message_id for m in [*messages, *again]}) == 1
    finally:
        assert second.stop() == 0, second.log_text()[-2000:]
