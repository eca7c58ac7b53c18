"""gRPC servicers: proto <-> domain at the edge, domain errors -> status codes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import Histogram

from ingest import handlers
from ingest.bootstrap import Deps
from ingest.domain.model import (
    Analysis,
    ConversationInput,
    Instant,
    Metadata,
    NormalizedConversation,
    Turn,
)
from ingest.domain.status import Status
from ingest.domain.validation import id_violation
from servicekit.db import DatabaseUnavailable
from servicekit.errors import abort_invalid_argument
from servicekit.logging import conversation_id_var, new_trace_id, trace_id_var
from spring.ingest.v1 import (
    ingest_internal_pb2,
    ingest_internal_pb2_grpc,
    ingest_pb2,
    ingest_pb2_grpc,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
Context = grpc.aio.ServicerContext[Any, Any]

_STATUS_TO_PROTO = {
    Status.PENDING: ingest_pb2.CONVERSATION_STATUS_PENDING,
    Status.PROCESSING: ingest_pb2.CONVERSATION_STATUS_PROCESSING,
    Status.PROCESSED: ingest_pb2.CONVERSATION_STATUS_PROCESSED,
    Status.SKIPPED: ingest_pb2.CONVERSATION_STATUS_SKIPPED,
    Status.FAILED: ingest_pb2.CONVERSATION_STATUS_FAILED,
}
_STATUS_FROM_PROTO = {value: key for key, value in _STATUS_TO_PROTO.items()}

ACCEPT_TO_PROCESSED = Histogram(
    "pipeline_accept_to_processed_seconds",
    "Time from EndConversation's acceptance to PROCESSED, once per conversation",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 20, 30, 45, 60, 120, 300, 600, 1800),
)


def _observe_accept_to_processed(elapsed: timedelta) -> None:
    ACCEPT_TO_PROCESSED.observe(max(elapsed.total_seconds(), 0.0))


# --- mapping -------------------------------------------------------------------------------------
def _instant(message: Any, field: str) -> Instant | None:
    if not message.HasField(field):
        return None
    ts = getattr(message, field)
    return Instant(int(ts.seconds), int(ts.nanos))


def to_domain(request: ingest_pb2.EndConversationRequest) -> ConversationInput:
    meta = request.metadata
    return ConversationInput(
        conversation_id=request.conversation_id,
        user_id=request.user_id,
        bot_id=request.bot_id,
        bot_type=request.bot_type,
        agent_tag=request.agent_tag,
        turns=tuple([Turn(t.role, t.content, _instant(t, "at")) for t in request.conversation_log]),
        metadata=Metadata(
            user_initiated_questions=(
                int(meta.user_initiated_questions)
                if meta.HasField("user_initiated_questions")
                else None
            ),
            session_emotion=int(meta.session_emotion),
        ),
        started_at=_instant(request, "started_at"),
        ended_at=_instant(request, "ended_at"),
    )


def timestamp(value: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value.astimezone(UTC))
    return ts


def normalized_to_proto(
    conversation: NormalizedConversation, message: ingest_internal_pb2.NormalizedConversation
) -> None:
    """Fills `message` in place (no intermediate messages to copy: the log is the bulk)."""
    message.conversation_id = conversation.conversation_id
    message.user_id = conversation.user_id
    message.bot_id = conversation.bot_id
    message.bot_type = conversation.bot_type
    message.agent_tag = conversation.agent_tag
    add_turn = message.turns.add
    for turn in conversation.turns:
        added = add_turn(role=turn.role, content=turn.content)
        if turn.at is not None:
            added.at.seconds = turn.at.seconds
            added.at.nanos = turn.at.nanos
    message.metadata.CopyFrom(metadata_to_proto(conversation.metadata))


def metadata_to_proto(metadata: Metadata) -> ingest_pb2.ConversationMetadata:
    message = ingest_pb2.ConversationMetadata(
        session_emotion=metadata.session_emotion  # type: ignore[arg-type]
    )
    if metadata.user_initiated_questions is not None:
        message.user_initiated_questions = metadata.user_initiated_questions
    return message


def analysis_to_proto(analysis: Analysis) -> ingest_pb2.Analysis:
    return ingest_pb2.Analysis(
        total_turns=analysis.total_turns,
        user_initiated_questions=analysis.user_initiated_questions,
        session_emotion=analysis.session_emotion,  # type: ignore[arg-type]
        new_memories_count=analysis.new_memories_count,
        source=analysis.source,
    )


def analysis_to_domain(message: ingest_pb2.Analysis) -> Analysis:
    return Analysis(
        total_turns=int(message.total_turns),
        user_initiated_questions=int(message.user_initiated_questions),
        session_emotion=int(message.session_emotion),
        new_memories_count=int(message.new_memories_count),
        source=message.source,
    )


# --- errors --------------------------------------------------------------------------------------
async def _abort_for(context: Context, exc: Exception) -> NoReturn:
    if isinstance(exc, handlers.InvalidRequest):
        await abort_invalid_argument(context, exc.violations)
    if isinstance(exc, handlers.ContentConflict):
        await context.abort(
            grpc.StatusCode.ALREADY_EXISTS,
            "conversation_id was already accepted with different content",
        )
    if isinstance(exc, handlers.ConversationNotFound):
        await context.abort(grpc.StatusCode.NOT_FOUND, "conversation not found")
    if isinstance(exc, DatabaseUnavailable):
        log.warning("database unavailable", extra={"error": str(exc)})
        await context.abort(grpc.StatusCode.UNAVAILABLE, "database unavailable")
    raise exc


class _Base:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    async def _run(self, context: Context, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        def call() -> T:
            return fn(self._deps.unit_of_work, *args, **kw)

        try:
            return await self._deps.runner(call)
        except (
            handlers.InvalidRequest,
            handlers.ContentConflict,
            handlers.ConversationNotFound,
            DatabaseUnavailable,
        ) as exc:
            await _abort_for(context, exc)


def _bind_id(conversation_id: str) -> None:
    """Log lines of this call carry the id, if it is a valid one (never arbitrary text)."""
    if id_violation("conversation_id", conversation_id) is None:
        conversation_id_var.set(conversation_id)


def _now() -> datetime:
    return datetime.now(UTC)


class IngestServicer(_Base, ingest_pb2_grpc.IngestServiceServicer):
    async def EndConversation(
        self, request: ingest_pb2.EndConversationRequest, context: Context
    ) -> ingest_pb2.EndConversationResponse:
        _bind_id(request.conversation_id)
        # The caller's id (x-request-id from Envoy, traceparent, x-trace-id; bound by the
        # server's TraceInterceptor) or a new one; stored with the conversation.
        trace_id = trace_id_var.get() or new_trace_id()
        trace_id_var.set(trace_id)
        conversation = to_domain(request)
        result = await self._run(
            context,
            handlers.end_conversation,
            conversation,
            max_turns=self._deps.settings.max_turns,
            now=_now(),
            trace_id=trace_id,
        )
        if not result.duplicate:
            self._deps.wake_relay()
        log.info(
            "conversation accepted",
            extra={"turns": len(conversation.turns), "duplicate": result.duplicate},
        )
        return ingest_pb2.EndConversationResponse(
            conversation_id=result.conversation_id,
            status=_STATUS_TO_PROTO[result.status],
            duplicate=result.duplicate,
            accepted_at=timestamp(result.accepted_at),
        )

    async def GetConversationStatus(
        self, request: ingest_pb2.GetConversationStatusRequest, context: Context
    ) -> ingest_pb2.GetConversationStatusResponse:
        _bind_id(request.conversation_id)
        state = await self._run(context, handlers.get_status, request.conversation_id)
        response = ingest_pb2.GetConversationStatusResponse(
            conversation_id=state.conversation_id,
            status=_STATUS_TO_PROTO[state.status],
            attempts=state.attempts,
            last_error=state.last_error,
            updated_at=timestamp(state.updated_at),
        )
        if state.status == Status.PROCESSED:
            response.score_change = state.score_change or 0.0
            if state.analysis is not None:
                response.analysis.CopyFrom(analysis_to_proto(state.analysis))
        return response


class IngestInternalServicer(_Base, ingest_internal_pb2_grpc.IngestInternalServiceServicer):
    async def ClaimConversation(
        self, request: ingest_internal_pb2.ClaimConversationRequest, context: Context
    ) -> ingest_internal_pb2.ClaimConversationResponse:
        _bind_id(request.conversation_id)
        result = await self._run(
            context,
            handlers.claim_conversation,
            request.conversation_id,
            int(request.lease_seconds),
            now=_now(),
        )
        response = ingest_internal_pb2.ClaimConversationResponse(
            claimed=result.claimed, status=_STATUS_TO_PROTO[result.status], attempts=result.attempts
        )
        if result.conversation is not None:
            normalized_to_proto(result.conversation, response.conversation)
        log.info("conversation claimed", extra={"claimed": result.claimed,
                                                "attempts": result.attempts})
        return response

    async def CompleteConversation(
        self, request: ingest_internal_pb2.CompleteConversationRequest, context: Context
    ) -> ingest_internal_pb2.CompleteConversationResponse:
        _bind_id(request.conversation_id)
        outcome = _STATUS_FROM_PROTO.get(request.status)
        if outcome is None:
            await abort_invalid_argument(context, [("status", "must be PROCESSED or SKIPPED")])
        analysis = analysis_to_domain(request.analysis) if request.HasField("analysis") else None
        status = await self._run(
            context,
            handlers.complete_conversation,
            request.conversation_id,
            outcome,
            float(request.score_change),
            analysis,
            now=_now(),
            on_processed=_observe_accept_to_processed,
        )
        log.info("conversation completed", extra={"status": status.value})
        return ingest_internal_pb2.CompleteConversationResponse(status=_STATUS_TO_PROTO[status])

    async def FailConversation(
        self, request: ingest_internal_pb2.FailConversationRequest, context: Context
    ) -> ingest_internal_pb2.FailConversationResponse:
        _bind_id(request.conversation_id)
        status, attempts = await self._run(
            context,
            handlers.fail_conversation,
            request.conversation_id,
            request.error,
            request.dead_lettered,
            now=_now(),
        )
        log.info(
            "conversation attempt failed",
            extra={"status": status.value, "attempts": attempts,
                   "dead_lettered": request.dead_lettered},
        )
        return ingest_internal_pb2.FailConversationResponse(
            status=_STATUS_TO_PROTO[status], attempts=attempts
        )

    async def RequeueConversation(
        self, request: ingest_internal_pb2.RequeueConversationRequest, context: Context
    ) -> ingest_internal_pb2.RequeueConversationResponse:
        _bind_id(request.conversation_id)
        result = await self._run(
            context,
            handlers.requeue_conversation,
            request.conversation_id,
            request.reason,
            now=_now(),
        )
        if result.requeued:
            self._deps.wake_relay()
        log.info(
            "conversation requeue asked",
            extra={"requeued": result.requeued, "previous_status": result.previous_status.value,
                   "status": result.status.value, "attempts": result.attempts},
        )
        return ingest_internal_pb2.RequeueConversationResponse(
            requeued=result.requeued,
            previous_status=_STATUS_TO_PROTO[result.previous_status],
            status=_STATUS_TO_PROTO[result.status],
            attempts=result.attempts,
            detail=result.detail,
        )

    async def DeleteUserData(
        self, request: ingest_internal_pb2.DeleteUserDataRequest, context: Context
    ) -> ingest_internal_pb2.DeleteUserDataResponse:
        result = await self._run(context, handlers.delete_user_data, request.user_id, now=_now())
        log.info(
            "user data deleted",
            extra={
                "user_id": request.user_id,
                "erased_conversations": len(result.erased_conversation_hashes),
                **{f"deleted_{table}": count for table, count in result.deleted.items()},
            },
        )
        return ingest_internal_pb2.DeleteUserDataResponse(
            user_id=request.user_id,
            deleted=result.deleted,
            erased_conversation_hashes=result.erased_conversation_hashes,
        )
