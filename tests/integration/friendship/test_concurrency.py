"""Concurrent conversations of one user through the real gRPC server: no lost update."""

from __future__ import annotations

import asyncio
import itertools

import grpc
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from friendship.adapters.tables import ledger
from spring.friendship.v1 import (
    friendship_internal_pb2,
    friendship_internal_pb2_grpc,
    friendship_pb2,
    friendship_pb2_grpc,
)
from spring.ingest.v1 import ingest_pb2
from tests.support.auth import INTERNAL_SCOPES, READER_SCOPES, bearer
from tests.support.env import new_id

pytestmark = pytest.mark.integration

CONVERSATIONS = 100


def request(
    user: str, conversation_id: str, index: int
) -> friendship_internal_pb2.ApplyConversationRequest:
    return friendship_internal_pb2.ApplyConversationRequest(
        conversation_id=conversation_id,
        user_id=user,
        bot_id=f"bot-{index % 3}",
        agent_tag=("math", "art")[index % 2],
        analysis=ingest_pb2.Analysis(
            total_turns=index % 7,  # 0..6 turns: 0..3 points
            user_initiated_questions=index % 2,
            session_emotion=ingest_pb2.EMOTION_HAPPY,
            new_memories_count=0,
            source="local",
        ),
    )


def expected_change(index: int) -> float:
    return (index % 7) * 0.5 + (index % 2) * 3 + 10


async def test_hundred_concurrent_conversations_add_up(
    channel: grpc.aio.Channel, engine: Engine
) -> None:
    stub = friendship_internal_pb2_grpc.FriendshipInternalServiceStub(channel)
    internal = bearer(INTERNAL_SCOPES)
    user = new_id("user")
    ids = [new_id("conv") for _ in range(CONVERSATIONS)]

    replies = await asyncio.gather(
        *(stub.ApplyConversation(request(user, cid, i), metadata=internal, timeout=30)
          for i, cid in enumerate(ids))
    )
    assert all(reply.applied for reply in replies)
    total = sum(expected_change(i) for i in range(CONVERSATIONS))
    assert max(reply.score for reply in replies) == total

    level = await friendship_pb2_grpc.FriendshipServiceStub(channel).GetLevel(
        friendship_pb2.GetLevelRequest(user_id=user), metadata=bearer(READER_SCOPES)
    )
    assert level.score == total
    assert level.conversations == CONVERSATIONS
    assert level.level == friendship_pb2.FRIENDSHIP_LEVEL_PHASE3_FRIEND

    topics = await friendship_pb2_grpc.FriendshipServiceStub(channel).GetTopicMetrics(
        friendship_pb2.GetTopicMetricsRequest(user_id=user), metadata=bearer(READER_SCOPES)
    )
    by_topic = {t.topic_id: t for t in topics.topics}
    assert [t.topic_id for t in topics.topics] == ["art", "math"]
    for topic_id, parity in (("math", 0), ("art", 1)):
        indexes = [i for i in range(CONVERSATIONS) if i % 2 == parity]
        assert by_topic[topic_id].score == sum(expected_change(i) for i in indexes)
        assert by_topic[topic_id].turns == sum(i % 7 for i in indexes)
        assert list(by_topic[topic_id].agents_used) == ["bot-0", "bot-1", "bot-2"]

    # The ledger is an exact chain: each conversation starts where the previous one ended.
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(ledger.c.score_before, ledger.c.score_after)
            .where(ledger.c.user_id == user)
            .order_by(ledger.c.score_before)
        ).all()
    assert len(rows) == CONVERSATIONS
    assert rows[0].score_before == 0
    assert rows[-1].score_after == total
    for previous, current in itertools.pairwise(rows):
        assert current.score_before == previous.score_after


async def test_same_conversation_sent_concurrently_applies_once(
    channel: grpc.aio.Channel,
) -> None:
    stub = friendship_internal_pb2_grpc.FriendshipInternalServiceStub(channel)
    internal = bearer(INTERNAL_SCOPES)
    user, conversation_id = new_id("user"), new_id("conv")
    replies = await asyncio.gather(
        *(stub.ApplyConversation(request(user, conversation_id, 3), metadata=internal, timeout=30)
          for _ in range(20))
    )
    assert sum(reply.applied for reply in replies) == 1
    assert {reply.score for reply in replies} == {expected_change(3)}
    level = await friendship_pb2_grpc.FriendshipServiceStub(channel).GetLevel(
        friendship_pb2.GetLevelRequest(user_id=user), metadata=bearer(READER_SCOPES)
    )
    assert (level.score, level.conversations) == (expected_change(3), 1)
