"""AnalyzerService: the analysis of given turns (providers included), nothing stored."""

from __future__ import annotations

from typing import Any

import grpc

from analyzer.adapters.proto_mapping import (
    analysis_to_proto,
    metadata_to_domain,
    raw_turn_to_domain,
)
from analyzer.analysis import ConversationAnalyzer
from analyzer.domain.normalization import UnknownRole, normalize_turns
from servicekit.errors import abort_invalid_argument
from spring.analyzer.v1 import analyzer_pb2, analyzer_pb2_grpc

SERVICE_NAME = analyzer_pb2.DESCRIPTOR.services_by_name["AnalyzerService"].full_name
SCOPES_BY_METHOD = {f"/{SERVICE_NAME}/AnalyzeConversation": "internal"}
MAX_TURNS = 5000


class AnalyzerServicer(analyzer_pb2_grpc.AnalyzerServiceServicer):
    def __init__(self, analyzer: ConversationAnalyzer) -> None:
        self._analyzer = analyzer

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
