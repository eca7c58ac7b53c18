"""Every error row of CONTRACT.md's table, against the real processes."""

from __future__ import annotations

import time

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from spring.friendship.v1 import friendship_pb2, friendship_pb2_grpc
from spring.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from tests.support.auth import READER_SCOPES, ROBOT_SCOPES, bearer
from tests.support.conversations import conversation
from tests.support.env import new_id
from tests.support.stack import Stack
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.e2e
E = ingest_pb2


def call_error(fn: object, request: object, metadata: object = None) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        fn(request, metadata=metadata if metadata is not None else bearer(ROBOT_SCOPES),  # type: ignore[operator]
           timeout=10)
    return info.value


def field_violations(err: grpc.RpcError) -> dict[str, str]:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None, "INVALID_ARGUMENT must carry google.rpc.Status details"
    found: dict[str, str] = {}
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            found.update({v.field: v.description for v in bad.field_violations})
    return found


def ts(seconds: int) -> Timestamp:
    return Timestamp(seconds=seconds)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda r: setattr(r, "conversation_id", ""), "conversation_id"),
        (lambda r: setattr(r, "conversation_id", "has space"), "conversation_id"),
        (lambda r: setattr(r, "conversation_id", "x" * 129), "conversation_id"),
        (lambda r: setattr(r, "user_id", ""), "user_id"),
        (lambda r: setattr(r, "user_id", "ngườidùng"), "user_id"),
        (lambda r: setattr(r, "bot_id", "bot/1"), "bot_id"),
        (lambda r: r.ClearField("conversation_log"), "conversation_log"),
        (lambda r: [setattr(t, "content", "   ") for t in r.conversation_log], "conversation_log"),
        (lambda r: setattr(r.conversation_log[1], "role", "narrator"), "conversation_log[1].role"),
        (lambda r: (r.started_at.CopyFrom(ts(2000)), r.ended_at.CopyFrom(ts(1000))), "ended_at"),
    ],
    ids=["empty-id", "id-space", "id-too-long", "no-user", "user-unicode", "bot-slash",
         "empty-log", "blank-log", "unknown-role", "ended-before-started"],
)
def test_invalid_requests_are_rejected_with_field_violations(
    ingest: ingest_pb2_grpc.IngestServiceStub, mutate: object, field: str
) -> None:
    request = conversation()
    mutate(request)  # type: ignore[operator]
    err = call_error(ingest.EndConversation, request)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = field_violations(err)
    assert field in violations, violations
    # Nothing was stored: the id is unknown afterwards.
    if request.conversation_id and " " not in request.conversation_id and len(
        request.conversation_id
    ) <= 128:
        missing = call_error(
            ingest.GetConversationStatus,
            E.GetConversationStatusRequest(conversation_id=request.conversation_id),
        )
        assert missing.code() == grpc.StatusCode.NOT_FOUND


def test_over_5000_turns_is_invalid_argument(ingest: ingest_pb2_grpc.IngestServiceStub) -> None:
    request = conversation(turns=[("user", "hi"), ("assistant", "hello")] * 2501)
    err = call_error(ingest.EndConversation, request)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "conversation_log" in field_violations(err)


def test_5000_turns_is_accepted(ingest: ingest_pb2_grpc.IngestServiceStub) -> None:
    request = conversation(turns=[("user", "hi"), ("assistant", "hello")] * 2500)
    reply = ingest.EndConversation(request, metadata=bearer(ROBOT_SCOPES), timeout=10)
    assert reply.status == E.CONVERSATION_STATUS_PENDING


def test_over_4_mib_is_resource_exhausted(ingest: ingest_pb2_grpc.IngestServiceStub) -> None:
    request = conversation(turns=[("user", "a" * (1024 * 1024))] * 5)
    err = call_error(ingest.EndConversation, request)
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_same_id_different_content_is_already_exists(
    ingest: ingest_pb2_grpc.IngestServiceStub,
) -> None:
    request = conversation()
    ingest.EndConversation(request, metadata=bearer(ROBOT_SCOPES), timeout=5)
    request.conversation_log[0].content = "something else entirely"
    err = call_error(ingest.EndConversation, request)
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "something else" not in (err.details() or "")


def test_unknown_conversation_is_not_found(ingest: ingest_pb2_grpc.IngestServiceStub) -> None:
    err = call_error(
        ingest.GetConversationStatus, E.GetConversationStatusRequest(conversation_id=new_id("c"))
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    "metadata",
    [
        (),
        (("authorization", "Bearer not-a-jwt"),),
        (("authorization", "Basic dXNlcjpwYXNz"),),
        bearer(ROBOT_SCOPES, ttl_s=-60),
        bearer(ROBOT_SCOPES, secret="some-other-secret-that-is-long-enough"),
    ],
    ids=["none", "garbage", "basic", "expired", "wrong-secret"],
)
def test_missing_or_invalid_token_is_unauthenticated(
    ingest: ingest_pb2_grpc.IngestServiceStub,
    friendship: friendship_pb2_grpc.FriendshipServiceStub,
    metadata: tuple[tuple[str, str], ...],
) -> None:
    err = call_error(ingest.EndConversation, conversation(), metadata)
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    err = call_error(
        friendship.GetLevel, friendship_pb2.GetLevelRequest(user_id="u1"), metadata
    )
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED


