"""The worker with Groq and Mem0 configured (fake servers): every failure of a provider
still ends PROCESSED within its budget, other conversations keep flowing, and a
redelivery makes no second provider call."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aio_pika
import grpc
import pytest

from analyzer.config import Settings as AnalyzerSettings
from analyzer.entrypoints.worker import start_worker
from friendship.config import Settings as FriendshipSettings
from friendship.entrypoints.grpc_server import start_server as start_friendship
from ingest.config import Settings as IngestSettings
from ingest.entrypoints.grpc_server import start_server as start_ingest
from servicekit.db import migrate
from spring.analyzer.v1 import analyzer_pb2, analyzer_pb2_grpc
from spring.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from tests.integration.analyzer.broker import delete_namespace
from tests.integration.analyzer.test_consumer import (
    PROCESSED,
    ROBOT,
    Stack,
    publish,
    wait_for_status,
)
from tests.support.auth import TEST_JWT_SECRET, bearer
from tests.support.env import AMQP_URL, TEST_DATABASE_URL, new_id, new_namespace
from tests.support.fake_groq import HANG, Behavior, FakeGroq, slow, status
from tests.support.fake_mem0 import FakeMem0

pytestmark = pytest.mark.integration

LLM_TIMEOUT_S = 1.5
MEMORY_TIMEOUT_S = 3.0
INTERNAL = bearer(["internal"])


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeGroq, FakeMem0]]:
    groq, mem0 = FakeGroq().start(), FakeMem0().start()
    mem0.pending_polls = 1
    yield groq, mem0
    groq.close()
    mem0.close()


@pytest.fixture(scope="module")
async def stack(fakes: tuple[FakeGroq, FakeMem0]) -> AsyncIterator[Stack]:
    groq, mem0 = fakes
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
            **common, amqp_url=AMQP_URL, amqp_namespace=namespace, relay_poll_interval_s=0.1
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
            analyzer_prefetch=8,
            db_pool_size=8,
            analyzer_message_deadline_s=20,
            groq_api_key=groq.api_key,
            groq_base_url=groq.url,
            mem0_api_key=mem0.api_key,
            mem0_base_url=mem0.url,
            analyzer_llm_timeout_s=LLM_TIMEOUT_S,
            analyzer_memory_timeout_s=MEMORY_TIMEOUT_S,
            analyzer_memory_poll_initial_s=0.05,
            analyzer_memory_poll_max_s=0.2,
            analyzer_breaker_failures=1000,  # failures here are per conversation, by marker
        )
    )
    amqp = await aio_pika.connect_robust(AMQP_URL)
    channels = [
        grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        for port in (ingest.port, friendship.port, worker.port)
    ]
    yield Stack(namespace, ingest, friendship, worker, *channels, amqp)
    for channel in channels:
        await channel.close(None)
    await worker.stop()
    await ingest.stop(0.5)
    await friendship.stop(0.5)
    await delete_namespace(namespace, retry_delays_s=[1])
    await amqp.close()


def end_request(marker: str) -> ingest_pb2.EndConversationRequest:
    return ingest_pb2.EndConversationRequest(
        conversation_id=new_id("conv"),
        user_id=new_id("user"),
        bot_id="bot-1",
        agent_tag="topic-animals",
        conversation_log=[
            ingest_pb2.Turn(role="assistant", content="Hello! What do you like?"),
            ingest_pb2.Turn(role="user", content=f"My name is Lan. I like cats {marker}."),
            ingest_pb2.Turn(role="assistant", content="I do! Cats are wonderful."),
            ingest_pb2.Turn(role="user", content="Do you like cats? That is so fun!"),
        ],
    )


async def send(stack: Stack, request: ingest_pb2.EndConversationRequest) -> None:
    await ingest_pb2_grpc.IngestServiceStub(stack.ingest_channel).EndConversation(
        request, metadata=ROBOT, timeout=5
    )


async def test_processed_from_the_providers_and_a_redelivery_calls_none(
    stack: Stack, fakes: tuple[FakeGroq, FakeMem0]
) -> None:
    groq, mem0 = fakes
    marker = new_id("m")
    request = end_request(marker)
    await send(stack, request)
    done = await wait_for_status(stack, request.conversation_id, PROCESSED)
    assert done.status == PROCESSED, done
    assert done.analysis.source == "llm"
    assert done.analysis.user_initiated_questions == 2
    assert done.analysis.session_emotion == ingest_pb2.EMOTION_INTERESTING
    assert done.analysis.new_memories_count == 3  # from Mem0
    calls = (groq.count(contains=marker), mem0.count(contains=marker))
    assert calls == (2, 1)

    await publish(stack, f'{{"conversation_id": "{request.conversation_id}"}}'.encode())
    await asyncio.sleep(1.5)
    assert (groq.count(contains=marker), mem0.count(contains=marker)) == calls


FAILURES = {
    "slow": (slow(LLM_TIMEOUT_S + 3), "local"),
    "429-retry-after": (status(429, retry_after="0.2"), "local"),
    "500": (status(500), "local"),
    "malformed": (Behavior(kind="malformed"), "local"),
    "hang": (HANG, "local"),
}


@pytest.mark.parametrize("failure", list(FAILURES))
async def test_a_failing_provider_still_ends_processed_and_others_keep_flowing(
    stack: Stack, fakes: tuple[FakeGroq, FakeMem0], failure: str
) -> None:
    groq, mem0 = fakes
    behavior, source = FAILURES[failure]
    bad_marker = new_id("bad")
    groq.when(behavior, contains=bad_marker)
    mem0.when(behavior, contains=bad_marker)
    bad = end_request(bad_marker)
    healthy = [end_request(new_id("ok")) for _ in range(4)]
    started = time.monotonic()
    await send(stack, bad)
    await asyncio.sleep(0.3)  # the bad one is in flight first
    for request in healthy:
        await send(stack, request)

    healthy_done = await asyncio.gather(
        *(wait_for_status(stack, r.conversation_id, PROCESSED, timeout_s=15) for r in healthy)
    )
    healthy_elapsed = time.monotonic() - started
    assert all(d.status == PROCESSED and d.analysis.source == "llm" for d in healthy_done)

    done = await wait_for_status(stack, bad.conversation_id, PROCESSED, timeout_s=15)
    bad_elapsed = time.monotonic() - started
    assert done.status == PROCESSED, done
    assert done.analysis.source == source
    assert done.analysis.user_initiated_questions == 1  # local: "Do you like cats?"
    assert done.analysis.new_memories_count == 2  # local: name, likes cats
    # Within its budgets (the slowest: the memory API's), plus pipeline latency.
    assert bad_elapsed < MEMORY_TIMEOUT_S + 3
    if failure in ("slow", "hang"):
        # The healthy ones did not wait for the stuck one.
        assert healthy_elapsed < bad_elapsed


async def test_analyze_conversation_uses_the_llm_and_stores_nothing(
    stack: Stack, fakes: tuple[FakeGroq, FakeMem0]
) -> None:
    groq, mem0 = fakes
    marker = new_id("preview")
    response = await analyzer_pb2_grpc.AnalyzerServiceStub(
        stack.worker_channel
    ).AnalyzeConversation(
        analyzer_pb2.AnalyzeConversationRequest(turns=end_request(marker).conversation_log),
        metadata=INTERNAL,
        timeout=10,
    )
    assert response.analysis.source == "llm"
    assert response.analysis.user_initiated_questions == 2
    assert response.analysis.new_memories_count == 2  # local facts, not stored
    assert groq.count(contains=marker) == 2 and mem0.count(contains=marker) == 0
