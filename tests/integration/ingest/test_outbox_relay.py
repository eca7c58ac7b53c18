"""The outbox relay against real PostgreSQL and RabbitMQ (each test on a database of its own)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable

import aio_pika
import grpc
import pytest
import sqlalchemy as sa
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from prometheus_client import REGISTRY

from ingest.adapters.outbox_relay import OutboxRelay
from ingest.config import Settings
from ingest.entrypoints.grpc_server import RunningServer, start_server
from servicekit.db import create_db_engine, sqlalchemy_url
from servicekit.messaging import ROUTING_KEY_ENDED, Topology
from spring.ingest.v1 import ingest_internal_pb2, ingest_pb2
from tests.contract.ingest.support import (
    INTERNAL,
    READ,
    WRITE,
    Stubs,
    delete_topology,
    end_request,
    make_settings,
    wait_for,
)
from tests.support.env import AMQP_URL, free_port

pytestmark = pytest.mark.integration


class Consumer:
    """Reads the work queue of one namespace, as the analyzer would."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._queue: AbstractQueue | None = None

    async def open(self) -> None:
        self._connection = await aio_pika.connect(AMQP_URL, timeout=5)
        channel = await self._connection.channel()
        _exchange, self._queue = await Topology(self.namespace).declare(channel)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    async def take(self, count: int, timeout_s: float) -> list[AbstractIncomingMessage]:
        assert self._queue is not None
        messages: list[AbstractIncomingMessage] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while len(messages) < count and loop.time() < deadline:
            message = await self._queue.get(no_ack=True, fail=False, timeout=5)
            if message is None:
                await asyncio.sleep(0.05)
            else:
                messages.append(message)
        return messages


@pytest.fixture
async def namespace() -> AsyncIterator[str]:
    name = make_settings().amqp_namespace
    yield name
    await delete_topology(name)


@pytest.fixture
async def consumer(namespace: str) -> AsyncIterator[Consumer]:
    c = Consumer(namespace)
    await c.open()
    yield c
    await c.close()


class Served:
    def __init__(self, running: RunningServer) -> None:
        self.running = running
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
        self.stubs = Stubs(self.channel)

    async def close(self) -> None:
        await self.channel.close(None)
        await self.running.stop(grace_s=1.0)


async def serve(settings: Settings) -> Served:
    return Served(await start_server(settings))


def outbox_rows(db_url: str) -> list[tuple[str, bool]]:
    engine = sa.create_engine(sqlalchemy_url(db_url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT conversation_id, published_at IS NOT NULL FROM ingest.outbox "
                        "ORDER BY id")
            ).all()
    finally:
        engine.dispose()
    return [(str(r[0]), bool(r[1])) for r in rows]


