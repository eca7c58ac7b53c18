"""Builders for EndConversationRequest and the contract's score formula, for tests."""

from __future__ import annotations

import time

import grpc

from spring.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from tests.support.auth import ROBOT_SCOPES, bearer
from tests.support.env import new_id

E = ingest_pb2
# MISSION.md: interesting +15, boring -15; the others are this project's configurable defaults.
EMOTION_POINTS = {
    E.EMOTION_UNSPECIFIED: 0.0,
    E.EMOTION_INTERESTING: 15.0,
    E.EMOTION_HAPPY: 10.0,
    E.EMOTION_NEUTRAL: 0.0,
    E.EMOTION_SAD: -5.0,
    E.EMOTION_ANGRY: -10.0,
    E.EMOTION_BORING: -15.0,
}
TERMINAL = {
    E.CONVERSATION_STATUS_PROCESSED,
    E.CONVERSATION_STATUS_SKIPPED,
    E.CONVERSATION_STATUS_FAILED,
}


def expected_score_change(analysis: ingest_pb2.Analysis) -> float:
    """CONTRACT/MISSION formula, written independently of the service code."""
    return (
        analysis.total_turns * 0.5
        + analysis.user_initiated_questions * 3
        + EMOTION_POINTS[analysis.session_emotion]
        + analysis.new_memories_count * 5
    )


def conversation(
    *,
    user_id: str | None = None,
    turns: list[tuple[str, str]] | None = None,
    questions: int | None = None,
    emotion: int = E.EMOTION_UNSPECIFIED,
    agent_tag: str = "science",
    bot_id: str = "bot-explorer",
    bot_type: str = "",
) -> ingest_pb2.EndConversationRequest:
    request = ingest_pb2.EndConversationRequest(
        conversation_id=new_id("conv"),
        user_id=user_id or new_id("user"),
        bot_id=bot_id,
        bot_type=bot_type,
        agent_tag=agent_tag,
        conversation_log=[
            ingest_pb2.Turn(role=role, content=content)
            for role, content in (
                turns
                or [
                    ("user", "Hello robot, the sky is blue today."),
                    ("assistant", "Hello! It is a lovely day."),
                    ("user", "We went to the park with grandma."),
                    ("assistant", "That sounds lovely."),
                ]
            )
        ],
    )
    if questions is not None:
        request.metadata.user_initiated_questions = questions
    if emotion:
        request.metadata.session_emotion = emotion  # type: ignore[assignment]
    return request


def wait_terminal(
    stub: ingest_pb2_grpc.IngestServiceStub, conversation_id: str, timeout_s: float = 60
) -> ingest_pb2.GetConversationStatusResponse:
    deadline = time.monotonic() + timeout_s
    request = ingest_pb2.GetConversationStatusRequest(conversation_id=conversation_id)
    while True:
        reply = stub.GetConversationStatus(request, metadata=bearer(ROBOT_SCOPES), timeout=5)
        if reply.status in TERMINAL or time.monotonic() > deadline:
            return reply
        time.sleep(0.1)


def rpc_error(call: object) -> grpc.RpcError:
    assert isinstance(call, grpc.RpcError)
    return call
