"""Use case: one `conversation ended` message, from claim to completion or failure.

Takes its ports as arguments; no grpc, sqlalchemy or aio_pika here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from enum import StrEnum

from analyzer.domain.errors import DependencyFailed, RedeliveryFailed
from analyzer.domain.failure import DeadLetter, RetryPolicy, decide
from analyzer.domain.messages import MalformedMessage, parse_ended_message
from analyzer.domain.model import Analysis, Conversation, is_skipped
from analyzer.domain.ports import (
    AnalysisStore,
    ConversationAnalysis,
    ErasureStore,
    FriendshipPort,
    IngestPort,
    MemoryApiEraser,
    Redelivery,
)

log = logging.getLogger(__name__)
MAX_REASON_CHARS = 200


class Outcome(StrEnum):
    ALREADY_DONE = "already_done"
    SKIPPED = "skipped"
    PROCESSED = "processed"
    RETRY_SCHEDULED = "retry_scheduled"
    DEAD_LETTERED = "dead_lettered"


@dataclass(frozen=True)
class Pipeline:
    ingest: IngestPort
    friendship: FriendshipPort
    analysis: ConversationAnalysis
    analyses: AnalysisStore


@dataclass(frozen=True)
class MessagePolicy:
    retry: RetryPolicy
    deadline_s: float
    lease_s: int


def failure_reason(exc: BaseException) -> str:
    """A short reason for statuses and headers: never the exception's free text."""
    if isinstance(exc, DependencyFailed):
        reason = exc.reason
    elif isinstance(exc, TimeoutError):
        reason = "deadline exceeded"
    else:
        reason = f"unexpected {type(exc).__name__}"
    return reason[:MAX_REASON_CHARS]


async def process_conversation(
    conversation: Conversation,
    pipeline: Pipeline,
    stored: Awaitable[Analysis | None] | None = None,
) -> Outcome:
    """Steps 2-5 for a claimed conversation; every step is idempotent by conversation_id.

    `stored`: the read of an earlier attempt's analysis, when the caller started it already
    (else it is read here).
    """
    conversation_id = conversation.conversation_id
    if is_skipped(conversation):
        await pipeline.ingest.complete_skipped(conversation_id)
        return Outcome.SKIPPED
    analysis = await (stored if stored is not None else pipeline.analyses.get(conversation_id))
    if analysis is None:
        computed = await pipeline.analysis.analyze(conversation)
        analysis = await pipeline.analyses.save_first(conversation_id, computed)
    score_change = await pipeline.friendship.apply(conversation, analysis)
    await pipeline.ingest.complete_processed(conversation_id, score_change, analysis)
    return Outcome.PROCESSED


async def handle_conversation_ended(
    body: bytes,
    previous_attempts: int,
    pipeline: Pipeline,
    redelivery: Redelivery,
    policy: MessagePolicy,
) -> Outcome:
    """Returns once the message may be acked; raises RedeliveryFailed when it may not."""
    try:
        conversation_id = parse_ended_message(body)
    except MalformedMessage:
        await _dead_letter(redelivery, "malformed message", previous_attempts)
        log.warning("malformed message dead-lettered")
        return Outcome.DEAD_LETTERED

    attempts = previous_attempts + 1
    try:
        async with asyncio.timeout(policy.deadline_s):
            # An earlier attempt's analysis is read while the claim is in flight (one DB
            # connection, as before); it is used only once the claim is ours, and its error,
            # if any, counts only then, as if it had been read after the claim.
            stored = asyncio.ensure_future(pipeline.analyses.get(conversation_id))
            try:
                claim = await pipeline.ingest.claim(conversation_id, policy.lease_s)
                if not claim.claimed:
                    return Outcome.ALREADY_DONE
                # Ingest counts every claim (also lease take-overs); our header counts
                # failures it may not have seen. The larger bounds the retries.
                attempts = max(attempts, claim.attempts)
                if claim.conversation is None:
                    raise DependencyFailed("ingest claimed without a conversation")
                return await process_conversation(claim.conversation, pipeline, stored)
            finally:
                await _settled(stored)
    except Exception as exc:
        reason = failure_reason(exc)
        log.warning(
            "conversation attempt failed",
            extra={"attempts": attempts, "reason": reason, "error_type": type(exc).__name__},
        )
    return await _on_failure(conversation_id, attempts, reason, pipeline.ingest, redelivery, policy)


async def _on_failure(
    conversation_id: str,
    attempts: int,
    reason: str,
    ingest: IngestPort,
    redelivery: Redelivery,
    policy: MessagePolicy,
) -> Outcome:
    decision = decide(attempts, policy.retry)
    if isinstance(decision, DeadLetter):
        await _dead_letter(redelivery, reason, attempts)
        await _record_failure(ingest, conversation_id, reason, dead_lettered=True)
        log.error("conversation dead-lettered", extra={"attempts": attempts, "reason": reason})
        return Outcome.DEAD_LETTERED
    await _record_failure(ingest, conversation_id, reason, dead_lettered=False)
    try:
        await redelivery.retry_later(decision.delay_s, attempts, reason)
    except Exception as exc:
        raise RedeliveryFailed("retry publish failed") from exc
    log.info("retry scheduled", extra={"attempts": attempts, "delay_s": decision.delay_s})
    return Outcome.RETRY_SCHEDULED


async def _settled(read: asyncio.Future[Analysis | None]) -> None:
    """Waits for a read that is no longer needed (its DB call is bounded by the runner's
    deadline), so the message holds no connection once handled; its outcome is dropped."""
    if not read.done():
        await asyncio.wait([read])
    if not read.cancelled():
        read.exception()  # retrieved: no "exception was never retrieved" warning


async def _dead_letter(redelivery: Redelivery, reason: str, attempts: int) -> None:
    try:
        await redelivery.dead_letter(reason, attempts)
    except Exception as exc:
        raise RedeliveryFailed("dead-letter publish failed") from exc


async def _record_failure(
    ingest: IngestPort, conversation_id: str, reason: str, *, dead_lettered: bool
) -> None:
    """Best effort: the message's fate does not depend on ingest hearing about it."""
    try:
        await ingest.fail(conversation_id, reason, dead_lettered)
    except Exception as exc:
        log.warning(
            "could not record the failure on ingest",
            extra={"reason": failure_reason(exc), "dead_lettered": dead_lettered},
        )


async def erase_user_data(
    store: ErasureStore,
    memory_api: MemoryApiEraser | None,
    user_id: str,
    conversation_hashes: list[str],
) -> dict[str, int]:
    """Erasure (after ingest's): analyses, local memories, then the memory API's records.

    The database first: from its commit on, a conversation still in flight stores nothing
    (tombstones). The memory API last: a failure there (ProviderFailed) fails the call and
    the operator runs the command again; every step is idempotent.
    """
    deleted = await store.erase_user(user_id, conversation_hashes)
    if memory_api is not None:
        await memory_api.delete_user(user_id)
    deleted["memory_api"] = 1 if memory_api is not None else 0
    return deleted
