"""Operators' commands: list dead letters, replay them, re-process conversations by id.

Reading the dead-letter queue never loses a message. Each message is taken with a manual
ack, a copy is published back to the dead-letter queue (publisher confirms) unless the
message is replayed, and only then is the original acked. A crash in between leaves at
most one extra copy, which replay treats like the original (replay is idempotent). We do
not browse by get + requeue: on RabbitMQ 4 quorum queues count such returns towards a
delivery limit (default 20), past which the message would be dropped. A full listing walks
the queue exactly once (the count read at the start), so the order is kept; a listing cut
by --limit moves the listed messages behind the others.

Replay does not move the message itself: ingest's RequeueConversation resets the
conversation (FAILED -> PENDING, attempts 0) and enqueues it through its outbox (durable
before we ack), then the dead letter is acked. A second run finds the conversation
PENDING (or done) and the dead letter gone, and changes nothing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Collection
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import aio_pika
import grpc
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from servicekit.messaging import Topology
from spring.ingest.v1 import (
    ingest_internal_pb2,
    ingest_internal_pb2_grpc,
    ingest_pb2,
    ingest_pb2_grpc,
)

STATUS_NAMES = {
    value: name.removeprefix("CONVERSATION_STATUS_")
    for name, value in ingest_pb2.ConversationStatus.items()
}
RPC_TIMEOUT_S = 10.0
REPLAY_REASON = "replayed by operator"
REPROCESS_REASON = "re-processed by operator"


@dataclass(frozen=True)
class DeadLetter:
    conversation_id: str | None  # None: the body carries no valid id (malformed message)
    reason: str
    attempts: int | None
    age_s: float | None
    status: str  # the conversation's status on ingest, or why it is unknown
    dead_lettered_at: str | None


@dataclass(frozen=True)
class ReplayOutcome:
    conversation_id: str | None
    action: str  # "requeued", "dropped", "kept"
    detail: str


@dataclass(frozen=True)
class Target:
    amqp_url: str
    namespace: str
    ingest: str
    token: str
    amqp_timeout_s: float = 5.0


def _header(message: AbstractIncomingMessage, name: str) -> Any:
    value = (message.headers or {}).get(name)
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def conversation_id_of(body: bytes) -> str | None:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    value = payload.get("conversation_id") if isinstance(payload, dict) else None
    if isinstance(value, str) and 0 < len(value) <= 128:
        return value
    return None


def _x_death(message: AbstractIncomingMessage) -> dict[str, Any] | None:
    deaths = (message.headers or {}).get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        return deaths[0]
    return None


def _reason(message: AbstractIncomingMessage) -> str:
    """Ours (x-death-reason, set by the analyzer) or the broker's (x-death: delivery_limit)."""
    for name in ("x-death-reason", "x-last-error"):
        value = _header(message, name)
        if value:
            return str(value)[:200]
    death = _x_death(message)
    if death is not None:
        reason = death.get("reason")
        return f"broker: {reason.decode() if isinstance(reason, bytes) else reason}"
    return "unknown"


def _attempts(message: AbstractIncomingMessage) -> int | None:
    for name in ("x-attempts", "x-attempt", "x-delivery-count"):
        value = _header(message, name)
        try:
            return int(value) if value is not None else None
        except (TypeError, ValueError):
            continue
    return None


def _dead_lettered_at(message: AbstractIncomingMessage) -> datetime | None:
    if message.timestamp is not None:
        stamp = message.timestamp
        return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
    death = _x_death(message)
    when = death.get("time") if death else None
    if isinstance(when, datetime):
        return when if when.tzinfo else when.replace(tzinfo=UTC)
    return None


def _copy(message: AbstractIncomingMessage) -> aio_pika.Message:
    return aio_pika.Message(
        body=message.body,
        headers=dict(message.headers or {}),
        content_type=message.content_type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message.message_id,
        timestamp=message.timestamp,
    )


class _DeadLetterQueue:
    """Walks the dead-letter queue once; every message ends kept (copied back) or removed."""

    def __init__(self, target: Target) -> None:
        self._target = target
        self._topology = Topology(target.namespace)

    async def walk(
        self,
        visit: Callable[[AbstractIncomingMessage], Awaitable[bool]],
        limit: int | None = None,
    ) -> None:
        """visit(message) -> True to remove the message, False to keep it."""
        connection = await aio_pika.connect(
            self._target.amqp_url,
            timeout=self._target.amqp_timeout_s,
            client_properties={"connection_name": f"springctl {self._target.namespace}"},
        )
        async with connection:
            channel: AbstractChannel = await connection.channel(publisher_confirms=True)
            await self._topology.declare(channel)  # idempotent; a fresh stack has none yet
            queue = await channel.declare_queue(self._topology.dead_letter_queue, passive=True)
            count = int(queue.declaration_result.message_count or 0)
            if limit is not None:
                count = min(count, limit)
            for _ in range(count):
                message = await queue.get(
                    no_ack=False, fail=False, timeout=self._target.amqp_timeout_s
                )
                if message is None:
                    break
                try:
                    remove = await visit(message)
                except BaseException:
                    await message.nack(requeue=True)
                    raise
                if not remove:
                    await channel.default_exchange.publish(
                        _copy(message),
                        routing_key=self._topology.dead_letter_queue,
                        timeout=self._target.amqp_timeout_s,
                    )
                await message.ack()


