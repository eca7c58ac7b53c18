"""With the database unreachable, every RPC answers UNAVAILABLE within 2 s, never hangs."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import pytest

from friendship.entrypoints.grpc_server import RunningServer, start_server
from servicekit.db import DatabaseUnavailable
from spring.friendship.v1 import (
    friendship_internal_pb2,
    friendship_internal_pb2_grpc,
    friendship_pb2,
    friendship_pb2_grpc,
)
from spring.ingest.v1 import ingest_pb2
from tests.contract.friendship.harness import server_settings
from tests.support.auth import INTERNAL_SCOPES, READER_SCOPES, bearer
from tests.support.env import free_port

pytestmark = pytest.mark.integration


def dead_database_url() -> str:
    # Nothing listens on a port just handed back by the kernel.
    return f"postgresql://postgres@127.0.0.1:{free_port()}/spring_test"


@pytest.fixture
async def server_without_database() -> AsyncIterator[RunningServer]:
    # check_database=False: start anyway, as a running server whose database went away.
    running = await start_server(server_settings(dead_database_url()), check_database=False)
    yield running
    await running.stop(0.5)


async def test_rpcs_answer_unavailable_quickly(server_without_database: RunningServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server_without_database.port}") as channel:
        public = friendship_pb2_grpc.FriendshipServiceStub(channel)
        internal = friendship_internal_pb2_grpc.FriendshipInternalServiceStub(channel)
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: public.GetLevel(
                friendship_pb2.GetLevelRequest(user_id="user-1"),
                metadata=bearer(READER_SCOPES), timeout=10,
            ),
            lambda: public.GetTopicMetrics(
                friendship_pb2.GetTopicMetricsRequest(user_id="user-1"),
                metadata=bearer(READER_SCOPES), timeout=10,
            ),
            lambda: internal.ApplyConversation(
                friendship_internal_pb2.ApplyConversationRequest(
                    conversation_id="conv-1", user_id="user-1", bot_id="bot-1",
                    analysis=ingest_pb2.Analysis(total_turns=2),
                ),
                metadata=bearer(INTERNAL_SCOPES), timeout=10,
            ),
        ]
        for call in calls:
            started = time.monotonic()
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call()
            elapsed = time.monotonic() - started
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            assert info.value.details() == "database unavailable"
            assert elapsed < 2.0


async def test_start_up_check_refuses_a_dead_database() -> None:
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable):
        await start_server(server_settings(dead_database_url()))
    assert time.monotonic() - started < 2.0
