"""`friendship-server`: FriendshipService (public) and FriendshipInternalService over gRPC."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn, TypeAlias, TypeVar, cast

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import ValidationError

from friendship.adapters.events import LEVEL_TO_PROTO
from friendship.bootstrap import Deps, build
from friendship.config import Settings
from friendship.domain.friendship import ApplyCommand, LedgerEntry
from friendship.domain.history import parse_history_request
from friendship.domain.topics import TopicState
from friendship.domain.validation import InvalidRequest, parse_apply
from friendship.handlers import ApplyResult, ConversationErased, HistoryPage, LevelView
from servicekit.auth import TokenVerifier
from servicekit.db import DatabaseUnavailable
from servicekit.errors import abort_invalid_argument
from servicekit.logging import configure_logging, conversation_id_var
from servicekit.metrics import start_metrics_server
from servicekit.server import GrpcServer, wait_for_termination_signal
from spring.friendship.v1 import (
    friendship_internal_pb2,
    friendship_internal_pb2_grpc,
    friendship_pb2,
    friendship_pb2_grpc,
)
from spring.ingest.v1 import ingest_pb2

log = logging.getLogger("friendship.server")
T = TypeVar("T")

PUBLIC_SERVICE = "spring.friendship.v1.FriendshipService"
INTERNAL_SERVICE = "spring.friendship.v1.FriendshipInternalService"
SCOPES_BY_METHOD = {
    f"/{PUBLIC_SERVICE}/GetLevel": "friendship:read",
    f"/{PUBLIC_SERVICE}/GetTopicMetrics": "friendship:read",
    f"/{PUBLIC_SERVICE}/GetScoreHistory": "friendship:read",
    f"/{INTERNAL_SERVICE}/ApplyConversation": "internal",
    f"/{INTERNAL_SERVICE}/DeleteUserData": "internal",
}

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"

_LEVEL_TO_PROTO = LEVEL_TO_PROTO


# --- proto <-> domain ---------------------------------------------------------------------------


def _timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def apply_to_domain(request: friendship_internal_pb2.ApplyConversationRequest) -> ApplyCommand:
    """Raises InvalidRequest with every field violation."""
    analysis = request.analysis
    return parse_apply(
        conversation_id=request.conversation_id,
        user_id=request.user_id,
        bot_id=request.bot_id,
        agent_tag=request.agent_tag,
        total_turns=analysis.total_turns,
        user_initiated_questions=analysis.user_initiated_questions,
        emotion=int(analysis.session_emotion),
        new_memories_count=analysis.new_memories_count,
        source=analysis.source,
    )


def level_to_proto(view: LevelView) -> friendship_pb2.GetLevelResponse:
    return friendship_pb2.GetLevelResponse(
        user_id=view.user_id,
        level=_LEVEL_TO_PROTO[view.level],
        score=view.score,
        next_level_score=view.next_level_score,
        conversations=view.conversations,
        updated_at=_timestamp(view.updated_at),
    )


def topics_to_proto(
    user_id: str, topics: list[TopicState]
) -> friendship_pb2.GetTopicMetricsResponse:
    return friendship_pb2.GetTopicMetricsResponse(
        user_id=user_id,
        topics=[
            friendship_pb2.TopicMetric(
                topic_id=topic.topic_id,
                score=topic.score,
                turns=topic.turns,
                agents_used=list(topic.agents_used),
                updated_at=_timestamp(topic.updated_at),
            )
            for topic in topics
        ],
    )


def history_entry_to_proto(entry: LedgerEntry) -> friendship_pb2.ScoreHistoryEntry:
    analysis = entry.analysis
    return friendship_pb2.ScoreHistoryEntry(
        conversation_id=entry.conversation_id,
        bot_id=entry.bot_id,
        agent_tag=entry.agent_tag,
        breakdown=friendship_pb2.ScoreBreakdown(
            base=entry.breakdown.base,
            engagement=entry.breakdown.engagement,
            emotion=entry.breakdown.emotion,
            memory=entry.breakdown.memory,
            score_change=entry.breakdown.total,
        ),
        analysis=ingest_pb2.Analysis(
            total_turns=analysis.total_turns,
            user_initiated_questions=analysis.user_initiated_questions,
            session_emotion=cast(ingest_pb2.Emotion.ValueType, int(analysis.emotion)),
            new_memories_count=analysis.new_memories_count,
            source=analysis.source,
        ),
        rule_version=entry.rule_version,
        applied_delta=entry.applied_delta,
        score_before=entry.score_before,
        score_after=entry.score_after,
        level_before=_LEVEL_TO_PROTO[entry.level_before],
        level_after=_LEVEL_TO_PROTO[entry.level_after],
        applied_at=_timestamp(entry.applied_at),
    )


def history_to_proto(page: HistoryPage) -> friendship_pb2.GetScoreHistoryResponse:
    return friendship_pb2.GetScoreHistoryResponse(
        user_id=page.user_id,
        entries=[history_entry_to_proto(entry) for entry in page.entries],
        next_page_token=page.next_page_token,
    )


def apply_result_to_proto(result: ApplyResult) -> friendship_internal_pb2.ApplyConversationResponse:
    return friendship_internal_pb2.ApplyConversationResponse(
        applied=result.applied,
        score_change=result.score_change,
        score=result.score,
        level=_LEVEL_TO_PROTO[result.level],
    )


# --- servicers --------------------------------------------------------------------------------


async def _unavailable(context: Context) -> NoReturn:
    await context.abort(grpc.StatusCode.UNAVAILABLE, "database unavailable")
    raise AssertionError("unreachable")


class _Calls:
    """Runs a blocking handler through the BlockingRunner and maps domain errors to codes."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    async def run(self, context: Context, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await self._deps.runner(fn, *args)
        except InvalidRequest as exc:
            await abort_invalid_argument(
                context, [(v.field, v.description) for v in exc.violations]
            )
        except ConversationErased:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "conversation erased")
            raise AssertionError("unreachable") from None
        except DatabaseUnavailable as exc:
            log.warning("database unavailable", extra={"error": str(exc)})
            await _unavailable(context)


