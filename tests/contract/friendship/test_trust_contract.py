"""GetScoreHistory and DeleteUserData through real stubs, tokens and PostgreSQL."""

from __future__ import annotations

import grpc
import pytest

from servicekit.erasure import erasure_hash
from spring.friendship.v1 import friendship_internal_pb2, friendship_pb2
from spring.ingest.v1 import ingest_pb2
from tests.contract.friendship.test_friendship_contract import (
    INTERNAL,
    READER,
    apply_request,
    field_violations,
    internal,
    public,
)
from tests.support.auth import ROBOT_SCOPES, bearer
from tests.support.env import new_id

F = friendship_pb2


async def history(
    channel: grpc.aio.Channel, user_id: str, page_size: int = 0, page_token: str = ""
) -> F.GetScoreHistoryResponse:
    return await public(channel).GetScoreHistory(
        F.GetScoreHistoryRequest(user_id=user_id, page_size=page_size, page_token=page_token),
        metadata=READER,
    )


async def test_history_explains_each_conversation(channel: grpc.aio.Channel) -> None:
    user = new_id("user")
    stub = internal(channel)
    first = apply_request(user, turns=10, questions=2, emotion=ingest_pb2.EMOTION_INTERESTING,
                          memories=1, agent_tag="space", bot_id="bot-x")
    await stub.ApplyConversation(first, metadata=INTERNAL)
    await stub.ApplyConversation(apply_request(user, turns=2, emotion=ingest_pb2.EMOTION_BORING),
                                 metadata=INTERNAL)
    reply = await history(channel, user)
    assert reply.user_id == user and reply.next_page_token == ""
    newest, oldest = reply.entries
    assert oldest.conversation_id == first.conversation_id
    assert (oldest.bot_id, oldest.agent_tag, oldest.rule_version) == ("bot-x", "space", "v1")
    b = oldest.breakdown
    assert (b.base, b.engagement, b.emotion, b.memory, b.score_change) == (5, 6, 15, 5, 31)
    assert (oldest.analysis.total_turns, oldest.analysis.user_initiated_questions,
            oldest.analysis.session_emotion, oldest.analysis.new_memories_count,
            oldest.analysis.source) == (10, 2, ingest_pb2.EMOTION_INTERESTING, 1, "metadata")
    assert (oldest.score_before, oldest.score_after, oldest.applied_delta) == (0, 31, 31)
    assert oldest.level_before == oldest.level_after == F.FRIENDSHIP_LEVEL_PHASE1_STRANGER
    assert newest.breakdown.score_change == -14
    assert (newest.score_before, newest.score_after, newest.applied_delta) == (31, 17, -14)
    assert newest.applied_at.ToDatetime() >= oldest.applied_at.ToDatetime()
    level = await public(channel).GetLevel(F.GetLevelRequest(user_id=user), metadata=READER)
    assert sum(e.applied_delta for e in reply.entries) == pytest.approx(level.score)


async def test_history_pages_newest_first_with_an_opaque_token(channel: grpc.aio.Channel) -> None:
    user = new_id("user")
    ids = [new_id("conv") for _ in range(5)]
    for cid in ids:
        await internal(channel).ApplyConversation(
            apply_request(user, conversation_id=cid, turns=2), metadata=INTERNAL
        )
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        reply = await history(channel, user, page_size=2, page_token=token)
        pages += 1
        assert len(reply.entries) <= 2
        seen += [e.conversation_id for e in reply.entries]
        token = reply.next_page_token
        if not token:
            break
    assert seen == list(reversed(ids))
    assert pages == 3
    assert (await history(channel, new_id("user"))).entries == []


async def test_history_validation(channel: grpc.aio.Channel) -> None:
    user = new_id("user")
    for request, fields in [
        (F.GetScoreHistoryRequest(user_id=""), {"user_id"}),
        (F.GetScoreHistoryRequest(user_id=user, page_size=-1), {"page_size"}),
        (F.GetScoreHistoryRequest(user_id=user, page_token="not-a-token"), {"page_token"}),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await public(channel).GetScoreHistory(request, metadata=READER)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert set(field_violations(caught.value)) == fields


async def test_a_token_of_another_user_is_refused(channel: grpc.aio.Channel) -> None:
    user = new_id("user")
    for _ in range(2):
        await internal(channel).ApplyConversation(apply_request(user, turns=1), metadata=INTERNAL)
    token = (await history(channel, user, page_size=1)).next_page_token
    assert token
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await history(channel, new_id("user"), page_size=1, page_token=token)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    ("metadata", "code"),
    [
        ((), grpc.StatusCode.UNAUTHENTICATED),
        (bearer(ROBOT_SCOPES), grpc.StatusCode.PERMISSION_DENIED),
    ],
)
async def test_history_needs_friendship_read(
    channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...], code: grpc.StatusCode
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await public(channel).GetScoreHistory(
            F.GetScoreHistoryRequest(user_id="u1"), metadata=metadata
        )
    assert caught.value.code() == code


