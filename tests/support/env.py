"""Where the tests find PostgreSQL and RabbitMQ, and how they keep out of a dev stack's way."""

from __future__ import annotations

import os
import socket
import uuid

from sqlalchemy.engine import make_url

_BASE_DB = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/spring")
# Tests share one database of their own (never the dev stack's); ids are random per test.
TEST_DATABASE_URL = os.environ.get(
    "TEST_DATABASE_URL", make_url(_BASE_DB).set(database="spring_test").render_as_string(False)
)
# The server's own `postgres` database: always there, for tests of connections and pools.
SERVER_DATABASE_URL = make_url(TEST_DATABASE_URL).set(database="postgres").render_as_string(False)
AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def new_namespace() -> str:
    """A broker namespace of its own for one test session or test."""
    return f"test-{uuid.uuid4().hex[:10]}"


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
