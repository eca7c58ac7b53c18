"""FriendshipService and FriendshipInternalService through real stubs, tokens and PostgreSQL."""

from __future__ import annotations

from typing import cast

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from spring.friendship.v1 import (
    friendship_internal_pb2,
    friendship_internal_pb2_grpc,
    friendship_pb2,
    friendship_pb2_grpc,
)
from spring.ingest.v1 import ingest_pb2
from tests.support.auth import INTERNAL_SCOPES, READER_SCOPES, bearer
from tests.support.env import new_id

READER = bearer(READER_SCOPES)
INTERNAL = bearer(INTERNAL_SCOPES)


def public(channel: grpc.aio.Channel) -> friendship_pb2_grpc.FriendshipServiceAsyncStub:
    return friendship_pb2_grpc.FriendshipServiceStub(channel)


def internal(
    channel: grpc.aio.Channel,
) -> friendship_internal_pb2_grpc.FriendshipInternalServiceAsyncStub:
    return friendship_internal_pb2_grpc.FriendshipInternalServiceStub(channel)


def apply_request(
    user_id: str,
    *,
    conversation_id: str | None = None,
    bot_id: str = "bot-a",
    agent_tag: str = "",
    turns: int = 0,
    questions: int = 0,
    emotion: ingest_pb2.Emotion.ValueType = ingest_pb2.EMOTION_NEUTRAL,
    memories: int = 0,
) -> friendship_internal_pb2.ApplyConversationRequest:
    return friendship_internal_pb2.ApplyConversationRequest(
        conversation_id=conversation_id or new_id("conv"),
        user_id=user_id,
        bot_id=bot_id,
        agent_tag=agent_tag,
        analysis=ingest_pb2.Analysis(
            total_turns=turns,
            user_initiated_questions=questions,
            session_emotion=emotion,
            new_memories_count=memories,
            source="metadata",
        ),
    )


def field_violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    # AioRpcError carries the same code() and trailing_metadata() a grpc.Call has.
    status = rpc_status.from_call(cast(grpc.Call, error))
    assert status is not None, "no grpc-status-details-bin"
    found: dict[str, str] = {}
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            found.update({v.field: v.description for v in bad_request.field_violations})
    return found


async def test_unknown_user_is_a_stranger(channel: grpc.aio.Channel) -> None:
    user = new_id("user")
    reply = await public(channel).GetLevel(
        friendship_pb2.GetLevelRequest(user_id=user), metadata=READER
    )
    assert reply.user_id == user
    assert reply.level == friendship_pb2.FRIENDSHIP_LEVEL_PHASE1_STRANGER
    assert reply.score == 0
    assert reply.next_level_score == 100
    assert reply.conversations == 0
    assert not reply.HasField("updated_at")
    topics = await public(channel).GetTopicMetrics(
        friendship_pb2.GetTopicMetricsRequest(user_id=user), metadata=READER
    )
    assert topics.user_id == user
    assert list(topics.topics) == []


async def test_apply_then_read_level_and_topics(channel: grpc.aio.Channel) -> None:
    user = new_id("user")
    # 100 turns * 0.5 + 10 questions * 3 + interesting 15 + 2 memories * 5 = 105
    first = await internal(channel).ApplyConversation(
        apply_request(user, agent_tag="math", bot_id="bot-z", turns=100, questions=10,
                      emotion=ingest_pb2.EMOTION_INTERESTING, memories=2),
        metadata=INTERNAL,
    )
    assert first.applied is True
    assert first.score_change == 105
    assert first.score == 105
    assert first.level == friendship_pb2.FRIENDSHIP_LEVEL_PHASE2_ACQUAINTANCE
    # 4 turns * 0.5 - 15 (boring) = -13
    second = await internal(channel).ApplyConversation(
        apply_request(user, agent_tag="art", bot_id="bot-b", turns=4,
                      emotion=ingest_pb2.EMOTION_BORING),
        metadata=INTERNAL,
    )
    assert (second.applied, second.score_change, second.score) == (True, -13, 92)
    assert second.level == friendship_pb2.FRIENDSHIP_LEVEL_PHASE1_STRANGER
    third = await internal(channel).ApplyConversation(
        apply_request(user, agent_tag="math", bot_id="bot-a", turns=6), metadata=INTERNAL
    )
    assert (third.score_change, third.score) == (3, 95)

    level = await public(channel).GetLevel(
        friendship_pb2.GetLevelRequest(user_id=user), metadata=READER
    )
    assert level.level == friendship_pb2.FRIENDSHIP_LEVEL_PHASE1_STRANGER
    assert level.score == 95
    assert level.next_level_score == 100
    assert level.conversations == 3
    assert level.HasField("updated_at")

    reply = await public(channel).GetTopicMetrics(
        friendship_pb2.GetTopicMetricsRequest(user_id=user), metadata=READER
    )
    topics = [(t.topic_id, t.score, t.turns, list(t.agents_used)) for t in reply.topics]
    assert topics == [
        ("art", 0, 4, ["bot-b"]),  # -13 on a fresh topic floors at 0
        ("math", 108, 106, ["bot-a", "bot-z"]),
    ]
    assert all(t.HasField("updated_at") for t in reply.topics)