def test_token_without_scope_is_permission_denied(
    ingest: ingest_pb2_grpc.IngestServiceStub,
    friendship: friendship_pb2_grpc.FriendshipServiceStub,
) -> None:
    err = call_error(ingest.EndConversation, conversation(), bearer(["ingest:read"]))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    err = call_error(
        ingest.GetConversationStatus,
        E.GetConversationStatusRequest(conversation_id="c1"),
        bearer(["ingest:write"]),
    )
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    err = call_error(
        friendship.GetLevel, friendship_pb2.GetLevelRequest(user_id="u1"), bearer(ROBOT_SCOPES)
    )
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED


def test_internal_methods_need_the_internal_scope(stack: Stack) -> None:
    from spring.friendship.v1 import friendship_internal_pb2, friendship_internal_pb2_grpc
    from spring.ingest.v1 import ingest_internal_pb2, ingest_internal_pb2_grpc

    with grpc.insecure_channel(stack.ingest.target) as channel:
        stub = ingest_internal_pb2_grpc.IngestInternalServiceStub(channel)
        err = call_error(
            stub.ClaimConversation,
            ingest_internal_pb2.ClaimConversationRequest(conversation_id="c1", lease_seconds=5),
            bearer(ROBOT_SCOPES + READER_SCOPES),
        )
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    with grpc.insecure_channel(stack.friendship.target) as channel:
        fstub = friendship_internal_pb2_grpc.FriendshipInternalServiceStub(channel)
        err = call_error(
            fstub.ApplyConversation,
            friendship_internal_pb2.ApplyConversationRequest(conversation_id="c1", user_id="u"),
            bearer(READER_SCOPES),
        )
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED


def test_health_needs_no_token_and_reflection_needs_a_valid_one(stack: Stack) -> None:
    for service in stack.services:
        with grpc.insecure_channel(service.target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            reply = health.Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING

            reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
            request = reflection_pb2.ServerReflectionRequest(list_services="")
            with pytest.raises(grpc.RpcError) as info:
                list(reflection.ServerReflectionInfo(iter([request]), timeout=5))
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            replies = list(
                reflection.ServerReflectionInfo(
                    iter([request]), metadata=bearer(["some:other"]), timeout=5
                )
            )
            names = {s.name for s in replies[0].list_services_response.service}
            assert any(name.startswith("spring.") for name in names), names


def settle_pools() -> None:
    """The proxy cut every pooled connection of every service. A connection used within the
    last DB_PING_AFTER_IDLE_S (1 s) is not pinged before use and would fail its next unit of
    work once (UNAVAILABLE; callers retry): past that second, each service's next checkout
    pings and replaces it, so the tests after this one find a healthy stack."""
    time.sleep(1.2)


@pytest.mark.parametrize("mode", ["refuse", "blackhole"])
def test_database_unreachable_is_unavailable_within_2s_and_recovers(
    ingest: ingest_pb2_grpc.IngestServiceStub,
    friendship: friendship_pb2_grpc.FriendshipServiceStub,
    db_proxy: TcpProxy,
    mode: str,
) -> None:
    db_proxy.set_mode(mode)  # type: ignore[arg-type]
    try:
        # The 2 s gRPC deadline is the contract: a hang would be DEADLINE_EXCEEDED.
        with pytest.raises(grpc.RpcError) as info:
            ingest.EndConversation(conversation(), metadata=bearer(ROBOT_SCOPES), timeout=2)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        with pytest.raises(grpc.RpcError) as info:
            friendship.GetLevel(
                friendship_pb2.GetLevelRequest(user_id="u1"),
                metadata=bearer(READER_SCOPES),
                timeout=2,
            )
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        db_proxy.set_mode("forward")
        settle_pools()

    deadline = time.monotonic() + 20
    while True:
        try:
            reply = ingest.EndConversation(conversation(), metadata=bearer(ROBOT_SCOPES), timeout=5)
            assert reply.status == E.CONVERSATION_STATUS_PENDING
            break
        except grpc.RpcError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_a_cached_level_gives_way_to_unavailable_once_the_database_stops_answering(
    friendship: friendship_pb2_grpc.FriendshipServiceStub, db_proxy: TcpProxy
) -> None:
    """GetLevel answers from its cache only while the cache's listener is connected: a
    database that drops its connections and stops answering turns even a cached user's
    GetLevel into UNAVAILABLE, never a hang and never a stale answer for long. (A listener
    connection that goes silent without closing: tests/integration/friendship.)"""
    user = new_id("cached")
    request = friendship_pb2.GetLevelRequest(user_id=user)
    for _ in range(2):  # the second answer comes from the cache
        friendship.GetLevel(request, metadata=bearer(READER_SCOPES), timeout=2)
    db_proxy.set_mode("blackhole")
    try:
        deadline = time.monotonic() + 5
        code = grpc.StatusCode.OK
        while code is grpc.StatusCode.OK and time.monotonic() < deadline:
            try:
                friendship.GetLevel(request, metadata=bearer(READER_SCOPES), timeout=2)
                time.sleep(0.1)
            except grpc.RpcError as err:
                code = err.code()
        assert code is grpc.StatusCode.UNAVAILABLE
    finally:
        db_proxy.set_mode("forward")
        settle_pools()
    deadline = time.monotonic() + 20
    while True:
        try:
            reply = friendship.GetLevel(request, metadata=bearer(READER_SCOPES), timeout=5)
            assert reply.user_id == user
            break
        except grpc.RpcError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