def raw_log_of(db_url: str, conversation_id: str) -> object:
    engine = sa.create_engine(sqlalchemy_url(db_url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(
                sa.text("SELECT raw_log FROM ingest.conversations WHERE conversation_id = :c"),
                {"c": conversation_id},
            ).scalar_one()
    finally:
        engine.dispose()


async def test_relay_publishes_exactly_what_was_committed(
    migrated_db_url: str, namespace: str, consumer: Consumer
) -> None:
    served = await serve(make_settings(database_url=migrated_db_url, amqp_namespace=namespace))
    try:
        stubs = served.stubs
        accepted = []
        for _ in range(3):
            request = end_request()
            await stubs.ingest.EndConversation(request, metadata=WRITE, timeout=5)
            accepted.append(request)
        # A duplicate, a conflict and an invalid request publish nothing more.
        await stubs.ingest.EndConversation(accepted[0], metadata=WRITE, timeout=5)
        conflict = end_request(accepted[1].conversation_id)
        with pytest.raises(grpc.aio.AioRpcError):
            await stubs.ingest.EndConversation(conflict, metadata=WRITE, timeout=5)
        with pytest.raises(grpc.aio.AioRpcError):
            await stubs.ingest.EndConversation(
                end_request(conversation_log=[]), metadata=WRITE, timeout=5
            )

        messages = await consumer.take(3, timeout_s=10)
        assert sorted(json.loads(m.body)["conversation_id"] for m in messages) == sorted(
            r.conversation_id for r in accepted
        )
        for message in messages:
            body = json.loads(message.body)
            # Ids, never the log: the conversation's and the trace id ingest gave it.
            assert set(body) == {"conversation_id", "trace_id"}
            assert re.fullmatch(r"[0-9a-f]{32}", body["trace_id"])
            assert message.message_id == body["conversation_id"]
            assert message.content_type == "application/json"
            assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
            assert message.routing_key == ROUTING_KEY_ENDED
        assert await consumer.take(1, timeout_s=1.5) == []

        assert outbox_rows(migrated_db_url) == [(r.conversation_id, True) for r in accepted]
        relay = served.running.deps.relay
        assert relay is not None
        assert await relay.backlog() == 0
        assert REGISTRY.get_sample_value("ingest_outbox_backlog") == 0
    finally:
        await served.close()


async def test_the_raw_log_is_stored_exactly_as_received(migrated_db_url: str) -> None:
    served = await serve(make_settings(database_url=migrated_db_url, relay_enabled=False))
    try:
        decomposed = unicodedata.normalize("NFD", "  Tiếng Việt\t 🐱 ")
        request = end_request(
            conversation_log=[
                ingest_pb2.Turn(role=" BOT ", content=decomposed),
                ingest_pb2.Turn(role="user", content="a\x07b"),
            ]
        )
        await served.stubs.ingest.EndConversation(request, metadata=WRITE, timeout=5)
        assert raw_log_of(migrated_db_url, request.conversation_id) == [
            {"role": " BOT ", "content": decomposed, "at": None},
            {"role": "user", "content": "a\x07b", "at": None},
        ]
    finally:
        await served.close()


async def test_accepted_while_the_broker_is_unreachable_then_published(
    migrated_db_url: str, namespace: str, consumer: Consumer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ingest.adapters.outbox_relay")
    closed_port = free_port()
    down = await serve(
        make_settings(
            database_url=migrated_db_url,
            amqp_namespace=namespace,
            amqp_url=f"amqp://guest:guest@127.0.0.1:{closed_port}/",
        )
    )
    try:
        request = end_request()
        loop = asyncio.get_running_loop()
        started = loop.time()
        response = await down.stubs.ingest.EndConversation(request, metadata=WRITE, timeout=5)
        assert loop.time() - started < 1.0
        assert response.status == ingest_pb2.CONVERSATION_STATUS_PENDING
        await asyncio.sleep(2.5)  # several reconnection attempts
        assert outbox_rows(migrated_db_url) == [(request.conversation_id, False)]
        relay = down.running.deps.relay
        assert relay is not None
        assert await relay.backlog() == 1
        warnings = [r for r in caplog.records if "broker unreachable" in r.getMessage()]
        assert len(warnings) == 1  # one warning per outage, not one per attempt
        status = await down.stubs.ingest.GetConversationStatus(
            ingest_pb2.GetConversationStatusRequest(conversation_id=request.conversation_id),
            metadata=READ, timeout=5,
        )
        assert status.status == ingest_pb2.CONVERSATION_STATUS_PENDING
    finally:
        await down.close()

    up = await serve(make_settings(database_url=migrated_db_url, amqp_namespace=namespace))
    try:
        messages = await consumer.take(1, timeout_s=10)
        assert [json.loads(m.body)["conversation_id"] for m in messages] == [
            request.conversation_id
        ]
        assert outbox_rows(migrated_db_url) == [(request.conversation_id, True)]
    finally:
        await up.close()


async def _silent_server() -> asyncio.Server:
    """Accepts TCP connections and never answers: a hung database."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    return await asyncio.start_server(hold, "127.0.0.1", 0)


@pytest.mark.parametrize("how", ["closed port", "silent server"])
async def test_database_unreachable_is_unavailable_within_2_s(how: str) -> None:
    silent: asyncio.Server | None = None
    if how == "closed port":
        port = free_port()
    else:
        silent = await _silent_server()
        port = silent.sockets[0].getsockname()[1]
    served = await serve(
        make_settings(
            database_url=f"postgresql://postgres@127.0.0.1:{port}/spring_test",
            relay_enabled=False,
        )
    )
    loop = asyncio.get_running_loop()
    try:
        stubs = served.stubs
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: stubs.ingest.EndConversation(end_request(), metadata=WRITE, timeout=10),
            lambda: stubs.ingest.GetConversationStatus(
                ingest_pb2.GetConversationStatusRequest(conversation_id="some-id"),
                metadata=READ, timeout=10,
            ),
            lambda: stubs.internal.ClaimConversation(
                ingest_internal_pb2.ClaimConversationRequest(conversation_id="some-id"),
                metadata=INTERNAL, timeout=10,
            ),
        ]
        for call in calls:
            started = loop.time()
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call()
            elapsed = loop.time() - started
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            assert caught.value.details() == "database unavailable"
            assert elapsed < 2.0
    finally:
        await served.close()
        if silent is not None:
            silent.close()


async def _rabbitmqctl(*args: str) -> None:
    process = await asyncio.create_subprocess_exec(
        "rabbitmqctl", *args,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    assert await asyncio.wait_for(process.wait(), 120) == 0, f"rabbitmqctl {args} failed"


@pytest.mark.broker_restart
async def test_the_relay_resumes_after_the_broker_is_stopped_and_started_again(
    migrated_db_url: str, namespace: str
) -> None:
    served = await serve(make_settings(database_url=migrated_db_url, amqp_namespace=namespace))
    consumer = Consumer(namespace)
    await consumer.open()
    try:
        before = end_request()
        await served.stubs.ingest.EndConversation(before, metadata=WRITE, timeout=5)
        assert [json.loads(m.body)["conversation_id"] for m in await consumer.take(1, 10)] == [
            before.conversation_id
        ]
        await consumer.close()

        await _rabbitmqctl("stop_app")
        try:
            during = end_request()
            response = await served.stubs.ingest.EndConversation(during, metadata=WRITE, timeout=5)
            assert response.status == ingest_pb2.CONVERSATION_STATUS_PENDING
            await asyncio.sleep(1.0)
            assert outbox_rows(migrated_db_url)[-1] == (during.conversation_id, False)
        finally:
            await _rabbitmqctl("start_app")
            await _rabbitmqctl("await_startup")

        await consumer.open()
        messages = await consumer.take(1, timeout_s=30)
        assert [json.loads(m.body)["conversation_id"] for m in messages] == [
            during.conversation_id
        ]

        async def drained() -> bool:
            return outbox_rows(migrated_db_url)[-1] == (during.conversation_id, True)

        assert await wait_for(drained, 5)
    finally:
        await consumer.close()
        await served.close()


async def test_two_relays_share_the_outbox_without_publishing_twice(
    migrated_db_url: str, namespace: str, consumer: Consumer
) -> None:
    served = await serve(make_settings(database_url=migrated_db_url, relay_enabled=False))
    try:
        requests = [end_request() for _ in range(120)]
        await asyncio.gather(
            *(served.stubs.ingest.EndConversation(r, metadata=WRITE, timeout=10)
              for r in requests)
        )
    finally:
        await served.close()
    assert len(outbox_rows(migrated_db_url)) == 120

    engines = [
        create_db_engine(migrated_db_url, application_name="relay-test", pool_size=1,
                         pool_timeout_s=5, connect_timeout_s=2, statement_timeout_ms=5000)
        for _ in range(2)
    ]
    relays = [
        OutboxRelay(engine=engine, amqp_url=AMQP_URL, namespace=namespace, amqp_timeout_s=5,
                    batch_size=7, poll_interval_s=0.2)
        for engine in engines
    ]
    for relay in relays:
        relay.start()
    try:
        messages = await consumer.take(120, timeout_s=20)
        ids = [json.loads(m.body)["conversation_id"] for m in messages]
        assert sorted(ids) == sorted(r.conversation_id for r in requests)  # each exactly once
        assert await consumer.take(1, timeout_s=1.0) == []
        assert all(published for _, published in outbox_rows(migrated_db_url))
    finally:
        for relay in relays:
            await relay.stop()
        for engine in engines:
            engine.dispose()
