from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import grpc
import pytest

from analyzer.analysis import ConversationAnalyzer
from analyzer.config import Settings
from analyzer.domain.model import Fact
from analyzer.entrypoints.worker import create_grpc_server
from tests.support.auth import TEST_JWT_SECRET


class UnusedMemoryStore:
    """AnalyzeConversation stores nothing: any call here is a bug."""

    async def remember(self, user_id: str, conversation_id: str, facts: Sequence[Fact]) -> int:
        raise AssertionError("AnalyzeConversation must not store memories")


@pytest.fixture(scope="session")
async def analyzer_channel() -> AsyncIterator[grpc.aio.Channel]:
    """The AnalyzerService in-process on a free port; real tokens, real sockets."""
    settings = Settings(auth_jwt_secret=TEST_JWT_SECRET, auth_jwt_public_key=None, grpc_port=0)
    server = create_grpc_server(settings, ConversationAnalyzer(UnusedMemoryStore()))
    port = await server.start("127.0.0.1:0")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield channel
    await server.stop(0.5)
