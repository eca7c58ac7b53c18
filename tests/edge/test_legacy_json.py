"""The legacy firmware's JSON through the real Envoy: old body in, 200 with the id out.

Plain HTTP (httpx) against the `edge` Envoy, which carries the cluster's routes exactly.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.edge.conftest import Edge
from tests.support.auth import READER_SCOPES, ROBOT_SCOPES, bearer
from tests.support.env import new_id

pytestmark = pytest.mark.e2e
TERMINAL = {
    "CONVERSATION_STATUS_PROCESSED",
    "CONVERSATION_STATUS_SKIPPED",
    "CONVERSATION_STATUS_FAILED",
}


def auth(scopes: list[str] = ROBOT_SCOPES) -> dict[str, str]:
    return dict(bearer(scopes))


def old_body(conversation_id: str | None = None) -> dict[str, Any]:
    """Exactly what the old firmware sends: four fields, turns of {role, content}."""
    return {
        "conversation_id": conversation_id or new_id("legacy"),
        "user_id": new_id("legacy-user"),
        "bot_id": "bot-explorer",
        "conversation_log": [
            {"role": "user", "content": "Hi robot, what do whales eat?"},
            {"role": "bot", "content": "Mostly tiny krill, tons of them every day."},
            {"role": "user", "content": "That is amazing! Are they fish?"},
            {"role": "assistant", "content": "No, whales are mammals, like us."},
        ],
    }


def wait_terminal_json(edge: Edge, conversation_id: str, timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        reply = httpx.get(f"{edge.url}/v1/conversations/{conversation_id}", headers=auth())
        assert reply.status_code == 200, reply.text
        body: dict[str, Any] = reply.json()
        if body["status"] in TERMINAL or time.monotonic() > deadline:
            return body
        time.sleep(0.3)


def test_old_body_is_accepted_with_its_id_and_processed(edge: Edge) -> None:
    body = old_body()
    reply = httpx.post(f"{edge.url}/v1/conversations/end", json=body, headers=auth())

    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    answer = reply.json()
    assert answer["conversation_id"] == body["conversation_id"]  # snake_case, as the old API
    assert answer["status"] == "CONVERSATION_STATUS_PENDING"
    assert answer["duplicate"] is False

    status = wait_terminal_json(edge, body["conversation_id"])
    assert status["status"] == "CONVERSATION_STATUS_PROCESSED"
    assert status["analysis"]["total_turns"] == 4
    assert status["analysis"]["user_initiated_questions"] == 2
    assert status["score_change"] > 0

    again = httpx.post(f"{edge.url}/v1/conversations/end", json=body, headers=auth())
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert again.json()["status"] == "CONVERSATION_STATUS_PROCESSED"


def test_lower_camel_names_and_unknown_fields_are_accepted(edge: Edge) -> None:
    """Firmware variants: lowerCamel names, and fields this API never had, are ignored."""
    body = old_body()
    camel = {
        "conversationId": body["conversation_id"],
        "userId": body["user_id"],
        "botId": body["bot_id"],
        "conversationLog": [{**turn, "timestamp": 1700000000} for turn in body["conversation_log"]],
        "firmware_version": "2.3.1",
        "device": {"serial": "R-0042"},
    }
    reply = httpx.post(f"{edge.url}/v1/conversations/end", json=camel, headers=auth())
    assert reply.status_code == 200, reply.text
    assert reply.json()["conversation_id"] == body["conversation_id"]


def test_validation_errors_are_400_with_field_violations(edge: Edge) -> None:
    body = old_body("not a valid id!")
    body["conversation_log"] = []
    reply = httpx.post(f"{edge.url}/v1/conversations/end", json=body, headers=auth())

    assert reply.status_code == 400, reply.text
    status = reply.json()  # google.rpc.Status as JSON
    assert status["code"] == 3  # INVALID_ARGUMENT
    (details,) = status["details"]
    assert details["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    fields = {v["field"] for v in details["field_violations"]}
    assert fields == {"conversation_id", "conversation_log"}
    assert "not a valid id" not in reply.text  # errors describe, they do not echo input


def test_json_that_is_not_a_request_is_400(edge: Edge) -> None:
    reply = httpx.post(
        f"{edge.url}/v1/conversations/end",
        content=b'{"conversation_log": "oops"',
        headers={**auth(), "content-type": "application/json"},
    )
    assert reply.status_code == 400


def test_authentication_and_scopes_stay_with_the_service(edge: Edge) -> None:
    url = f"{edge.url}/v1/conversations/end"
    assert httpx.post(url, json=old_body()).status_code == 401
    bad = {"authorization": "Bearer not-a-jwt"}
    assert httpx.post(url, json=old_body(), headers=bad).status_code == 401
    # A token without ingest:write: the service says PERMISSION_DENIED -> 403.
    assert httpx.post(url, json=old_body(), headers=auth(READER_SCOPES)).status_code == 403


def test_unknown_conversation_is_404_from_the_service(edge: Edge) -> None:
    reply = httpx.get(f"{edge.url}/v1/conversations/{new_id('missing')}", headers=auth())
    assert reply.status_code == 404
    assert reply.json()["code"] == 5  # NOT_FOUND, a google.rpc.Status body


@pytest.mark.parametrize(
    "path",
    [
        "/spring.ingest.v1.IngestInternalService/ClaimConversation",
        "/spring.friendship.v1.FriendshipService/GetLevel",
        "/spring.friendship.v1.FriendshipInternalService/ApplyConversation",
        "/spring.analyzer.v1.AnalyzerService/AnalyzeConversation",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "/grpc.health.v1.Health/Check",
        "/v1/conversations",
        "/metrics",
        "/",
    ],
)
def test_nothing_internal_is_routed(edge: Edge, path: str) -> None:
    reply = httpx.post(
        f"{edge.url}{path}",
        content=b"\x00\x00\x00\x00\x00",
        headers={**auth(["internal", *ROBOT_SCOPES]), "content-type": "application/grpc-web+proto"},
    )
    assert reply.status_code == 404
    assert reply.headers["grpc-status"] == "12"  # UNIMPLEMENTED for gRPC(-web) clients
    plain = httpx.get(f"{edge.url}{path}", headers=auth(["internal"]))
    assert plain.status_code == 404


def test_json_over_the_edge_limit_is_413_and_over_4_mib_is_resource_exhausted(edge: Edge) -> None:
    url = f"{edge.url}/v1/conversations/end"
    headers = {**auth(), "content-type": "application/json"}

    def body_with(size: int) -> bytes:
        text = "a" * size
        return (
            b'{"conversation_id": "big-1", "user_id": "u-1", "bot_id": "b-1", '
            b'"conversation_log": [{"role": "user", "content": "' + text.encode() + b'"}]}'
        )

    too_big = httpx.post(url, content=body_with(5 * 1024 * 1024 + 1), headers=headers, timeout=30)
    assert too_big.status_code == 413
    over_contract = httpx.post(url, content=body_with(4 * 1024 * 1024), headers=headers, timeout=30)
    assert over_contract.status_code == 429
    assert over_contract.json()["code"] == 8  # RESOURCE_EXHAUSTED from ingest


def test_cors_preflight_for_an_allowed_origin_only(edge: Edge, page_origin: str) -> None:
    url = f"{edge.url}/spring.ingest.v1.IngestService/EndConversation"
    asked = {
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization,content-type,x-grpc-web,x-user-agent",
    }
    ok = httpx.options(url, headers={**asked, "origin": page_origin})
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == page_origin
    allowed = {h.strip() for h in ok.headers["access-control-allow-headers"].split(",")}
    wanted = {"authorization", "content-type", "x-grpc-web", "x-user-agent", "grpc-timeout"}
    assert wanted <= allowed

    other = httpx.options(url, headers={**asked, "origin": "http://evil.example"})
    assert "access-control-allow-origin" not in other.headers

    # The real call's answer exposes the gRPC status headers to the page's script.
    reply = httpx.post(
        url,
        content=b"\x00\x00\x00\x00\x00",
        headers={"origin": page_origin, "content-type": "application/grpc-web+proto"},
    )
    exposed = {h.strip() for h in reply.headers["access-control-expose-headers"].split(",")}
    assert exposed == {"grpc-status", "grpc-message", "grpc-status-details-bin"}
    assert reply.headers["grpc-status"] == "16"  # no token: UNAUTHENTICATED, from ingest


def test_readiness_on_the_admin_port(edge: Edge) -> None:
    ready = httpx.get(f"{edge.admin_url}/ready")
    assert ready.status_code == 200 and ready.text.strip() == "LIVE"
