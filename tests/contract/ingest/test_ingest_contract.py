"""IngestService and IngestInternalService through the real stubs, over a real socket."""

from __future__ import annotations

from collections.abc import Awaitable

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from sqlalchemy.engine import Engine

from ingest.entrypoints.grpc_server import RunningServer
from spring.ingest.v1 import ingest_internal_pb2, ingest_pb2
from tests.support.auth import TEST_JWT_SECRET, bearer

from .support import INTERNAL, READ, ROBOT, WRITE, Stubs, end_request, new_id, rows_for, ts

S = ingest_pb2
TIMEOUT = 5.0


def field_violations(error: grpc.aio.AioRpcError) -> list[tuple[str, str]]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "no google.rpc.Status details"
    out: list[tuple[str, str]] = []
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        assert detail.Unpack(bad_request)
        out += [(v.field, v.description) for v in bad_request.field_violations]
    return out


async def end(stubs: Stubs, request: ingest_pb2.EndConversationRequest,
              metadata: tuple[tuple[str, str], ...] = WRITE) -> ingest_pb2.EndConversationResponse:
    return await stubs.ingest.EndConversation(request, metadata=metadata, timeout=TIMEOUT)


async def status_of(stubs: Stubs, conversation_id: str) -> ingest_pb2.GetConversationStatusResponse:
    return await stubs.ingest.GetConversationStatus(
        S.GetConversationStatusRequest(conversation_id=conversation_id),
        metadata=READ,
        timeout=TIMEOUT,
    )


# --- EndConversation ----------------------------------------------------------------------------
async def test_accepts_a_new_conversation_as_pending(stubs: Stubs, ingest_db: Engine) -> None:
    request = end_request()
    response = await end(stubs, request)
    assert response.conversation_id == request.conversation_id
    assert response.status == S.CONVERSATION_STATUS_PENDING
    assert response.duplicate is False
    assert response.HasField("accepted_at") and response.accepted_at.seconds > 0
    assert rows_for(ingest_db, request.conversation_id) == (1, 1)

    current = await status_of(stubs, request.conversation_id)
    assert current.status == S.CONVERSATION_STATUS_PENDING
    assert current.attempts == 0
    assert current.last_error == ""
    assert not current.HasField("analysis")
    assert current.updated_at.seconds > 0


async def test_same_content_again_is_a_duplicate(stubs: Stubs, ingest_db: Engine) -> None:
    request = end_request()
    first = await end(stubs, request)
    again = ingest_pb2.EndConversationRequest()
    again.CopyFrom(request)  # a fresh message with the same content
    second = await end(stubs, again)
    assert second.duplicate is True
    assert second.status == S.CONVERSATION_STATUS_PENDING
    assert second.accepted_at == first.accepted_at
    assert rows_for(ingest_db, request.conversation_id) == (1, 1)  # no second outbox row


async def test_duplicate_answers_the_current_status(stubs: Stubs) -> None:
    request = end_request()
    await end(stubs, request)
    await stubs.internal.ClaimConversation(
        ingest_internal_pb2.ClaimConversationRequest(conversation_id=request.conversation_id),
        metadata=INTERNAL, timeout=TIMEOUT,
    )
    second = await end(stubs, request)
    assert second.duplicate is True
    assert second.status == S.CONVERSATION_STATUS_PROCESSING


async def test_same_id_with_different_content_already_exists(
    stubs: Stubs, ingest_db: Engine
) -> None:
    request = end_request()
    await end(stubs, request)
    changed = end_request(request.conversation_id, user_id=request.user_id)
    changed.conversation_log[0].content = "secret different words"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await end(stubs, changed)
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "secret" not in (caught.value.details() or "")
    assert rows_for(ingest_db, request.conversation_id) == (1, 1)


