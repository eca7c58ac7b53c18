from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ingest.entrypoints.grpc_server import RunningServer, start_server
from servicekit.db import migrate, sqlalchemy_url
from tests.support.env import TEST_DATABASE_URL

from .support import Stubs, delete_topology, make_settings


@pytest.fixture(scope="session")
def ingest_db() -> Iterator[Engine]:
    """spring_test, migrated once per session; an engine for direct checks."""
    migrate(TEST_DATABASE_URL, "ingest:migrations", "ingest")
    engine = sa.create_engine(sqlalchemy_url(TEST_DATABASE_URL), pool_size=2)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
async def ingest_server(ingest_db: Engine) -> AsyncIterator[RunningServer]:
    settings = make_settings()
    running = await start_server(settings)
    yield running
    await running.stop(grace_s=1.0)
    await delete_topology(settings.amqp_namespace)


@pytest.fixture(scope="session")
async def ingest_channel(ingest_server: RunningServer) -> AsyncIterator[grpc.aio.Channel]:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{ingest_server.port}")
    await asyncio.wait_for(channel.channel_ready(), 5)
    yield channel
    await channel.close(None)


@pytest.fixture
def stubs(ingest_channel: grpc.aio.Channel) -> Stubs:
    return Stubs(ingest_channel)
