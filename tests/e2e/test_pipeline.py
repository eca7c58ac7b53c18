"""A conversation in, a level out: the three real processes on real PostgreSQL and RabbitMQ."""

from __future__ import annotations

import pytest

from spring.friendship.v1 import friendship_pb2, friendship_pb2_grpc
from spring.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from tests.support.auth import READER_SCOPES, ROBOT_SCOPES, bearer
from tests.support.conversations import conversation, expected_score_change, wait_terminal
from tests.support.env import new_id

pytestmark = pytest.mark.e2e
E = ingest_pb2
F = friendship_pb2


def send(ingest: ingest_pb2_grpc.IngestServiceStub, request: E.EndConversationRequest) -> None:
    reply = ingest.EndConversation(request, metadata=bearer(ROBOT_SCOPES), timeout=5)
    assert reply.conversation_id == request.conversation_id
    assert reply.status == E.CONVERSATION_STATUS_PENDING
    assert not reply.duplicate
    assert reply.accepted_at.seconds > 0


def level(
    friendship: friendship_pb2_grpc.FriendshipServiceStub, user_id: str
) -> F.GetLevelResponse:
    return friendship.GetLevel(
        F.GetLevelRequest(user_id=user_id), metadata=bearer(READER_SCOPES), timeout=5
    )


def test_metadata_conversation_is_processed_and_scored_by_the_formula(
    ingest: ingest_pb2_grpc.IngestServiceStub,
    friendship: friendship_pb2_grpc.FriendshipServiceStub,
) -> None:
    request = conversation(questions=2, emotion=E.EMOTION_INTERESTING, agent_tag="space")
    send(ingest, request)

    status = wait_terminal(ingest, request.conversation_id)
    assert status.status == E.CONVERSATION_STATUS_PROCESSED
    assert status.attempts == 1
    assert status.analysis.source == "metadata"
    assert status.analysis.total_turns == 4
    assert status.analysis.user_initiated_questions == 2
    assert status.analysis.session_emotion == E.EMOTION_INTERESTING
    assert status.analysis.new_memories_count == 0  # nothing about the person was said
    assert status.score_change == pytest.approx(4 * 0.5 + 2 * 3 + 15)

    reply = level(friendship, request.user_id)
    assert reply.score == pytest.approx(23.0)
    assert reply.level == F.FRIENDSHIP_LEVEL_PHASE1_STRANGER
    assert reply.next_level_score == pytest.approx(100.0)
    assert reply.conversations == 1
    assert reply.updated_at.seconds > 0

    topics = friendship.GetTopicMetrics(
        F.GetTopicMetricsRequest(user_id=request.user_id), metadata=bearer(READER_SCOPES)
    )
    assert [(t.topic_id, t.score, t.turns, list(t.agents_used)) for t in topics.topics] == [
        ("space", pytest.approx(23.0), 4, ["bot-explorer"])
    ]


def test_local_analysis_counts_questions_emotion_and_new_memories(
    ingest: ingest_pb2_grpc.IngestServiceStub,
    friendship: friendship_pb2_grpc.FriendshipServiceStub,
) -> None:
    user_id = new_id("user")
    first = conversation(
        user_id=user_id,
        turns=[
            ("user", "Hi! My name is Minh and I like dinosaurs."),
            ("bot", "Nice to meet you Minh! Which dinosaur do you like?"),
            ("user", "The T-rex. Why are dinosaurs so big? Can they swim?"),
            ("robot", "Some could! Great questions."),
            ("user", "This is so fun and interesting!"),
        ],
    )
    send(ingest, first)
    status = wait_terminal(ingest, first.conversation_id)
    assert status.status == E.CONVERSATION_STATUS_PROCESSED
    assert status.analysis.source == "local"
    assert status.analysis.total_turns == 5
    assert status.analysis.user_initiated_questions == 2
    assert status.analysis.new_memories_count >= 1
    assert status.score_change == pytest.approx(expected_score_change(status.analysis))

    # The same facts told again are not new memories.
    again = conversation(
        user_id=user_id, turns=[("user", "My name is Minh and I like dinosaurs.")]
    )
    send(ingest, again)
    status_again = wait_terminal(ingest, again.conversation_id)
    assert status_again.analysis.new_memories_count == 0

    reply = level(friendship, user_id)
    assert reply.conversations == 2
    assert reply.score == pytest.approx(
        max(0.0, status.score_change + status_again.score_change)
    )


def test_vietnamese_conversation_is_analysed_locally(
    ingest: ingest_pb2_grpc.IngestServiceStub,
) -> None:
    request = conversation(
        turns=[
            ("user", "Chào robot! Tên con là Lan."),
            ("assistant", "Chào Lan! Hôm nay con thế nào?"),
            ("user", "Con vui lắm. Robot có thích ăn kem không?"),
            ("assistant", "Robot không ăn được kem, nhưng nghe rất ngon!"),
            ("user", "Tại sao bầu trời màu xanh?"),
        ],
    )
    send(ingest, request)
    status = wait_terminal(ingest, request.conversation_id)
    assert status.status == E.CONVERSATION_STATUS_PROCESSED
    assert status.analysis.user_initiated_questions == 2
    assert status.analysis.session_emotion in (E.EMOTION_HAPPY, E.EMOTION_INTERESTING)
    assert status.analysis.new_memories_count >= 1