@pytest.mark.parametrize(
    ("case", "expected_fields"),
    [
        ("bad id", ["conversation_id"]),
        ("missing user id", ["user_id"]),
        ("empty log", ["conversation_log"]),
        ("only empty turns", ["conversation_log"]),
        ("unknown role", ["conversation_log[1].role"]),
        ("ended before started", ["ended_at"]),
        ("too many turns", ["conversation_log"]),
        ("negative questions", ["metadata.user_initiated_questions"]),
        ("unknown emotion", ["metadata.session_emotion"]),
        ("bad timestamp", ["started_at"]),
    ],
)
async def test_invalid_requests_are_invalid_argument_with_field_violations(
    stubs: Stubs, ingest_db: Engine, case: str, expected_fields: list[str]
) -> None:
    request = end_request()
    secret = "private words of a child"
    if case == "bad id":
        request.conversation_id = "not allowed/" + secret
    elif case == "missing user id":
        request.user_id = ""
    elif case == "empty log":
        del request.conversation_log[:]
    elif case == "only empty turns":
        del request.conversation_log[:]
        request.conversation_log.add(role="user", content=" \n\t ")
    elif case == "unknown role":
        request.conversation_log[1].role = secret
    elif case == "ended before started":
        request.started_at.CopyFrom(ts(1_700_000_100))
        request.ended_at.CopyFrom(ts(1_700_000_099))
    elif case == "too many turns":
        del request.conversation_log[:]
        for i in range(5001):
            request.conversation_log.add(role="user" if i % 2 else "bot", content=f"turn {i}")
    elif case == "negative questions":
        request.metadata.user_initiated_questions = -1
    elif case == "unknown emotion":
        request.metadata.session_emotion = 42  # type: ignore[assignment]
    elif case == "bad timestamp":
        request.started_at.CopyFrom(ts(253_402_300_800))
        request.ClearField("ended_at")

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await end(stubs, request)
    error = caught.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = field_violations(error)
    assert [field for field, _ in violations] == expected_fields
    assert all(secret not in f + d for f, d in violations)
    assert secret not in (error.details() or "")
    # Nothing half-written.
    assert rows_for(ingest_db, request.conversation_id) == (0, 0)


async def test_5000_turns_are_accepted(stubs: Stubs) -> None:
    request = end_request()
    del request.conversation_log[:]
    for i in range(5000):
        request.conversation_log.add(role="user" if i % 2 else "bot", content=f"turn {i}")
    response = await end(stubs, request)
    assert response.status == S.CONVERSATION_STATUS_PENDING


async def test_over_4_mib_is_resource_exhausted(stubs: Stubs, ingest_db: Engine) -> None:
    request = end_request()
    request.conversation_log.add(role="user", content="a" * (4 * 1024 * 1024 + 1))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await end(stubs, request)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert rows_for(ingest_db, request.conversation_id) == (0, 0)


async def test_just_under_4_mib_is_accepted(stubs: Stubs) -> None:
    request = end_request()
    request.conversation_log.add(role="user", content="a" * (4 * 1024 * 1024 - 4096))
    assert request.ByteSize() < 4 * 1024 * 1024
    response = await end(stubs, request)
    assert response.status == S.CONVERSATION_STATUS_PENDING


# --- auth ----------------------------------------------------------------------------------------
async def test_no_token_or_a_bad_token_is_unauthenticated(stubs: Stubs) -> None:
    bad_tokens: list[tuple[tuple[str, str], ...]] = [
        (),
        (("authorization", "Bearer not-a-jwt"),),
        (("authorization", "Basic abc"),),
        bearer(["ingest:write"], secret="another-secret-0123456789-0123456789"),
        bearer(["ingest:write"], ttl_s=-60),
    ]
    for metadata in bad_tokens:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stubs.ingest.EndConversation(end_request(), metadata=metadata, timeout=TIMEOUT)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stubs.ingest.GetConversationStatus(
                S.GetConversationStatusRequest(conversation_id="x"), metadata=metadata,
                timeout=TIMEOUT,
            )
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert TEST_JWT_SECRET  # the good secret is the shared one


async def test_a_read_token_cannot_end_a_conversation(stubs: Stubs, ingest_db: Engine) -> None:
    request = end_request()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await end(stubs, request, metadata=READ)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert rows_for(ingest_db, request.conversation_id) == (0, 0)


async def test_a_write_token_cannot_read_status(stubs: Stubs) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stubs.ingest.GetConversationStatus(
            S.GetConversationStatusRequest(conversation_id=new_id()), metadata=WRITE,
            timeout=TIMEOUT,
        )
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_robot_tokens_cannot_call_internal_methods(stubs: Stubs) -> None:
    request = end_request()
    await end(stubs, request)
    calls: list[Awaitable[object]] = [
        stubs.internal.ClaimConversation(
            ingest_internal_pb2.ClaimConversationRequest(conversation_id=request.conversation_id),
            metadata=ROBOT, timeout=TIMEOUT,
        ),
        stubs.internal.CompleteConversation(
            ingest_internal_pb2.CompleteConversationRequest(
                conversation_id=request.conversation_id,
                status=S.CONVERSATION_STATUS_SKIPPED,
            ),
            metadata=WRITE, timeout=TIMEOUT,
        ),
        stubs.internal.FailConversation(
            ingest_internal_pb2.FailConversationRequest(conversation_id=request.conversation_id),
            metadata=WRITE, timeout=TIMEOUT,
        ),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert (await status_of(stubs, request.conversation_id)).status == (
        S.CONVERSATION_STATUS_PENDING
    )


async def test_an_internal_token_cannot_end_a_conversation(stubs: Stubs) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await end(stubs, end_request(), metadata=INTERNAL)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_health_needs_no_token(ingest_server: RunningServer, stubs: Stubs) -> None:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{ingest_server.port}")
    try:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "spring.ingest.v1.IngestService"):
            answer = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await channel.close(None)


