"""AnalyzerService.AnalyzeConversation through the real stub, with real tokens."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from analyzer.domain.local_analysis import preview
from analyzer.domain.model import ConversationMetadata, Emotion
from spring.analyzer.v1 import analyzer_pb2, analyzer_pb2_grpc
from spring.ingest.v1 import ingest_pb2
from tests.support.auth import INTERNAL_SCOPES, ROBOT_SCOPES, bearer
from tests.unit.analyzer.dialogues import DIALOGUES, Dialogue

INTERNAL = bearer(INTERNAL_SCOPES)


def request_for(dialogue: Dialogue, **metadata: Any) -> analyzer_pb2.AnalyzeConversationRequest:
    return analyzer_pb2.AnalyzeConversationRequest(
        user_id="user-1",
        bot_id="bot-1",
        turns=[ingest_pb2.Turn(role=t.role.value, content=t.content) for t in dialogue.turns],
        metadata=ingest_pb2.ConversationMetadata(**metadata) if metadata else None,
    )


@pytest.mark.parametrize("dialogue", DIALOGUES, ids=lambda d: d.name)
async def test_result_matches_the_local_analysis(
    analyzer_channel: grpc.aio.Channel, dialogue: Dialogue
) -> None:
    stub = analyzer_pb2_grpc.AnalyzerServiceStub(analyzer_channel)
    response = await stub.AnalyzeConversation(request_for(dialogue), metadata=INTERNAL, timeout=5)
    expected, _ = preview(dialogue.turns, ConversationMetadata())
    assert response.analysis == ingest_pb2.Analysis(
        total_turns=len(dialogue.turns),
        user_initiated_questions=dialogue.questions,
        session_emotion=ingest_pb2.Emotion.Value(f"EMOTION_{dialogue.emotion.name}"),
        new_memories_count=len(dialogue.facts),
        source="local",
    )
    assert response.analysis.total_turns == expected.total_turns


async def test_complete_metadata_is_used(analyzer_channel: grpc.aio.Channel) -> None:
    stub = analyzer_pb2_grpc.AnalyzerServiceStub(analyzer_channel)
    response = await stub.AnalyzeConversation(
        request_for(DIALOGUES[0], user_initiated_questions=7,
                    session_emotion=ingest_pb2.EMOTION_SAD),
        metadata=INTERNAL,
        timeout=5,
    )  # fmt: skip
    assert response.analysis.source == "metadata"
    assert response.analysis.user_initiated_questions == 7
    assert response.analysis.session_emotion == ingest_pb2.EMOTION_SAD
    assert Emotion.SAD.value == ingest_pb2.EMOTION_SAD


async def test_raw_turns_are_normalized_before_counting(analyzer_channel: grpc.aio.Channel) -> None:
    stub = analyzer_pb2_grpc.AnalyzerServiceStub(analyzer_channel)
    response = await stub.AnalyzeConversation(
        analyzer_pb2.AnalyzeConversationRequest(
            turns=[
                ingest_pb2.Turn(role="robot", content="Hi! What is your name?"),
                ingest_pb2.Turn(role="user", content="   "),
                ingest_pb2.Turn(role="user", content="My name is An."),
                ingest_pb2.Turn(role="user", content="Why is grass green?"),
            ]
        ),
        metadata=INTERNAL,
        timeout=5,
    )
    assert response.analysis.total_turns == 2
    assert response.analysis.user_initiated_questions == 1
    assert response.analysis.new_memories_count == 1


async def test_an_unknown_role_is_a_field_violation(analyzer_channel: grpc.aio.Channel) -> None:
    stub = analyzer_pb2_grpc.AnalyzerServiceStub(analyzer_channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.AnalyzeConversation(
            analyzer_pb2.AnalyzeConversationRequest(
                turns=[ingest_pb2.Turn(role="user", content="hi"),
                       ingest_pb2.Turn(role="narrator", content="...")]
            ),
            metadata=INTERNAL,
            timeout=5,
        )  # fmt: skip
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(info.value)  # type: ignore[arg-type]
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    status.details[0].Unpack(bad_request)
    assert [v.field for v in bad_request.field_violations] == ["turns[1].role"]


async def test_no_turns_is_invalid(analyzer_channel: grpc.aio.Channel) -> None:
    stub = analyzer_pb2_grpc.AnalyzerServiceStub(analyzer_channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.AnalyzeConversation(
            analyzer_pb2.AnalyzeConversationRequest(), metadata=INTERNAL, timeout=5
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_no_token_is_unauthenticated(analyzer_channel: grpc.aio.Channel) -> None:
    stub = analyzer_pb2_grpc.AnalyzerServiceStub(analyzer_channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.AnalyzeConversation(request_for(DIALOGUES[0]), timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_token_signed_with_another_secret_is_unauthenticated(
    analyzer_channel: grpc.aio.Channel,
) -> None:
    stub = analyzer_pb2_grpc.AnalyzerServiceStub(analyzer_channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.AnalyzeConversation(
            request_for(DIALOGUES[0]),
            metadata=bearer(INTERNAL_SCOPES, secret="another-secret-0123456789-abcdefghij"),
            timeout=5,
        )
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_robot_token_is_permission_denied(analyzer_channel: grpc.aio.Channel) -> None:
    stub = analyzer_pb2_grpc.AnalyzerServiceStub(analyzer_channel)
    for scopes in (["ingest:write"], ROBOT_SCOPES):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.AnalyzeConversation(
                request_for(DIALOGUES[0]), metadata=bearer(scopes), timeout=5
            )
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_health_needs_no_token(analyzer_channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(analyzer_channel)
    for service in ("", "spring.analyzer.v1.AnalyzerService"):
        response = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert response.status == health_pb2.HealthCheckResponse.SERVING
