"""Friendship people can trust, on the real processes: the history explains every point of a
user's score, and erasure leaves nothing of the user in friendship."""

from __future__ import annotations

import itertools

import grpc
import pytest

from spring.friendship.v1 import (
    friendship_internal_pb2,
    friendship_internal_pb2_grpc,
    friendship_pb2,
    friendship_pb2_grpc,
)
from spring.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from tests.support.auth import INTERNAL_SCOPES, READER_SCOPES, ROBOT_SCOPES, bearer
from tests.support.conversations import conversation, expected_score_change, wait_terminal
from tests.support.env import new_id
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e
E = ingest_pb2
F = friendship_pb2
READ = bearer(READER_SCOPES)


def full_history(
    friendship: friendship_pb2_grpc.FriendshipServiceStub, user_id: str
) -> list[F.ScoreHistoryEntry]:
    entries: list[F.ScoreHistoryEntry] = []
    token = ""
    while True:
        page = friendship.GetScoreHistory(
            F.GetScoreHistoryRequest(user_id=user_id, page_size=2, page_token=token),
            metadata=READ, timeout=5,
        )
        entries += page.entries
        token = page.next_page_token
        if not token:
            return entries


def test_history_explains_every_point_of_the_score(
    ingest: ingest_pb2_grpc.IngestServiceStub,
    friendship: friendship_pb2_grpc.FriendshipServiceStub,
) -> None:
    user_id = new_id("user")
    sent = [
        conversation(user_id=user_id, questions=29, emotion=E.EMOTION_INTERESTING,
                     agent_tag="math", bot_id="bot-a"),  # 104: acquaintance
        conversation(user_id=user_id, questions=0, emotion=E.EMOTION_BORING),  # -13: 91
        conversation(user_id=user_id, questions=4, emotion=E.EMOTION_SAD, agent_tag="math",
                     bot_id="bot-b"),
        conversation(user_id=user_id, questions=1, emotion=E.EMOTION_HAPPY, agent_tag=""),
        conversation(
            user_id=user_id,
            turns=[("user", "Hi, I am Lan and I love painting. Why is the sky blue?"),
                   ("bot", "Great question!")],
        ),  # analysed locally
    ]
    statuses = {}
    for request in sent:  # one after the other: the ledger order is the sending order
        ingest.EndConversation(request, metadata=bearer(ROBOT_SCOPES), timeout=5)
        statuses[request.conversation_id] = wait_terminal(ingest, request.conversation_id)
        assert statuses[request.conversation_id].status == E.CONVERSATION_STATUS_PROCESSED

    entries = full_history(friendship, user_id)
    level = friendship.GetLevel(F.GetLevelRequest(user_id=user_id), metadata=READ, timeout=5)
    assert [e.conversation_id for e in entries] == [r.conversation_id for r in reversed(sent)]
    assert len(entries) == level.conversations == len(sent)
    assert sum(e.applied_delta for e in entries) == pytest.approx(level.score)
    assert entries[0].score_after == pytest.approx(level.score)
    assert entries[0].level_after == level.level == F.FRIENDSHIP_LEVEL_PHASE2_ACQUAINTANCE
    assert entries[-1].score_before == 0
    for newer, older in itertools.pairwise(entries):
        assert newer.score_before == pytest.approx(older.score_after)
        assert newer.level_before == older.level_after
    for entry in entries:
        b = entry.breakdown
        assert b.base + b.engagement + b.emotion + b.memory == pytest.approx(b.score_change)
        assert entry.applied_delta == pytest.approx(
            max(0.0, entry.score_before + b.score_change) - entry.score_before
        )
        status = statuses[entry.conversation_id]
        assert entry.analysis == status.analysis  # the inputs the analyzer reported
        assert b.score_change == pytest.approx(expected_score_change(status.analysis))
        assert b.score_change == pytest.approx(status.score_change)
        assert entry.rule_version == "v1"
    oldest = entries[-1]  # 104 points: the first crossing
    assert (oldest.level_before, oldest.level_after) == (
        F.FRIENDSHIP_LEVEL_PHASE1_STRANGER, F.FRIENDSHIP_LEVEL_PHASE2_ACQUAINTANCE
    )
    assert entries[-2].level_after == F.FRIENDSHIP_LEVEL_PHASE1_STRANGER  # boring: 91, back
    assert {e.analysis.source for e in entries} >= {"metadata", "local"}


def test_erasure_leaves_nothing_of_the_user_in_friendship(
    stack: Stack,
    ingest: ingest_pb2_grpc.IngestServiceStub,
    friendship: friendship_pb2_grpc.FriendshipServiceStub,
) -> None:
    user_id = new_id("user")
    request = conversation(user_id=user_id, questions=40, emotion=E.EMOTION_INTERESTING)
    ingest.EndConversation(request, metadata=bearer(ROBOT_SCOPES), timeout=5)
    assert wait_terminal(ingest, request.conversation_id).status == (
        E.CONVERSATION_STATUS_PROCESSED
    )
    with grpc.insecure_channel(stack.friendship.target) as channel:
        admin = friendship_internal_pb2_grpc.FriendshipInternalServiceStub(channel)
        erase = friendship_internal_pb2.DeleteUserDataRequest(user_id=user_id)
        reply = admin.DeleteUserData(erase, metadata=bearer(INTERNAL_SCOPES), timeout=5)
        assert reply.deleted["ledger"] == 1
        assert reply.deleted["friendship_status"] == 1
        assert reply.deleted["topic_metrics"] == 1
        assert reply.deleted["outbox"] == 1  # the level crossing's event
        again = admin.DeleteUserData(erase, metadata=bearer(INTERNAL_SCOPES), timeout=5)
        assert sum(again.deleted.values()) == 0
    level = friendship.GetLevel(F.GetLevelRequest(user_id=user_id), metadata=READ, timeout=5)
    assert (level.score, level.conversations) == (0, 0)
    assert full_history(friendship, user_id) == []
    topics = friendship.GetTopicMetrics(F.GetTopicMetricsRequest(user_id=user_id), metadata=READ)
    assert list(topics.topics) == []
