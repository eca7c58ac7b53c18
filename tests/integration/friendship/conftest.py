from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from friendship.entrypoints.grpc_server import RunningServer, start_server
from servicekit.db import sqlalchemy_url
from tests.contract.friendship.harness import migrate_test_database, server_settings
from tests.support.env import TEST_DATABASE_URL


@pytest.fixture(scope="session")
def friendship_database() -> None:
    migrate_test_database()


@pytest.fixture(scope="session")
def engine(friendship_database: None) -> Iterator[Engine]:
    engine = sa.create_engine(sqlalchemy_url(TEST_DATABASE_URL), pool_size=5)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
async def friendship_server(friendship_database: None) -> AsyncIterator[RunningServer]:
    running = await start_server(server_settings())
    yield running
    await running.stop(0.5)


@pytest.fixture(scope="session")
async def channel(friendship_server: RunningServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{friendship_server.port}") as ch:
        yield ch


@pytest.fixture
def fresh_database_url() -> Iterator[str]:
    """A database name nobody else uses; dropped (only it) afterwards. Tests that change the
    active rule set or run an event relay use one, so they never disturb the shared one."""
    name = f"friendship_it_{uuid.uuid4().hex[:12]}"
    url = sqlalchemy_url(TEST_DATABASE_URL).set(database=name)
    yield url.render_as_string(hide_password=False)
    admin = sa.create_engine(
        url.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
    )
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