class FriendshipServicer(friendship_pb2_grpc.FriendshipServiceServicer):
    def __init__(self, deps: Deps) -> None:
        self._calls = _Calls(deps)
        self._handlers = deps.handlers
        self._level_cache = deps.level_cache

    async def GetLevel(
        self, request: friendship_pb2.GetLevelRequest, context: Context
    ) -> friendship_pb2.GetLevelResponse:
        # A hit answers here, on the event loop: no thread hop, no database.
        cache = self._level_cache
        view = cache.get(request.user_id)
        if view is None:
            ticket = cache.ticket(request.user_id)  # before the read (see level_cache.py)
            try:
                view = await self._calls.run(context, self._handlers.get_level, request.user_id)
                cache.store(ticket, view)
            finally:
                cache.release(ticket)
        return level_to_proto(view)

    async def GetTopicMetrics(
        self, request: friendship_pb2.GetTopicMetricsRequest, context: Context
    ) -> friendship_pb2.GetTopicMetricsResponse:
        topics = await self._calls.run(context, self._handlers.get_topic_metrics, request.user_id)
        return topics_to_proto(request.user_id, topics)

    async def GetScoreHistory(
        self, request: friendship_pb2.GetScoreHistoryRequest, context: Context
    ) -> friendship_pb2.GetScoreHistoryResponse:
        try:
            query = parse_history_request(request.user_id, request.page_size, request.page_token)
        except InvalidRequest as exc:
            await abort_invalid_argument(
                context, [(v.field, v.description) for v in exc.violations]
            )
        page = await self._calls.run(context, self._handlers.get_score_history, query)
        return history_to_proto(page)


