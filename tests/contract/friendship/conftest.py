from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from friendship.entrypoints.grpc_server import RunningServer, start_server
from tests.contract.friendship.harness import migrate_test_database, server_settings


@pytest.fixture(scope="session")
def friendship_database() -> None:
    migrate_test_database()


@pytest.fixture(scope="session")
async def friendship_server(friendship_database: None) -> AsyncIterator[RunningServer]:
    running = await start_server(server_settings())
    yield running
    await running.stop(0.5)


@pytest.fixture(scope="session")
async def channel(friendship_server: RunningServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{friendship_server.port}") as ch:
        yield ch
