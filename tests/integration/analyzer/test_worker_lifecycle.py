"""Graceful shutdown and health of the worker, against a stand-in ingest over real gRPC.

The stand-in answers ClaimConversation slowly ("already terminal"), so a message is
in flight for a known time; RabbitMQ and PostgreSQL are real.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from analyzer.config import Settings
from analyzer.entrypoints.worker import RunningWorker, start_worker
from servicekit.messaging import ROUTING_KEY_ENDED, Topology
from spring.ingest.v1 import ingest_internal_pb2, ingest_internal_pb2_grpc, ingest_pb2
from tests.integration.analyzer.broker import delete_namespace
from tests.support.auth import TEST_JWT_SECRET
from tests.support.env import AMQP_URL, TEST_DATABASE_URL, new_id, new_namespace

pytestmark = pytest.mark.integration
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class SlowIngest(ingest_internal_pb2_grpc.IngestInternalServiceServicer):
    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.started: list[str] = []
        self.finished: list[str] = []

    async def ClaimConversation(
        self, request: ingest_internal_pb2.ClaimConversationRequest, context: Any
    ) -> ingest_internal_pb2.ClaimConversationResponse:
        self.started.append(request.conversation_id)
        await asyncio.sleep(self.delay_s)
        self.finished.append(request.conversation_id)
        return ingest_internal_pb2.ClaimConversationResponse(
            claimed=False, status=ingest_pb2.CONVERSATION_STATUS_PROCESSED, attempts=1
        )

    async def CompleteConversation(
        self, request: ingest_internal_pb2.CompleteConversationRequest, context: Any
    ) -> ingest_internal_pb2.CompleteConversationResponse:
        raise AssertionError("never called: nothing is claimed")

    async def FailConversation(
        self, request: ingest_internal_pb2.FailConversationRequest, context: Any
    ) -> ingest_internal_pb2.FailConversationResponse:
        raise AssertionError("never called: nothing fails")


@pytest.fixture
async def slow_ingest() -> AsyncIterator[tuple[SlowIngest, int]]:
    servicer = SlowIngest(delay_s=1.5)
    server = grpc.aio.server()
    ingest_internal_pb2_grpc.add_IngestInternalServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield servicer, port
    await server.stop(0)


def settings(namespace: str, ingest_port: int, grace_s: float) -> Settings:
    return Settings(
        grpc_host="127.0.0.1",
        grpc_port=0,
        database_url=TEST_DATABASE_URL,
        auth_jwt_secret=TEST_JWT_SECRET,
        auth_jwt_public_key=None,
        amqp_url=AMQP_URL,
        amqp_namespace=namespace,
        ingest_grpc_target=f"127.0.0.1:{ingest_port}",
        analyzer_prefetch=2,
        db_pool_size=2,
        shutdown_grace_s=grace_s,
    )


async def health(port: int) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=2
        )
        return int(response.status)


async def publish(namespace: str, conversation_id: str) -> None:
    connection = await aio_pika.connect_robust(AMQP_URL)
    async with connection, connection.channel() as channel:
        exchange, _ = await Topology(namespace).declare(channel)
        await exchange.publish(
            aio_pika.Message(body=f'{{"conversation_id": "{conversation_id}"}}'.encode()),
            routing_key=ROUTING_KEY_ENDED,
        )


async def ready_in_work_queue(namespace: str) -> int:
    """Messages waiting in the work queue; then the namespace is removed from the broker."""
    connection = await aio_pika.connect_robust(AMQP_URL)
    async with connection, connection.channel() as channel:
        _, queue = await Topology(namespace).declare(channel)
        count = queue.declaration_result.message_count
    await delete_namespace(namespace)
    return int(count or 0)


async def wait_until(predicate: Any, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_stop_lets_the_message_in_flight_finish(
    slow_ingest: tuple[SlowIngest, int],
) -> None:
    servicer, ingest_port = slow_ingest
    namespace, cid = new_namespace(), new_id("conv")
    worker: RunningWorker = await start_worker(settings(namespace, ingest_port, grace_s=10))
    assert await health(worker.port) == SERVING
    await publish(namespace, cid)
    await wait_until(lambda: servicer.started == [cid])

    stopping = asyncio.create_task(worker.stop())
    await asyncio.sleep(0.2)
    assert await health(worker.port) == NOT_SERVING  # while the message drains
    assert not stopping.done()
    await stopping
    assert servicer.finished == [cid]  # it finished and was acked, not dropped
    assert await ready_in_work_queue(namespace) == 0


async def test_a_message_unfinished_past_the_grace_goes_back_to_the_queue(
    slow_ingest: tuple[SlowIngest, int],
) -> None:
    servicer, ingest_port = slow_ingest
    servicer.delay_s = 5
    namespace, cid = new_namespace(), new_id("conv")
    worker = await start_worker(settings(namespace, ingest_port, grace_s=0.3))
    await publish(namespace, cid)
    await wait_until(lambda: servicer.started == [cid])
    started = time.monotonic()
    await worker.stop()
    assert time.monotonic() - started < 3
    assert servicer.finished == []
    await asyncio.sleep(0.5)  # the broker requeues on channel close
    assert await ready_in_work_queue(namespace) == 1


def _close_broker_connection(name: str) -> bool:
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "pid", "client_properties"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    for line in listed.stdout.splitlines():
        if name in line:
            pid = line.split("\t", 1)[0]
            subprocess.run(
                ["rabbitmqctl", "close_connection", pid, "test: broker connection lost"],
                capture_output=True, timeout=30, check=False,
            )  # fmt: skip
            return True
    return False


@pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="needs rabbitmqctl")
async def test_health_follows_the_broker_connection(
    slow_ingest: tuple[SlowIngest, int],
) -> None:
    servicer, ingest_port = slow_ingest
    servicer.delay_s = 0
    namespace = new_namespace()
    worker = await start_worker(settings(namespace, ingest_port, grace_s=1))
    try:
        assert await health(worker.port) == SERVING
        closed = await asyncio.to_thread(_close_broker_connection, f"analyzer {namespace}")
        if not closed:
            pytest.skip("rabbitmqctl cannot list connections here")
        deadline = time.monotonic() + 10
        while await health(worker.port) != NOT_SERVING:
            assert time.monotonic() < deadline, "health stayed SERVING without a broker"
            await asyncio.sleep(0.1)
        # connect_robust reconnects (every 5 s by default) and consuming resumes.
        deadline = time.monotonic() + 30
        while await health(worker.port) != SERVING:
            assert time.monotonic() < deadline, "health did not come back"
            await asyncio.sleep(0.2)
        cid = new_id("conv")
        await publish(namespace, cid)
        await wait_until(lambda: cid in servicer.finished, timeout_s=15)
    finally:
        await worker.stop()
        await ready_in_work_queue(namespace)
