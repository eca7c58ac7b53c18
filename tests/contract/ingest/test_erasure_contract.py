"""IngestInternalService.DeleteUserData: scope, validation, counts, tombstones, idempotency."""

from __future__ import annotations

import grpc
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from servicekit.erasure import erasure_hash
from spring.ingest.v1 import ingest_internal_pb2, ingest_pb2
from tests.support.auth import INTERNAL_SCOPES, bearer

from .support import Stubs, end_request, new_id, rows_for

WRITE = bearer(["ingest:write"])
INTERNAL = bearer(INTERNAL_SCOPES)


def _erase(user_id: str) -> ingest_internal_pb2.DeleteUserDataRequest:
    return ingest_internal_pb2.DeleteUserDataRequest(user_id=user_id)


async def test_erasure_removes_the_users_conversations_and_outbox_rows_only(
    stubs: Stubs, ingest_db: Engine
) -> None:
    user_id = new_id("erase-user")
    other_user = new_id("keep-user")
    mine = [new_id() for _ in range(3)]
    for conversation_id in mine:
        await stubs.ingest.EndConversation(
            end_request(conversation_id, user_id=user_id), metadata=WRITE
        )
    kept = new_id()
    await stubs.ingest.EndConversation(end_request(kept, user_id=other_user), metadata=WRITE)
    outbox_before = sum(rows_for(ingest_db, c)[1] for c in mine)
    assert outbox_before >= 3  # the relay may not have published yet; rows stay either way

    reply = await stubs.internal.DeleteUserData(_erase(user_id), metadata=INTERNAL)

    assert reply.user_id == user_id
    assert dict(reply.deleted) == {"conversations": 3, "outbox": outbox_before}
    assert sorted(reply.erased_conversation_hashes) == sorted(erasure_hash(c) for c in mine)
    assert all(rows_for(ingest_db, c) == (0, 0) for c in mine)
    assert rows_for(ingest_db, kept)[0] == 1
    with ingest_db.connect() as conn:
        leftovers = conn.execute(
            sa.text(
                "SELECT count(*) FROM ingest.erased_conversations t "
                "WHERE t::text LIKE :user OR t::text LIKE :conv"
            ),
            {"user": f"%{user_id}%", "conv": f"%{mine[0]}%"},
        ).scalar_one()
    assert leftovers == 0  # tombstones hold hashes, never the ids
    for conversation_id in mine:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stubs.ingest.GetConversationStatus(
                ingest_pb2.GetConversationStatusRequest(conversation_id=conversation_id),
                metadata=bearer(["ingest:read"]),
            )
        assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_repeat_reports_zeros_and_the_same_tombstones(stubs: Stubs) -> None:
    user_id = new_id("erase-user")
    conversation_id = new_id()
    await stubs.ingest.EndConversation(end_request(conversation_id, user_id=user_id),
                                       metadata=WRITE)  # fmt: skip
    first = await stubs.internal.DeleteUserData(_erase(user_id), metadata=INTERNAL)
    again = await stubs.internal.DeleteUserData(_erase(user_id), metadata=INTERNAL)
    assert first.deleted["conversations"] == 1
    assert dict(again.deleted) == {"conversations": 0, "outbox": 0}
    assert list(again.erased_conversation_hashes) == [erasure_hash(conversation_id)]
    unknown = await stubs.internal.DeleteUserData(_erase(new_id("nobody")), metadata=INTERNAL)
    assert dict(unknown.deleted) == {"conversations": 0, "outbox": 0}
    assert list(unknown.erased_conversation_hashes) == []


async def test_claim_and_complete_of_an_erased_conversation_are_not_found(stubs: Stubs) -> None:
    user_id = new_id("erase-user")
    conversation_id = new_id()
    await stubs.ingest.EndConversation(end_request(conversation_id, user_id=user_id),
                                       metadata=WRITE)  # fmt: skip
    claim = await stubs.internal.ClaimConversation(
        ingest_internal_pb2.ClaimConversationRequest(conversation_id=conversation_id),
        metadata=INTERNAL,
    )
    assert claim.claimed  # in flight when the erasure comes
    await stubs.internal.DeleteUserData(_erase(user_id), metadata=INTERNAL)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stubs.internal.CompleteConversation(
            ingest_internal_pb2.CompleteConversationRequest(
                conversation_id=conversation_id,
                status=ingest_pb2.CONVERSATION_STATUS_SKIPPED,
            ),
            metadata=INTERNAL,
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("scopes", [["ingest:write", "ingest:read"], ["friendship:read"]])
async def test_erasure_needs_the_internal_scope(stubs: Stubs, scopes: list[str]) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stubs.internal.DeleteUserData(_erase("someone"), metadata=bearer(scopes))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stubs.internal.DeleteUserData(_erase("someone"))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("user_id", ["", "has space", "x" * 129])
async def test_a_bad_user_id_is_invalid_argument(stubs: Stubs, user_id: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stubs.internal.DeleteUserData(_erase(user_id), metadata=INTERNAL)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