# --- GetConversationStatus ----------------------------------------------------------------------
async def test_unknown_id_is_not_found(stubs: Stubs) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await status_of(stubs, new_id("unknown"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_an_invalid_id_is_invalid_argument(stubs: Stubs) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await status_of(stubs, "bad id")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(caught.value)] == ["conversation_id"]


# --- internal life cycle ---------------------------------------------------------------
async def claim(stubs: Stubs, conversation_id: str, lease_seconds: int = 60) -> (
    ingest_internal_pb2.ClaimConversationResponse
):
    return await stubs.internal.ClaimConversation(
        ingest_internal_pb2.ClaimConversationRequest(
            conversation_id=conversation_id, lease_seconds=lease_seconds
        ),
        metadata=INTERNAL, timeout=TIMEOUT,
    )


async def complete(stubs: Stubs, conversation_id: str, status: int, score: float = 0.0,
                   analysis: ingest_pb2.Analysis | None = None) -> int:
    response = await stubs.internal.CompleteConversation(
        ingest_internal_pb2.CompleteConversationRequest(
            conversation_id=conversation_id, status=status,  # type: ignore[arg-type]
            score_change=score, analysis=analysis,
        ),
        metadata=INTERNAL, timeout=TIMEOUT,
    )
    return int(response.status)


async def fail(stubs: Stubs, conversation_id: str, error: str, dead: bool) -> (
    ingest_internal_pb2.FailConversationResponse
):
    return await stubs.internal.FailConversation(
        ingest_internal_pb2.FailConversationRequest(
            conversation_id=conversation_id, error=error, dead_lettered=dead
        ),
        metadata=INTERNAL, timeout=TIMEOUT,
    )


async def test_claim_hands_out_the_normalized_conversation(stubs: Stubs) -> None:
    request = end_request(bot_type="CHAT")
    request.metadata.user_initiated_questions = 2
    request.metadata.session_emotion = S.EMOTION_HAPPY
    await end(stubs, request)

    claimed = await claim(stubs, request.conversation_id)
    assert claimed.claimed is True
    assert claimed.status == S.CONVERSATION_STATUS_PROCESSING
    assert claimed.attempts == 1
    conversation = claimed.conversation
    assert conversation.conversation_id == request.conversation_id
    assert conversation.user_id == request.user_id
    assert conversation.bot_id == "bot-1"
    assert conversation.bot_type == "CHAT"
    assert conversation.agent_tag == "topic-animals"
    assert [(t.role, t.content) for t in conversation.turns] == [
        ("user", "Chào bạn! Do you like cats? 🐱"),
        ("assistant", "Yes, I do."),
    ]
    assert conversation.turns[0].at == ts(1_700_000_000)
    assert conversation.turns[1].at == ts(1_700_000_002)
    assert conversation.metadata.HasField("user_initiated_questions")
    assert conversation.metadata.user_initiated_questions == 2
    assert conversation.metadata.session_emotion == S.EMOTION_HAPPY

    status = await status_of(stubs, request.conversation_id)
    assert status.status == S.CONVERSATION_STATUS_PROCESSING
    assert status.attempts == 1


async def test_metadata_not_given_stays_not_given(stubs: Stubs) -> None:
    request = end_request()
    await end(stubs, request)
    claimed = await claim(stubs, request.conversation_id)
    assert not claimed.conversation.metadata.HasField("user_initiated_questions")
    assert claimed.conversation.metadata.session_emotion == S.EMOTION_UNSPECIFIED


async def test_life_cycle_retry_then_processed(stubs: Stubs) -> None:
    cid = (await end(stubs, end_request())).conversation_id
    assert (await claim(stubs, cid)).attempts == 1
    # A redelivery after a worker died: a PROCESSING conversation is claimed again.
    again = await claim(stubs, cid)
    assert again.claimed is True and again.attempts == 2

    failed = await fail(stubs, cid, "LLM timeout " + "x" * 500, dead=False)
    assert failed.status == S.CONVERSATION_STATUS_PENDING
    assert failed.attempts == 2
    current = await status_of(stubs, cid)
    assert current.status == S.CONVERSATION_STATUS_PENDING
    assert current.last_error.startswith("LLM timeout ")
    assert len(current.last_error) == 200

    assert (await claim(stubs, cid)).attempts == 3
    analysis = S.Analysis(
        total_turns=2, user_initiated_questions=1, session_emotion=S.EMOTION_INTERESTING,
        new_memories_count=3, source="llm",
    )
    assert await complete(
        stubs, cid, S.CONVERSATION_STATUS_PROCESSED, 31.0, analysis
    ) == S.CONVERSATION_STATUS_PROCESSED
    done = await status_of(stubs, cid)
    assert done.status == S.CONVERSATION_STATUS_PROCESSED
    assert done.attempts == 3
    assert done.score_change == 31.0
    assert done.analysis == analysis
    assert done.updated_at.ToDatetime() >= current.updated_at.ToDatetime()

    # Idempotent: nothing moves a terminal conversation.
    assert await complete(stubs, cid, S.CONVERSATION_STATUS_SKIPPED) == (
        S.CONVERSATION_STATUS_PROCESSED
    )
    assert await complete(stubs, cid, S.CONVERSATION_STATUS_PROCESSED, 99.0, analysis) == (
        S.CONVERSATION_STATUS_PROCESSED
    )
    late_fail = await fail(stubs, cid, "late", dead=True)
    assert late_fail.status == S.CONVERSATION_STATUS_PROCESSED
    assert late_fail.attempts == 3
    not_claimed = await claim(stubs, cid)
    assert not_claimed.claimed is False
    assert not_claimed.status == S.CONVERSATION_STATUS_PROCESSED
    assert not not_claimed.HasField("conversation")
    final = await status_of(stubs, cid)
    assert final.score_change == 31.0 and final.attempts == 3 and final.analysis == analysis


async def test_skipped_has_no_score_or_analysis(stubs: Stubs) -> None:
    cid = (await end(stubs, end_request(bot_type="NEXT_LESSON"))).conversation_id
    await claim(stubs, cid)
    assert await complete(stubs, cid, S.CONVERSATION_STATUS_SKIPPED, 12.0) == (
        S.CONVERSATION_STATUS_SKIPPED
    )
    current = await status_of(stubs, cid)
    assert current.status == S.CONVERSATION_STATUS_SKIPPED
    assert current.score_change == 0.0
    assert not current.HasField("analysis")


async def test_dead_lettered_conversation_fails_for_good(stubs: Stubs) -> None:
    request = end_request()
    cid = (await end(stubs, request)).conversation_id
    await claim(stubs, cid)
    failed = await fail(stubs, cid, "gave up after 5 attempts", dead=True)
    assert failed.status == S.CONVERSATION_STATUS_FAILED
    assert failed.attempts == 1
    assert (await claim(stubs, cid)).claimed is False
    assert await complete(stubs, cid, S.CONVERSATION_STATUS_PROCESSED, 5.0) == (
        S.CONVERSATION_STATUS_FAILED
    )
    again = await fail(stubs, cid, "again", dead=False)
    assert again.status == S.CONVERSATION_STATUS_FAILED
    current = await status_of(stubs, cid)
    assert current.status == S.CONVERSATION_STATUS_FAILED
    assert current.last_error == "gave up after 5 attempts"
    assert not current.HasField("analysis")
    # A duplicate EndConversation reports the terminal status.
    duplicate = await end(stubs, request)
    assert duplicate.duplicate is True
    assert duplicate.status == S.CONVERSATION_STATUS_FAILED


async def test_complete_needs_processed_or_skipped(stubs: Stubs) -> None:
    cid = (await end(stubs, end_request())).conversation_id
    for status in (S.CONVERSATION_STATUS_PENDING, S.CONVERSATION_STATUS_FAILED,
                   S.CONVERSATION_STATUS_UNSPECIFIED):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await complete(stubs, cid, status)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert [f for f, _ in field_violations(caught.value)] == ["status"]
    assert (await status_of(stubs, cid)).status == S.CONVERSATION_STATUS_PENDING


async def test_internal_methods_on_unknown_ids_are_not_found(stubs: Stubs) -> None:
    cid = new_id("unknown")
    unknown: list[Awaitable[object]] = [
        claim(stubs, cid),
        complete(stubs, cid, S.CONVERSATION_STATUS_SKIPPED),
        fail(stubs, cid, "x", dead=False),
    ]
    for call in unknown:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_negative_lease_is_invalid(stubs: Stubs) -> None:
    cid = (await end(stubs, end_request())).conversation_id
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await claim(stubs, cid, lease_seconds=-1)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