async def test_repeat_is_not_applied_again(channel: grpc.aio.Channel) -> None:
    user = new_id("user")
    request = apply_request(user, agent_tag="math", turns=40, questions=2)  # 26
    first = await internal(channel).ApplyConversation(request, metadata=INTERNAL)
    again = await internal(channel).ApplyConversation(request, metadata=INTERNAL)
    assert (first.applied, again.applied) == (True, False)
    assert again.score_change == first.score_change == 26
    assert again.score == first.score == 26
    assert again.level == first.level
    level = await public(channel).GetLevel(
        friendship_pb2.GetLevelRequest(user_id=user), metadata=READER
    )
    assert (level.score, level.conversations) == (26, 1)
    topics = await public(channel).GetTopicMetrics(
        friendship_pb2.GetTopicMetricsRequest(user_id=user), metadata=READER
    )
    assert [(t.score, t.turns) for t in topics.topics] == [(26, 40)]


async def test_missing_token_is_unauthenticated(channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await public(channel).GetLevel(friendship_pb2.GetLevelRequest(user_id="user-1"))
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await internal(channel).ApplyConversation(apply_request("user-1"))
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_bad_token_is_unauthenticated(channel: grpc.aio.Channel) -> None:
    forged = bearer(READER_SCOPES, secret="not-the-server-secret-0123456789-abcdef")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await public(channel).GetLevel(
            friendship_pb2.GetLevelRequest(user_id="user-1"), metadata=forged
        )
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_reader_token_cannot_apply(channel: grpc.aio.Channel) -> None:
    user = new_id("user")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await internal(channel).ApplyConversation(apply_request(user, turns=10), metadata=READER)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    level = await public(channel).GetLevel(
        friendship_pb2.GetLevelRequest(user_id=user), metadata=READER
    )
    assert level.conversations == 0


async def test_internal_token_cannot_read(channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await public(channel).GetLevel(
            friendship_pb2.GetLevelRequest(user_id="user-1"), metadata=INTERNAL
        )
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize("user_id", ["", "has space", "x" * 129])
async def test_bad_user_id_is_invalid_argument(channel: grpc.aio.Channel, user_id: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await public(channel).GetLevel(
            friendship_pb2.GetLevelRequest(user_id=user_id), metadata=READER
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(info.value)) == {"user_id"}

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await public(channel).GetTopicMetrics(
            friendship_pb2.GetTopicMetricsRequest(user_id=user_id), metadata=READER
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(info.value)) == {"user_id"}


async def test_invalid_apply_lists_every_violation(channel: grpc.aio.Channel) -> None:
    unknown_emotion = ingest_pb2.Emotion.ValueType(42)
    request = apply_request(
        "bad user", bot_id="", agent_tag="bad tag", turns=-1, emotion=unknown_emotion
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await internal(channel).ApplyConversation(request, metadata=INTERNAL)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(info.value)) == {
        "user_id", "bot_id", "agent_tag", "analysis.total_turns", "analysis.session_emotion"
    }


async def test_health_needs_no_token(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "spring.friendship.v1.FriendshipService"):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