async def test_delete_user_data_removes_everything_once(channel: grpc.aio.Channel) -> None:
    user, other = new_id("user"), new_id("user")
    stub = internal(channel)
    for turns in (150, 100):  # 75, then 125: a level crossing (one event)
        await stub.ApplyConversation(apply_request(user, turns=turns, agent_tag="math"),
                                     metadata=INTERNAL)
    await stub.ApplyConversation(apply_request(other, turns=4), metadata=INTERNAL)
    request = friendship_internal_pb2.DeleteUserDataRequest(user_id=user)
    reply = await stub.DeleteUserData(request, metadata=INTERNAL)
    assert reply.user_id == user
    assert dict(reply.deleted) == {"ledger": 2, "friendship_status": 1, "topic_metrics": 1,
                                   "outbox": 1, "rule_results": 0}
    again = await stub.DeleteUserData(request, metadata=INTERNAL)
    assert set(again.deleted.values()) == {0} and len(again.deleted) == 5
    level = await public(channel).GetLevel(F.GetLevelRequest(user_id=user), metadata=READER)
    assert (level.score, level.conversations) == (0, 0)
    assert (await history(channel, user)).entries == []
    topics = await public(channel).GetTopicMetrics(
        F.GetTopicMetricsRequest(user_id=user), metadata=READER
    )
    assert list(topics.topics) == []
    kept = await public(channel).GetLevel(F.GetLevelRequest(user_id=other), metadata=READER)
    assert kept.conversations == 1


async def test_delete_user_data_is_internal_and_validated(channel: grpc.aio.Channel) -> None:
    stub = internal(channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.DeleteUserData(
            friendship_internal_pb2.DeleteUserDataRequest(user_id="u1"), metadata=READER
        )
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.DeleteUserData(
            friendship_internal_pb2.DeleteUserDataRequest(user_id="bad id"), metadata=INTERNAL
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(caught.value)) == {"user_id"}


async def test_erased_conversations_in_flight_are_refused_after_erasure(
    channel: grpc.aio.Channel,
) -> None:
    stub = internal(channel)
    user = new_id("user")
    applied = apply_request(user, turns=4)
    in_flight = apply_request(user, turns=6)
    await stub.ApplyConversation(applied, metadata=INTERNAL)
    hashes = [erasure_hash(applied.conversation_id), erasure_hash(in_flight.conversation_id)]
    request = friendship_internal_pb2.DeleteUserDataRequest(
        user_id=user, erased_conversation_hashes=hashes
    )
    reply = await stub.DeleteUserData(request, metadata=INTERNAL)
    assert reply.deleted["ledger"] == 1 and reply.deleted["friendship_status"] == 1
    for late in (in_flight, applied):  # in flight, or redelivered after erasure
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ApplyConversation(late, metadata=INTERNAL)
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    again = await stub.DeleteUserData(request, metadata=INTERNAL)
    assert set(again.deleted.values()) == {0}
    level = await public(channel).GetLevel(F.GetLevelRequest(user_id=user), metadata=READER)
    assert level.conversations == 0
    # The user's later conversations are theirs to have: only erased ids are refused.
    later = await stub.ApplyConversation(apply_request(user, turns=2), metadata=INTERNAL)
    assert later.applied


async def test_erasure_of_a_user_never_seen_reports_zeros(channel: grpc.aio.Channel) -> None:
    reply = await internal(channel).DeleteUserData(
        friendship_internal_pb2.DeleteUserDataRequest(user_id=new_id("nobody")),
        metadata=INTERNAL,
    )
    assert set(reply.deleted.values()) == {0} and len(reply.deleted) == 5


async def test_erasure_hashes_are_validated(channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await internal(channel).DeleteUserData(
            friendship_internal_pb2.DeleteUserDataRequest(
                user_id="u1", erased_conversation_hashes=["a" * 64, "not-a-hash"]
            ),
            metadata=INTERNAL,
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(caught.value)) == {"erased_conversation_hashes[1]"}