def test_levels_cross_thresholds_and_topics_accumulate(
    ingest: ingest_pb2_grpc.IngestServiceStub,
    friendship: friendship_pb2_grpc.FriendshipServiceStub,
) -> None:
    user_id = new_id("user")
    # 4 turns * 0.5 + 29 * 3 + 15 = 104 -> acquaintance
    big = conversation(user_id=user_id, questions=29, emotion=E.EMOTION_INTERESTING,
                       agent_tag="math", bot_id="bot-a")
    send(ingest, big)
    assert wait_terminal(ingest, big.conversation_id).status == E.CONVERSATION_STATUS_PROCESSED
    reply = level(friendship, user_id)
    assert reply.score == pytest.approx(104.0)
    assert reply.level == F.FRIENDSHIP_LEVEL_PHASE2_ACQUAINTANCE
    assert reply.next_level_score == pytest.approx(300.0)

    for bot in ("bot-b", "bot-a"):
        more = conversation(user_id=user_id, questions=29, emotion=E.EMOTION_INTERESTING,
                            agent_tag="math", bot_id=bot)
        send(ingest, more)
        assert wait_terminal(ingest, more.conversation_id).status == (
            E.CONVERSATION_STATUS_PROCESSED
        )
    reply = level(friendship, user_id)
    assert reply.score == pytest.approx(312.0)
    assert reply.level == F.FRIENDSHIP_LEVEL_PHASE3_FRIEND
    assert reply.next_level_score == 0
    assert reply.conversations == 3

    topics = friendship.GetTopicMetrics(
        F.GetTopicMetricsRequest(user_id=user_id), metadata=bearer(READER_SCOPES)
    ).topics
    assert len(topics) == 1
    assert topics[0].topic_id == "math"
    assert topics[0].score == pytest.approx(312.0)
    assert topics[0].turns == 12
    assert list(topics[0].agents_used) == ["bot-a", "bot-b"]


def test_boring_conversation_never_takes_the_score_below_zero(
    ingest: ingest_pb2_grpc.IngestServiceStub,
    friendship: friendship_pb2_grpc.FriendshipServiceStub,
) -> None:
    request = conversation(questions=0, emotion=E.EMOTION_BORING)
    send(ingest, request)
    status = wait_terminal(ingest, request.conversation_id)
    assert status.score_change == pytest.approx(4 * 0.5 - 15)
    reply = level(friendship, request.user_id)
    assert reply.score == 0
    assert reply.level == F.FRIENDSHIP_LEVEL_PHASE1_STRANGER
    assert reply.conversations == 1


def test_next_lesson_is_stored_and_skipped_without_changing_the_level(
    ingest: ingest_pb2_grpc.IngestServiceStub,
    friendship: friendship_pb2_grpc.FriendshipServiceStub,
) -> None:
    request = conversation(bot_type="NEXT_LESSON", questions=3, emotion=E.EMOTION_HAPPY)
    send(ingest, request)
    status = wait_terminal(ingest, request.conversation_id)
    assert status.status == E.CONVERSATION_STATUS_SKIPPED
    reply = level(friendship, request.user_id)
    assert reply.conversations == 0
    assert reply.score == 0


def test_unknown_user_is_a_stranger_with_score_zero(
    friendship: friendship_pb2_grpc.FriendshipServiceStub,
) -> None:
    reply = level(friendship, new_id("nobody"))
    assert reply.level == F.FRIENDSHIP_LEVEL_PHASE1_STRANGER
    assert reply.score == 0
    assert reply.conversations == 0
    assert reply.next_level_score == pytest.approx(100.0)


def test_duplicate_is_accepted_once_and_applied_once(
    ingest: ingest_pb2_grpc.IngestServiceStub,
    friendship: friendship_pb2_grpc.FriendshipServiceStub,
) -> None:
    request = conversation(questions=1, emotion=E.EMOTION_INTERESTING)
    first = ingest.EndConversation(request, metadata=bearer(ROBOT_SCOPES), timeout=5)
    assert not first.duplicate
    wait_terminal(ingest, request.conversation_id)

    again = ingest.EndConversation(request, metadata=bearer(ROBOT_SCOPES), timeout=5)
    assert again.duplicate
    assert again.status == E.CONVERSATION_STATUS_PROCESSED
    assert again.accepted_at == first.accepted_at
    reply = level(friendship, request.user_id)
    assert reply.conversations == 1
    assert reply.score == pytest.approx(4 * 0.5 + 3 + 15)
