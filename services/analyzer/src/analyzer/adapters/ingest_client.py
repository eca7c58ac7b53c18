"""IngestInternalService over gRPC (the IngestPort)."""

from __future__ import annotations

import grpc

from analyzer.adapters.grpc_calls import Caller
from analyzer.adapters.proto_mapping import (
    UnknownRoleFromIngest,
    analysis_to_proto,
    conversation_to_domain,
)
from analyzer.domain.errors import DependencyFailed
from analyzer.domain.model import Analysis
from analyzer.domain.ports import Claim
from servicekit.auth import ServiceTokenSource
from spring.ingest.v1 import ingest_internal_pb2, ingest_internal_pb2_grpc, ingest_pb2


class GrpcIngestClient:
    def __init__(
        self, channel: grpc.aio.Channel, tokens: ServiceTokenSource, timeout_s: float
    ) -> None:
        self._stub = ingest_internal_pb2_grpc.IngestInternalServiceStub(channel)
        self._call = Caller("ingest", tokens, timeout_s)

    async def claim(self, conversation_id: str, lease_s: int) -> Claim:
        response: ingest_internal_pb2.ClaimConversationResponse = await self._call(
            "ClaimConversation",
            self._stub.ClaimConversation,
            ingest_internal_pb2.ClaimConversationRequest(
                conversation_id=conversation_id, lease_seconds=lease_s
            ),
        )
        conversation = None
        if response.claimed and response.HasField("conversation"):
            try:
                conversation = conversation_to_domain(response.conversation)
            except UnknownRoleFromIngest as exc:
                raise DependencyFailed("ingest sent a turn with an unknown role") from exc
        return Claim(
            claimed=response.claimed, attempts=response.attempts, conversation=conversation
        )

    async def complete_processed(
        self, conversation_id: str, score_change: float, analysis: Analysis
    ) -> None:
        await self._call(
            "CompleteConversation",
            self._stub.CompleteConversation,
            ingest_internal_pb2.CompleteConversationRequest(
                conversation_id=conversation_id,
                status=ingest_pb2.CONVERSATION_STATUS_PROCESSED,
                score_change=score_change,
                analysis=analysis_to_proto(analysis),
            ),
        )

    async def complete_skipped(self, conversation_id: str) -> None:
        await self._call(
            "CompleteConversation",
            self._stub.CompleteConversation,
            ingest_internal_pb2.CompleteConversationRequest(
                conversation_id=conversation_id, status=ingest_pb2.CONVERSATION_STATUS_SKIPPED
            ),
        )

    async def fail(self, conversation_id: str, error: str, dead_lettered: bool) -> None:
        await self._call(
            "FailConversation",
            self._stub.FailConversation,
            ingest_internal_pb2.FailConversationRequest(
                conversation_id=conversation_id, error=error, dead_lettered=dead_lettered
            ),
        )