class FriendshipInternalServicer(friendship_internal_pb2_grpc.FriendshipInternalServiceServicer):
    def __init__(self, deps: Deps) -> None:
        self._calls = _Calls(deps)
        self._handlers = deps.handlers

    async def ApplyConversation(
        self, request: friendship_internal_pb2.ApplyConversationRequest, context: Context
    ) -> friendship_internal_pb2.ApplyConversationResponse:
        try:
            command = apply_to_domain(request)
        except InvalidRequest as exc:
            await abort_invalid_argument(
                context, [(v.field, v.description) for v in exc.violations]
            )
        token = conversation_id_var.set(command.conversation_id)
        try:
            result = await self._calls.run(context, self._handlers.apply_conversation, command)
            log.info(
                "conversation applied" if result.applied else "conversation already applied",
                extra={
                    "user_id": command.user_id,
                    "applied": result.applied,
                    "score_change": result.score_change,
                    "level": result.level.value,
                },
            )
            return apply_result_to_proto(result)
        finally:
            conversation_id_var.reset(token)

    async def DeleteUserData(
        self, request: friendship_internal_pb2.DeleteUserDataRequest, context: Context
    ) -> friendship_internal_pb2.DeleteUserDataResponse:
        counts = await self._calls.run(
            context,
            self._handlers.delete_user_data,
            request.user_id,
            list(request.erased_conversation_hashes),
        )
        log.info(
            "user data deleted",
            extra={"user_id": request.user_id, "rows": sum(counts.values()), **{
                f"deleted_{table}": count for table, count in counts.items()
            }},
        )
        return friendship_internal_pb2.DeleteUserDataResponse(
            user_id=request.user_id, deleted=counts
        )


# --- server -----------------------------------------------------------------------------------


@dataclass
class RunningServer:
    port: int
    grpc: GrpcServer
    deps: Deps
    grace_s: float

    async def stop(self, grace_s: float | None = None) -> None:
        """gRPC first (in-flight calls finish), then the relay and the cache's listener,
        then the pools."""
        try:
            await self.grpc.stop(self.grace_s if grace_s is None else grace_s)
        finally:
            try:
                await self.deps.stop_relay()
                await self.deps.stop_level_listener()
            finally:
                await asyncio.to_thread(self.deps.close)


async def start_server(settings: Settings, *, check_database: bool = True) -> RunningServer:
    """Build everything and listen on grpc_host:grpc_port (0 = any free port).

    check_database=False skips the start-up `SELECT 1` (used only to test how a server answers
    when its database goes away); raises servicekit DatabaseUnavailable otherwise.
    """
    deps = build(settings)
    try:
        if check_database:
            await deps.check_database()
            rules, created = await deps.runner(deps.handlers.ensure_rules)
            if created:
                log.info("first rule set stored from the environment",
                         extra={"rule_version": rules.version})
            elif not rules.same_rules(settings.initial_rules()):
                log.info(
                    "a stored rule set is active; score settings in the environment are not used",
                    extra={"rule_version": rules.version},
                )
        verifier = TokenVerifier(
            secret=settings.auth_jwt_secret, public_key=settings.auth_jwt_public_key
        )
        server = GrpcServer(
            service_names=[PUBLIC_SERVICE, INTERNAL_SERVICE],
            scopes_by_method=SCOPES_BY_METHOD,
            verifier=verifier,
            max_message_bytes=settings.max_message_bytes,
            malloc_trim_interval_s=settings.malloc_trim_interval_s,
        )
        friendship_pb2_grpc.add_FriendshipServiceServicer_to_server(
            FriendshipServicer(deps), server.server
        )
        friendship_internal_pb2_grpc.add_FriendshipInternalServiceServicer_to_server(
            FriendshipInternalServicer(deps), server.server
        )
        port = await server.start(f"{settings.grpc_host}:{settings.grpc_port}")
        deps.start_relay()
        deps.start_level_listener()
    except BaseException:
        await deps.stop_relay()
        await deps.stop_level_listener()
        deps.close()
        raise
    return RunningServer(port=port, grpc=server, deps=deps, grace_s=settings.shutdown_grace_s)


async def _serve(settings: Settings) -> int:
    try:
        running = await start_server(settings)
    except DatabaseUnavailable as exc:
        log.error("database not reachable at start-up", extra={"error": str(exc)})
        return 1
    try:
        start_metrics_server(settings.metrics_port)
        log.info(
            "listening",
            extra={"port": running.port, "host": settings.grpc_host,
                   "metrics_port": settings.metrics_port},
        )
        await wait_for_termination_signal()
    finally:
        await running.stop()
        log.info("stopped")
    return 0


def main() -> None:
    configure_logging("friendship")
    try:
        settings = Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        log.error("invalid configuration", extra={"problems": problems})
        sys.exit(2)
    configure_logging("friendship", settings.log_level)
    sys.exit(asyncio.run(_serve(settings)))


if __name__ == "__main__":
    main()
