from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ingest.entrypoints.grpc_server import RunningServer, start_server
from servicekit.db import sqlalchemy_url
from tests.support.own_db import own_database

from .support import Stubs, delete_topology, make_settings


@pytest.fixture(scope="session")
def ingest_db_url() -> Iterator[str]:
    """A database of its own: this server lives all session, and its relay would publish
    every unpublished outbox row of a shared database (other tests' conversations) into
    its namespace, where nobody consumes them."""
    with own_database("ingest_contract") as url:
        yield url


@pytest.fixture(scope="session")
def ingest_db(ingest_db_url: str) -> Iterator[Engine]:
    """An engine for direct checks."""
    engine = sa.create_engine(sqlalchemy_url(ingest_db_url), pool_size=2)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
async def ingest_server(ingest_db_url: str, ingest_db: Engine) -> AsyncIterator[RunningServer]:
    settings = make_settings(database_url=ingest_db_url)
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
