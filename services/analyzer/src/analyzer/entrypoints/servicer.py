"""AnalyzerService: the analysis of given turns (providers included), nothing stored."""

from __future__ import annotations

import logging
import re
from typing import Any

import grpc

from analyzer.adapters.proto_mapping import (
    analysis_to_proto,
    metadata_to_domain,
    raw_turn_to_domain,
)
from analyzer.analysis import ConversationAnalyzer
from analyzer.domain.errors import DependencyFailed, ProviderFailed
from analyzer.domain.normalization import UnknownRole, normalize_turns
from analyzer.domain.ports import ErasureStore, MemoryApiEraser
from analyzer.handlers import erase_user_data
from servicekit.erasure import is_erasure_hash
from servicekit.errors import abort_invalid_argument
from spring.analyzer.v1 import analyzer_pb2, analyzer_pb2_grpc

SERVICE_NAME = analyzer_pb2.DESCRIPTOR.services_by_name["AnalyzerService"].full_name
SCOPES_BY_METHOD = {
    f"/{SERVICE_NAME}/AnalyzeConversation": "internal",
    f"/{SERVICE_NAME}/DeleteUserData": "internal",
}
MAX_TURNS = 5000
_USER_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
log = logging.getLogger(__name__)


class AnalyzerServicer(analyzer_pb2_grpc.AnalyzerServiceServicer):
    def __init__(
        self,
        analyzer: ConversationAnalyzer,
        erasure: ErasureStore | None = None,
        memory_api: MemoryApiEraser | None = None,
    ) -> None:
        self._analyzer = analyzer
        self._erasure = erasure
        self._memory_api = memory_api

    async def DeleteUserData(
        self,
        request: analyzer_pb2.DeleteUserDataRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> analyzer_pb2.DeleteUserDataResponse:
        violations: list[tuple[str, str]] = []
        if not _USER_ID.match(request.user_id):
            violations.append(("user_id", "required, 1-128 chars of [A-Za-z0-9._:-]"))
        violations += [
            (f"erased_conversation_hashes[{i}]", "must be a sha256 in lower-case hex")
            for i, h in enumerate(request.erased_conversation_hashes)
            if not is_erasure_hash(h)
        ][:10]
        if violations:
            await abort_invalid_argument(context, violations)
        if self._erasure is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "erasure not configured")
        try:
            deleted = await erase_user_data(
                self._erasure,
                self._memory_api,
                request.user_id,
                list(request.erased_conversation_hashes),
            )
        except ProviderFailed as exc:
            await context.abort(
                grpc.StatusCode.UNAVAILABLE, f"memory api delete failed: {exc.outcome}"
            )
        except DependencyFailed as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, exc.reason)
        log.info(
            "user data deleted",
            extra={"user_id": request.user_id,
                   **{f"deleted_{name}": count for name, count in deleted.items()}},
        )
        return analyzer_pb2.DeleteUserDataResponse(user_id=request.user_id, deleted=deleted)

    async def AnalyzeConversation(
        self,
        request: analyzer_pb2.AnalyzeConversationRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> analyzer_pb2.AnalyzeConversationResponse:
        if len(request.turns) > MAX_TURNS:
            await abort_invalid_argument(context, [("turns", f"at most {MAX_TURNS} turns")])
        try:
            turns = normalize_turns(raw_turn_to_domain(t) for t in request.turns)
        except UnknownRole as exc:
            await abort_invalid_argument(
                context, [(f"turns[{exc.index}].role", "must be user or assistant")]
            )
        if not turns:
            await abort_invalid_argument(context, [("turns", "at least one non-empty turn")])
        metadata = metadata_to_domain(request.metadata, request.HasField("metadata"))
        analysis = await self._analyzer.preview(turns, metadata)
        return analyzer_pb2.AnalyzeConversationResponse(analysis=analysis_to_proto(analysis))
