"""Plain gRPC through the edge (the same routes as gRPC-web), and the per-client rate limit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from spring.friendship.v1 import friendship_pb2, friendship_pb2_grpc
from spring.ingest.v1 import (
    ingest_internal_pb2,
    ingest_internal_pb2_grpc,
    ingest_pb2,
    ingest_pb2_grpc,
)
from springctl.devrun import EdgeConfig
from tests.edge.conftest import Edge, start_edge, stop_edge
from tests.support.auth import INTERNAL_SCOPES, READER_SCOPES, ROBOT_SCOPES, bearer
from tests.support.conversations import conversation
from tests.support.env import free_port

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def channel(edge: Edge) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(edge.url.removeprefix("http://")) as ch:
        yield ch


def test_public_methods_work_over_grpc_with_the_callers_token(channel: grpc.Channel) -> None:
    ingest = ingest_pb2_grpc.IngestServiceStub(channel)
    request = conversation()
    reply = ingest.EndConversation(request, metadata=bearer(ROBOT_SCOPES), timeout=5)
    assert reply.conversation_id == request.conversation_id
    status = ingest.GetConversationStatus(
        ingest_pb2.GetConversationStatusRequest(conversation_id=request.conversation_id),
        metadata=bearer(ROBOT_SCOPES),
        timeout=5,
    )
    assert status.conversation_id == request.conversation_id
    with pytest.raises(grpc.RpcError) as missing:
        ingest.EndConversation(request, timeout=5)
    assert missing.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_internal_friendship_and_reflection_are_unimplemented_at_the_edge(
    channel: grpc.Channel,
) -> None:
    token = bearer([*INTERNAL_SCOPES, *READER_SCOPES])
    calls = [
        lambda: ingest_internal_pb2_grpc.IngestInternalServiceStub(channel).ClaimConversation(
            ingest_internal_pb2.ClaimConversationRequest(),
            metadata=token,
            timeout=5,
        ),
        lambda: friendship_pb2_grpc.FriendshipServiceStub(channel).GetLevel(
            friendship_pb2.GetLevelRequest(user_id="u-1"), metadata=token, timeout=5
        ),
        lambda: next(
            iter(
                reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
                    iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                    metadata=token,
                    timeout=5,
                )
            )
        ),
    ]
    for call in calls:
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


@pytest.fixture()
def lone_edge(tmp_path: Path) -> Iterator[Edge]:
    """An Envoy of its own (nothing behind it): the rate limit test drains its buckets."""
    cfg = EdgeConfig(
        edge_port=free_port(),
        admin_port=free_port(),
        ingest=("127.0.0.1", free_port()),
        allowed_origins=("http://127.0.0.1:1",),
    )
    started = start_edge(cfg, tmp_path, "lone-edge")
    yield started
    stop_edge(started)


def test_per_client_rate_limit(lone_edge: Edge) -> None:
    replies = []
    with httpx.Client() as client:
        for _ in range(80):
            replies.append(client.get(f"{lone_edge.url}/nothing"))
    codes = [r.status_code for r in replies]
    # A burst of 40, refilled at 20/s: the first ones pass (404: nothing routed), then 429.
    assert codes[:30] == [404] * 30
    assert codes.count(429) >= 20, codes
    limited = next(r for r in replies if r.status_code == 429)
    assert limited.headers["retry-after"] == "1"
    # Over the limit, gRPC clients get RESOURCE_EXHAUSTED, as gRPC says for quota.
    codes_seen = set()
    with grpc.insecure_channel(lone_edge.url.removeprefix("http://")) as channel:
        claim = ingest_internal_pb2_grpc.IngestInternalServiceStub(channel).ClaimConversation
        for _ in range(80):
            try:
                claim(ingest_internal_pb2.ClaimConversationRequest(), timeout=5)
            except grpc.RpcError as err:
                codes_seen.add(err.code())
    # (The odd call that finds a refilled token answers UNIMPLEMENTED: nothing routed there.)
    assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes_seen, codes_seen
    assert codes_seen <= {grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNIMPLEMENTED}
    with httpx.Client() as client:
        statuses = [
            client.post(
                f"{lone_edge.url}/spring.ingest.v1.IngestInternalService/ClaimConversation",
                content=b"\x00\x00\x00\x00\x00",
                headers={"content-type": "application/grpc-web+proto"},
            )
            for _ in range(80)
        ]
    # gRPC-web: HTTP 429 (Envoy's gRPC-web filter reports it as UNAVAILABLE, retryable).
    seen = {(r.status_code, r.headers.get("grpc-status")) for r in statuses}
    assert (429, "14") in seen and seen <= {(429, "14"), (404, "12")}, seen
    stats = httpx.get(f"{lone_edge.admin_url}/stats?filter=rate_limit&format=json").json()
    counters = {s["name"]: s.get("value") for s in stats["stats"] if "name" in s}
    assert any(n.endswith("rate_limited") and v for n, v in counters.items()), json.dumps(counters)
