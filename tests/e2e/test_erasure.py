"""Erasure on the real processes: after `springctl erase-user` no row of any table in the
ingest, analyzer and friendship schemas holds the user's id, the words of their
conversations or their conversation ids; a second run removes nothing and says so; a
conversation of the user still in flight cannot bring anything back."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy as sa

from servicekit.db import sqlalchemy_url
from spring.friendship.v1 import friendship_internal_pb2, friendship_internal_pb2_grpc
from spring.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from tests.support.auth import INTERNAL_SCOPES, ROBOT_SCOPES, bearer
from tests.support.conversations import conversation, wait_terminal
from tests.support.env import new_id
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e
E = ingest_pb2
SPRINGCTL = str(Path(sys.executable).with_name("springctl"))
SCHEMAS = ("ingest", "analyzer", "friendship")


def erase_user(stack: Stack, user_id: str) -> dict[str, Any]:
    env = dict(stack.ingest.env, ANALYZER_GRPC_TARGET=stack.analyzer.target)
    done = subprocess.run(
        [SPRINGCTL, "erase-user", user_id], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def rows_holding(engine: sa.Engine, needles: list[str]) -> dict[str, int]:
    """Rows of every table of the three schemas whose text form contains a needle (as text,
    or hex-encoded inside a bytea column such as the protobuf payload of an outbox row)."""
    found: dict[str, int] = {}
    with engine.connect() as conn:
        tables = conn.execute(
            sa.text(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_schema = ANY(:schemas) AND table_type = 'BASE TABLE'"
            ),
            {"schemas": list(SCHEMAS)},
        ).all()
        assert {t.table_schema for t in tables} == set(SCHEMAS)
        for schema, table in tables:
            patterns = [f"%{n.lower()}%" for n in needles]
            patterns += [f"%{n.encode().hex()}%" for n in needles]
            count = conn.execute(
                sa.text(
                    f'SELECT count(*) FROM "{schema}"."{table}" t '
                    "WHERE lower(t::text) LIKE ANY(:patterns)"
                ),
                {"patterns": patterns},
            ).scalar_one()
            if count:
                found[f"{schema}.{table}"] = int(count)
    return found


def test_erase_user_leaves_nothing_of_the_user_in_any_schema_and_is_idempotent(
    stack: Stack, ingest: ingest_pb2_grpc.IngestServiceStub
) -> None:
    user_id = new_id("erasee")
    other_user = new_id("keeper")
    marker = f"quokka{uuid.uuid4().hex[:8]}"  # a word only this user ever said
    turns = [
        ("user", f"My name is Lan and I love my pet {marker} very much."),
        ("assistant", f"A {marker}! How lovely."),
        ("user", f"I like to feed my {marker} every morning. Do you like animals?"),
        ("assistant", "I do, very much."),
    ]
    requests = [
        conversation(user_id=user_id, turns=turns, questions=40, emotion=E.EMOTION_INTERESTING),
        conversation(user_id=user_id, turns=turns, agent_tag="pets"),
        conversation(user_id=user_id, turns=turns, bot_type="NEXT_LESSON"),
        conversation(user_id=other_user, agent_tag="pets"),
    ]
    for request in requests:
        ingest.EndConversation(request, metadata=bearer(ROBOT_SCOPES), timeout=5)
    for request in requests:
        assert wait_terminal(ingest, request.conversation_id).status in (
            E.CONVERSATION_STATUS_PROCESSED, E.CONVERSATION_STATUS_SKIPPED,
        )  # fmt: skip
    mine = [r.conversation_id for r in requests[:3]]
    needles = [user_id, marker, *mine]
    engine = sa.create_engine(
        sqlalchemy_url(stack.ingest.env["DATABASE_URL"]), poolclass=sa.pool.NullPool
    )
    try:
        before = rows_holding(engine, needles)
        # The search finds what is there: the user is in every schema before erasure.
        assert {name.split(".")[0] for name in before} == set(SCHEMAS), before

        report = erase_user(stack, user_id)

        assert report["user_id"] == user_id
        assert report["erased_conversations"] == 3
        assert report["ingest"]["conversations"] == 3
        assert report["ingest"]["outbox"] == 3
        assert report["analyzer"]["analyses"] == 2  # the skipped one has no analysis
        assert report["analyzer"]["memory_api"] == 0  # no memory API in this stack
        assert report["friendship"]["ledger"] == 2
        assert report["friendship"]["friendship_status"] == 1
        assert report["friendship"]["topic_metrics"] == 2
        assert rows_holding(engine, needles) == {}
        keeper = rows_holding(engine, [other_user])
        assert "ingest.conversations" in keeper and "friendship.ledger" in keeper

        # A conversation of the user still in flight comes back to friendship: refused.
        with grpc.insecure_channel(stack.friendship.target) as channel:
            internal = friendship_internal_pb2_grpc.FriendshipInternalServiceStub(channel)
            with pytest.raises(grpc.RpcError) as err:
                internal.ApplyConversation(
                    friendship_internal_pb2.ApplyConversationRequest(
                        conversation_id=mine[0], user_id=user_id, bot_id="bot-explorer",
                        analysis=ingest_pb2.Analysis(total_turns=4, source="local"),
                    ),
                    metadata=bearer(INTERNAL_SCOPES), timeout=5,
                )  # fmt: skip
            assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION  # type: ignore[attr-defined]
        # ... and so does its status request or a claim: the conversation is gone.
        with pytest.raises(grpc.RpcError) as err:
            ingest.GetConversationStatus(
                E.GetConversationStatusRequest(conversation_id=mine[0]),
                metadata=bearer(ROBOT_SCOPES), timeout=5,
            )  # fmt: skip
        assert err.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]

        again = erase_user(stack, user_id)
        assert again["erased_conversations"] == 3
        for service in ("ingest", "analyzer", "friendship"):
            counts = {k: v for k, v in again[service].items() if k != "memory_api"}
            assert set(counts.values()) == {0}, (service, again[service])
        assert rows_holding(engine, needles) == {}
    finally:
        engine.dispose()
