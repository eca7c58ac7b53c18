"""One real stack per e2e session: three service processes on real PostgreSQL and RabbitMQ.

The services reach PostgreSQL through a TcpProxy so that tests can take the database
away without touching the machine's server.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from sqlalchemy.engine import make_url

from spring.friendship.v1 import friendship_pb2_grpc
from spring.ingest.v1 import ingest_pb2_grpc
from tests.support.env import TEST_DATABASE_URL, free_port
from tests.support.own_db import own_database
from tests.support.stack import Stack, running_stack
from tests.support.tcp_proxy import TcpProxy

RETRY_DELAYS_S = [1, 2]


@pytest.fixture(scope="session")
def db_proxy() -> Iterator[TcpProxy]:
    url = make_url(TEST_DATABASE_URL)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432, free_port()).start()
    yield proxy
    proxy.close()


@pytest.fixture(scope="session")
def stack(db_proxy: TcpProxy, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # A database of its own: any ingest relay publishes every unpublished outbox row of the
    # database it serves, so stacks sharing one would take each other's conversations.
    with own_database("e2e") as database_url:
        proxied = make_url(database_url).set(host="127.0.0.1", port=db_proxy.port)
        with running_stack(
            database_url=proxied.render_as_string(hide_password=False),
            log_dir=tmp_path_factory.mktemp("e2e-logs"),
            retry_delays_s=RETRY_DELAYS_S,
            extra_env={"ANALYZER_MAX_ATTEMPTS": "3"},
        ) as built:
            yield built


@pytest.fixture(scope="session")
def ingest(stack: Stack) -> Iterator[ingest_pb2_grpc.IngestServiceStub]:
    with grpc.insecure_channel(stack.ingest.target) as channel:
        yield ingest_pb2_grpc.IngestServiceStub(channel)


@pytest.fixture(scope="session")
def friendship(stack: Stack) -> Iterator[friendship_pb2_grpc.FriendshipServiceStub]:
    with grpc.insecure_channel(stack.friendship.target) as channel:
        yield friendship_pb2_grpc.FriendshipServiceStub(channel)
