"""The worker wired to the real ingest and friendship servers, in-process, on real sockets.

ingest (with its outbox relay) -> RabbitMQ (own namespace) -> analyzer worker ->
ingest.Claim / friendship.Apply / ingest.Complete; failures retry, then dead-letter.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aio_pika
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from analyzer.config import Settings as AnalyzerSettings
from analyzer.entrypoints.worker import RunningWorker, start_worker
from friendship.config import Settings as FriendshipSettings
from friendship.entrypoints.grpc_server import RunningServer as FriendshipServer
from friendship.entrypoints.grpc_server import start_server as start_friendship
from ingest.config import Settings as IngestSettings
from ingest.entrypoints.grpc_server import RunningServer as IngestServer
from ingest.entrypoints.grpc_server import start_server as start_ingest
from servicekit.db import migrate
from servicekit.messaging import ROUTING_KEY_ENDED, Topology
from spring.friendship.v1 import friendship_pb2, friendship_pb2_grpc
from spring.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from tests.integration.analyzer.broker import delete_namespace
from tests.support.auth import READER_SCOPES, ROBOT_SCOPES, TEST_JWT_SECRET, bearer
from tests.support.env import AMQP_URL, TEST_DATABASE_URL, new_id, new_namespace

pytestmark = pytest.mark.integration

ROBOT = bearer(ROBOT_SCOPES)
READER = bearer(READER_SCOPES)
PROCESSED = ingest_pb2.CONVERSATION_STATUS_PROCESSED
SKIPPED = ingest_pb2.CONVERSATION_STATUS_SKIPPED


@dataclass
class Stack:
    namespace: str
    ingest: IngestServer
    friendship: FriendshipServer
    worker: RunningWorker
    ingest_channel: grpc.aio.Channel
    friendship_channel: grpc.aio.Channel
    worker_channel: grpc.aio.Channel
    amqp: aio_pika.abc.AbstractRobustConnection

    @property
    def topology(self) -> Topology:
        return Topology(self.namespace)


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    for schema in ("ingest", "friendship", "analyzer"):
        migrate(TEST_DATABASE_URL, f"{schema}:migrations", schema)
    namespace = new_namespace()
    common: dict[str, Any] = {
        "grpc_host": "127.0.0.1",
        "grpc_port": 0,
        "database_url": TEST_DATABASE_URL,
        "auth_jwt_secret": TEST_JWT_SECRET,
        "auth_jwt_public_key": None,
        "shutdown_grace_s": 2.0,
    }
    ingest = await start_ingest(
        IngestSettings(
            **common, amqp_url=AMQP_URL, amqp_namespace=namespace, relay_poll_interval_s=0.2
        )
    )
    friendship = await start_friendship(FriendshipSettings(**common))
    worker = await start_worker(
        AnalyzerSettings(
            **common,
            amqp_url=AMQP_URL,
            amqp_namespace=namespace,
            ingest_grpc_target=f"127.0.0.1:{ingest.port}",
            friendship_grpc_target=f"127.0.0.1:{friendship.port}",
            analyzer_prefetch=4,
            db_pool_size=4,
            analyzer_max_attempts=3,
            analyzer_retry_delays_s=[1, 1],
            analyzer_message_deadline_s=20,
        )
    )
    amqp = await aio_pika.connect_robust(AMQP_URL)
    ingest_channel = grpc.aio.insecure_channel(f"127.0.0.1:{ingest.port}")
    friendship_channel = grpc.aio.insecure_channel(f"127.0.0.1:{friendship.port}")
    worker_channel = grpc.aio.insecure_channel(f"127.0.0.1:{worker.port}")
    yield Stack(namespace, ingest, friendship, worker, ingest_channel, friendship_channel,
                worker_channel, amqp)  # fmt: skip
    for channel in (ingest_channel, friendship_channel, worker_channel):
        await channel.close(None)
    await worker.stop()
    await ingest.stop(0.5)
    await friendship.stop(0.5)
    await delete_namespace(namespace, retry_delays_s=[1])
    await amqp.close()


def end_request(
    bot_type: str = "", user_id: str | None = None
) -> ingest_pb2.EndConversationRequest:
    return ingest_pb2.EndConversationRequest(
        conversation_id=new_id("conv"),
        user_id=user_id or new_id("user"),
        bot_id="bot-1",
        bot_type=bot_type,
        agent_tag="topic-animals",
        conversation_log=[
            ingest_pb2.Turn(role="assistant", content="Hello! What do you like?"),
            ingest_pb2.Turn(role="user", content="My name is Lan. I like cats. Do you like cats?"),
            ingest_pb2.Turn(role="assistant", content="I do! Cats are wonderful."),
            ingest_pb2.Turn(role="user", content="That is so fun!"),
        ],
    )


async def wait_for_status(
    stack: Stack, conversation_id: str, wanted: int, timeout_s: float = 30
) -> ingest_pb2.GetConversationStatusResponse:
    stub = ingest_pb2_grpc.IngestServiceStub(stack.ingest_channel)
    deadline = time.monotonic() + timeout_s
    while True:
        response = await stub.GetConversationStatus(
            ingest_pb2.GetConversationStatusRequest(conversation_id=conversation_id),
            metadata=ROBOT,
            timeout=5,
        )
        if response.status == wanted or time.monotonic() > deadline:
            return response
        await asyncio.sleep(0.2)


async def publish(stack: Stack, body: bytes) -> None:
    async with stack.amqp.channel() as ch:
        exchange, _ = await stack.topology.declare(ch)
        await exchange.publish(aio_pika.Message(body=body), routing_key=ROUTING_KEY_ENDED)


async def dead_letter_with_body(
    stack: Stack, body: bytes, timeout_s: float = 30
) -> aio_pika.abc.AbstractIncomingMessage:
    deadline = time.monotonic() + timeout_s
    async with stack.amqp.channel() as ch:
        queue = await ch.get_queue(stack.topology.dead_letter_queue)
        while time.monotonic() < deadline:
            message = await queue.get(fail=False, timeout=5)
            if message is None:
                await asyncio.sleep(0.2)
                continue
            await message.ack()
            if message.body == body:
                return message
    raise AssertionError("no dead letter with that body arrived in time")


async def test_health_serves_while_consuming(stack: Stack) -> None:
    health = health_pb2_grpc.HealthStub(stack.worker_channel)
    response = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_a_conversation_ends_processed(stack: Stack) -> None:
    request = end_request()
    await ingest_pb2_grpc.IngestServiceStub(stack.ingest_channel).EndConversation(
        request, metadata=ROBOT, timeout=5
    )
    status = await wait_for_status(stack, request.conversation_id, PROCESSED)
    assert status.status == PROCESSED, status
    assert status.analysis.total_turns == 4
    assert status.analysis.user_initiated_questions == 1
    assert status.analysis.session_emotion == ingest_pb2.EMOTION_INTERESTING
    assert status.analysis.new_memories_count == 2  # name: lan, likes cats
    assert status.analysis.source == "local"
    # 4 turns x 0.5 + 1 question x 3 + interesting 15 + 2 memories x 5
    assert status.score_change == pytest.approx(2 + 3 + 15 + 10)

    level = await friendship_pb2_grpc.FriendshipServiceStub(stack.friendship_channel).GetLevel(
        friendship_pb2.GetLevelRequest(user_id=request.user_id), metadata=READER, timeout=5
    )
    assert level.score == pytest.approx(status.score_change)
    assert level.conversations == 1

    # The same message again (a redelivery): nothing changes, nothing is counted twice.
    await publish(stack, f'{{"conversation_id": "{request.conversation_id}"}}'.encode())
    await asyncio.sleep(1.5)
    level_after = await friendship_pb2_grpc.FriendshipServiceStub(
        stack.friendship_channel
    ).GetLevel(friendship_pb2.GetLevelRequest(user_id=request.user_id), metadata=READER, timeout=5)
    assert (level_after.score, level_after.conversations) == (level.score, 1)


async def test_a_next_lesson_conversation_ends_skipped(stack: Stack) -> None:
    request = end_request(bot_type="NEXT_LESSON")
    await ingest_pb2_grpc.IngestServiceStub(stack.ingest_channel).EndConversation(
        request, metadata=ROBOT, timeout=5
    )
    status = await wait_for_status(stack, request.conversation_id, SKIPPED)
    assert status.status == SKIPPED, status
    level = await friendship_pb2_grpc.FriendshipServiceStub(stack.friendship_channel).GetLevel(
        friendship_pb2.GetLevelRequest(user_id=request.user_id), metadata=READER, timeout=5
    )
    assert level.conversations == 0


async def test_an_unknown_conversation_retries_then_dead_letters(stack: Stack) -> None:
    body = f'{{"conversation_id": "{new_id("ghost")}"}}'.encode()
    started = time.monotonic()
    await publish(stack, body)
    dead = await dead_letter_with_body(stack, body)
    headers = dead.headers or {}
    assert headers["x-attempts"] == 3
    assert str(headers["x-death-reason"]).startswith("ingest.ClaimConversation")
    # Two retries of one second each happened before the dead letter.
    assert time.monotonic() - started >= 2.0


async def test_a_malformed_message_dead_letters_at_once(stack: Stack) -> None:
    body = b"this is not json"
    await publish(stack, body)
    dead = await dead_letter_with_body(stack, body, timeout_s=10)
    assert (dead.headers or {})["x-death-reason"] == "malformed message"