async def _statuses(target: Target, ids: Collection[str]) -> dict[str, tuple[str, datetime | None]]:
    """Status and last update of each id on ingest (public GetConversationStatus)."""
    found: dict[str, tuple[str, datetime | None]] = {}
    metadata = (("authorization", f"Bearer {target.token}"),)
    async with grpc.aio.insecure_channel(target.ingest) as channel:
        stub = ingest_pb2_grpc.IngestServiceStub(channel)
        for cid in ids:
            try:
                reply = await stub.GetConversationStatus(
                    ingest_pb2.GetConversationStatusRequest(conversation_id=cid),
                    metadata=metadata,
                    timeout=RPC_TIMEOUT_S,
                )
            except grpc.aio.AioRpcError as err:
                found[cid] = (f"? ({err.code().name})", None)
                continue
            updated = (
                reply.updated_at.ToDatetime(tzinfo=UTC) if reply.HasField("updated_at") else None
            )
            found[cid] = (STATUS_NAMES.get(reply.status, str(reply.status)), updated)
    return found


async def list_dead_letters(target: Target, limit: int | None = None) -> list[DeadLetter]:
    seen: list[tuple[str | None, str, int | None, datetime | None]] = []

    async def keep(message: AbstractIncomingMessage) -> bool:
        seen.append(
            (conversation_id_of(message.body), _reason(message), _attempts(message),
             _dead_lettered_at(message))
        )  # fmt: skip
        return False

    await _DeadLetterQueue(target).walk(keep, limit)
    statuses = await _statuses(target, sorted({cid for cid, *_ in seen if cid}))
    now = datetime.now(UTC)
    letters = []
    for cid, reason, attempts, at in seen:
        status, updated = statuses.get(cid, ("malformed message", None)) if cid else (
            "malformed message", None
        )
        # Ingest marks the conversation FAILED when it dead-letters it: that is the age
        # when the message itself carries no time.
        when = at or (updated if status == "FAILED" else None)
        letters.append(
            DeadLetter(
                conversation_id=cid,
                reason=reason,
                attempts=attempts,
                age_s=round((now - when).total_seconds(), 1) if when else None,
                status=status,
                dead_lettered_at=when.isoformat() if when else None,
            )
        )
    return letters


async def _requeue(
    stub: Any, token: str, conversation_id: str, reason: str
) -> ingest_internal_pb2.RequeueConversationResponse:
    reply: ingest_internal_pb2.RequeueConversationResponse = await stub.RequeueConversation(
        ingest_internal_pb2.RequeueConversationRequest(
            conversation_id=conversation_id, reason=reason
        ),
        metadata=(("authorization", f"Bearer {token}"),),
        timeout=RPC_TIMEOUT_S,
    )
    return reply


async def replay(
    target: Target, ids: Collection[str] | None, limit: int | None = None
) -> list[ReplayOutcome]:
    """Replay the dead letters of `ids` (None: all of them)."""
    outcomes: list[ReplayOutcome] = []
    wanted = None if ids is None else set(ids)
    async with grpc.aio.insecure_channel(target.ingest) as channel:
        stub = ingest_internal_pb2_grpc.IngestInternalServiceStub(channel)

        async def visit(message: AbstractIncomingMessage) -> bool:
            cid = conversation_id_of(message.body)
            if wanted is not None and cid not in wanted:
                return False
            if cid is None:
                outcomes.append(ReplayOutcome(None, "kept", "malformed: no conversation id"))
                return False
            try:
                reply = await _requeue(stub, target.token, cid, REPLAY_REASON)
            except grpc.aio.AioRpcError as err:
                detail = f"ingest answered {err.code().name}"
                if err.code() == grpc.StatusCode.NOT_FOUND:
                    detail = "ingest does not know this conversation"
                outcomes.append(ReplayOutcome(cid, "kept", detail))
                return False
            action = "requeued" if reply.requeued else "dropped"
            detail = (
                f"{STATUS_NAMES[reply.previous_status]} -> {STATUS_NAMES[reply.status]}: "
                f"{reply.detail}"
            )
            outcomes.append(ReplayOutcome(cid, action, detail))
            return True  # the conversation is queued again (or needs nothing): remove it

        await _DeadLetterQueue(target).walk(visit, limit)
    if wanted is not None:
        done = {o.conversation_id for o in outcomes}
        for cid in sorted(wanted - done):
            outcomes.append(
                ReplayOutcome(cid, "absent", "not in the dead-letter queue (see `reprocess`)")
            )
    return outcomes


async def reprocess(target: Target, ids: Collection[str]) -> list[ReplayOutcome]:
    """Enqueue conversations again by id, whatever queue their message is (or is not) in."""
    outcomes = []
    async with grpc.aio.insecure_channel(target.ingest) as channel:
        stub = ingest_internal_pb2_grpc.IngestInternalServiceStub(channel)
        for cid in ids:
            try:
                reply = await _requeue(stub, target.token, cid, REPROCESS_REASON)
            except grpc.aio.AioRpcError as err:
                outcomes.append(ReplayOutcome(cid, "error", f"{err.code().name}: {err.details()}"))
                continue
            outcomes.append(
                ReplayOutcome(
                    cid,
                    "requeued" if reply.requeued else "unchanged",
                    f"{STATUS_NAMES[reply.previous_status]} -> {STATUS_NAMES[reply.status]}: "
                    f"{reply.detail}",
                )
            )
    return outcomes


def as_json_lines(rows: list[DeadLetter] | list[ReplayOutcome]) -> list[str]:
    return [json.dumps(asdict(row), sort_keys=True) for row in rows]


def run(coro: Any) -> Any:
    return asyncio.run(coro)
