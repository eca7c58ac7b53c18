"""One real stack per e2e session: three service processes on real PostgreSQL and RabbitMQ.

The services reach PostgreSQL through a TcpProxy so that tests can take the database
away without touching the machine's server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from sqlalchemy.engine import make_url

from spring.friendship.v1 import friendship_pb2_grpc
from spring.ingest.v1 import ingest_pb2_grpc
from tests.support.auth import TEST_JWT_SECRET
from tests.support.broker import delete_namespace
from tests.support.env import AMQP_URL, TEST_DATABASE_URL, free_port, new_namespace
from tests.support.own_db import own_database
from tests.support.stack import Stack, build_stack
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
        yield from _run_stack(database_url, db_proxy, tmp_path_factory)


def _run_stack(
    database_url: str, db_proxy: TcpProxy, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    proxied = make_url(database_url).set(host="127.0.0.1", port=db_proxy.port)
    namespace = new_namespace()
    log_dir = tmp_path_factory.mktemp("e2e-logs")
    built = build_stack(
        database_url=proxied.render_as_string(hide_password=False),
        amqp_url=AMQP_URL,
        namespace=namespace,
        jwt_secret=TEST_JWT_SECRET,
        log_dir=log_dir,
        extra_env={
            "ANALYZER_RETRY_DELAYS_S": str(RETRY_DELAYS_S),
            "ANALYZER_MAX_ATTEMPTS": "3",
        },
    )
    try:
        for service in built.services:
            service.start()
            service.wait_serving()
        yield built
    finally:
        codes = {s.name: s.stop() for s in built.services if s.process is not None}
        asyncio.run(delete_namespace(AMQP_URL, namespace, RETRY_DELAYS_S))
        for name, code in codes.items():
            if code != 0:
                print(Path(log_dir / f"{name}.log").read_text()[-4000:])  # noqa: T201
        assert all(code == 0 for code in codes.values()), f"unclean exits: {codes}"


@pytest.fixture(scope="session")
def ingest(stack: Stack) -> Iterator[ingest_pb2_grpc.IngestServiceStub]:
    with grpc.insecure_channel(stack.ingest.target) as channel:
        yield ingest_pb2_grpc.IngestServiceStub(channel)


@pytest.fixture(scope="session")
def friendship(stack: Stack) -> Iterator[friendship_pb2_grpc.FriendshipServiceStub]:
    with grpc.insecure_channel(stack.friendship.target) as channel:
        yield friendship_pb2_grpc.FriendshipServiceStub(channel)
