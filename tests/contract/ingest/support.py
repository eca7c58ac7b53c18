"""Helpers shared by the ingest contract and integration tests."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import aio_pika
import grpc
import sqlalchemy as sa
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.engine import Engine

from ingest.config import Settings
from servicekit.messaging import Topology
from spring.ingest.v1 import ingest_internal_pb2_grpc, ingest_pb2, ingest_pb2_grpc
from tests.support.auth import TEST_JWT_SECRET, bearer
from tests.support.env import AMQP_URL, TEST_DATABASE_URL

WRITE = bearer(["ingest:write"])
READ = bearer(["ingest:read"])
ROBOT = bearer(["ingest:write", "ingest:read"])
INTERNAL = bearer(["internal"])


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "grpc_host": "127.0.0.1",
        "grpc_port": 0,
        "metrics_port": 0,
        "database_url": TEST_DATABASE_URL,
        "auth_jwt_secret": TEST_JWT_SECRET,
        "amqp_url": AMQP_URL,
        "amqp_namespace": f"test-{uuid.uuid4().hex[:10]}",
        "relay_poll_interval_s": 0.2,
        "shutdown_grace_s": 1.0,
    }
    values.update(overrides)
    return Settings(**values)


def new_id(prefix: str = "conv") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def ts(seconds: int, nanos: int = 0) -> Timestamp:
    return Timestamp(seconds=seconds, nanos=nanos)


def end_request(conversation_id: str | None = None, **overrides: Any) -> (
    ingest_pb2.EndConversationRequest
):
    values: dict[str, Any] = {
        "conversation_id": conversation_id or new_id(),
        "user_id": "user-" + uuid.uuid4().hex[:8],
        "bot_id": "bot-1",
        "agent_tag": "topic-animals",
        "conversation_log": [
            ingest_pb2.Turn(role="user", content="Chào  bạn!", at=ts(1_700_000_000)),
            ingest_pb2.Turn(role="User", content="Do you like cats? 🐱", at=ts(1_700_000_001)),
            ingest_pb2.Turn(role="bot", content="  Yes, I do.  ", at=ts(1_700_000_002)),
            ingest_pb2.Turn(role="assistant", content="   "),
        ],
        "started_at": ts(1_700_000_000),
        "ended_at": ts(1_700_000_060),
    }
    values.update(overrides)
    return ingest_pb2.EndConversationRequest(**values)


class Stubs:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.ingest = ingest_pb2_grpc.IngestServiceStub(channel)
        self.internal = ingest_internal_pb2_grpc.IngestInternalServiceStub(channel)


def rows_for(engine: Engine, conversation_id: str) -> tuple[int, int]:
    """(conversation rows, outbox rows) stored for this id."""
    with engine.connect() as conn:
        conversations = conn.execute(
            sa.text("SELECT count(*) FROM ingest.conversations WHERE conversation_id = :c"),
            {"c": conversation_id},
        ).scalar_one()
        outbox = conn.execute(
            sa.text("SELECT count(*) FROM ingest.outbox WHERE conversation_id = :c"),
            {"c": conversation_id},
        ).scalar_one()
    return int(conversations), int(outbox)


async def delete_topology(namespace: str, amqp_url: str = AMQP_URL) -> None:
    """Remove a test namespace's queues and exchanges from the broker."""
    topology = Topology(namespace)
    try:
        connection = await aio_pika.connect(amqp_url, timeout=5)
    except Exception:
        return
    async with connection:
        for queue in (topology.work_queue, topology.dead_letter_queue):
            channel = await connection.channel()
            with contextlib.suppress(Exception):
                await channel.queue_delete(queue)
        for exchange in (topology.exchange, topology.dead_letter_exchange):
            channel = await connection.channel()
            with contextlib.suppress(Exception):
                await channel.exchange_delete(exchange)


async def wait_for(predicate: Any, timeout_s: float, interval_s: float = 0.1) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(interval_s)
    return bool(await predicate())
