"""FriendshipInternalService over gRPC (the FriendshipPort)."""

from __future__ import annotations

import grpc

from analyzer.adapters.grpc_calls import Caller
from analyzer.adapters.proto_mapping import analysis_to_proto
from analyzer.domain.model import Analysis, Conversation
from servicekit.auth import ServiceTokenSource
from spring.friendship.v1 import friendship_internal_pb2, friendship_internal_pb2_grpc


class GrpcFriendshipClient:
    def __init__(
        self, channel: grpc.aio.Channel, tokens: ServiceTokenSource, timeout_s: float
    ) -> None:
        self._stub = friendship_internal_pb2_grpc.FriendshipInternalServiceStub(channel)
        self._call = Caller("friendship", tokens, timeout_s)

    async def apply(self, conversation: Conversation, analysis: Analysis) -> float:
        response: friendship_internal_pb2.ApplyConversationResponse = await self._call(
            "ApplyConversation",
            self._stub.ApplyConversation,
            friendship_internal_pb2.ApplyConversationRequest(
                conversation_id=conversation.conversation_id,
                user_id=conversation.user_id,
                bot_id=conversation.bot_id,
                agent_tag=conversation.agent_tag,
                analysis=analysis_to_proto(analysis),
            ),
        )
        return response.score_change
