"""The robot simulator page in headless Debian Chromium, on another origin than Envoy.

The page (served by `springctl.devrun.serve_page`, as `make run` serves it) sends a
conversation over gRPC-web through Envoy (`dev_edge`, the `make run` config with its dev-only
GetLevel route), watches it reach PROCESSED and shows the person's friendship level.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.edge.conftest import CHROMIUM, Edge, run_node
from tests.support.auth import ROBOT_SCOPES, bearer

pytestmark = pytest.mark.e2e


def test_simulator_page_sends_and_shows_status_and_level(
    page_server: str, dev_edge: Edge, page_origin: str, tmp_path: Path
) -> None:
    assert CHROMIUM.exists(), "Debian chromium is missing: run `make chromium`"
    assert not dev_edge.url.startswith(page_origin)  # another origin: CORS is exercised
    config = httpx.get(f"{page_server}config.json").json()
    assert config["edgeUrl"] == dev_edge.url

    scopes = [*ROBOT_SCOPES, "friendship:read"]
    token = dict(bearer(scopes))["authorization"].removeprefix("Bearer ")
    done = run_node("browser.mjs", page_server, token, str(tmp_path), timeout_s=180)
    assert done.returncode == 0, done.stderr + done.stdout
    out = json.loads(done.stdout.strip().splitlines()[-1])

    assert out["status"] == "PROCESSED"
    assert out["conversationId"].startswith("sim-")
    assert out["scoreChange"].startswith("score change +")
    assert out["level"] == "STRANGER"
    assert out["levelScore"].startswith("score ") and "next level at 100" in out["levelScore"]
    assert out["edgeRequests"] and all(r["origin"] == page_origin for r in out["edgeRequests"])
    assert all(r["url"].startswith(dev_edge.url) for r in out["edgeRequests"])

    assert out["noTokenError"].startswith("UNAUTHENTICATED")
    assert out["invalidError"].startswith("INVALID_ARGUMENT")
    assert "conversation_log:" in out["invalidError"]
    assert (tmp_path / "simulator-processed.png").stat().st_size > 10_000
    # Only the failures we caused show up in the console (the browser logs failed fetches).
    assert all("401" in e or "400" in e or "grpc" in e.lower() for e in out["consoleErrors"]), out


def grpc_web_status(reply: httpx.Response) -> str:
    """grpc-status from the headers (trailers-only answer) or the trailer frame in the body."""
    if "grpc-status" in reply.headers:
        return reply.headers["grpc-status"]
    trailer = reply.content.rsplit(b"grpc-status:", 1)[1]
    return trailer.split(b"\r\n", 1)[0].strip().decode()


def test_dev_edge_serves_get_level_but_the_cluster_edge_does_not(
    dev_edge: Edge, edge: Edge
) -> None:
    url = "/spring.friendship.v1.FriendshipService/GetLevel"
    headers = {"content-type": "application/grpc-web+proto", **dict(bearer(["friendship:read"]))}
    body = b"\x00\x00\x00\x00\x05\x0a\x03u-1"  # GetLevelRequest{user_id: "u-1"}
    assert grpc_web_status(httpx.post(dev_edge.url + url, content=body, headers=headers)) == "0"
    assert httpx.post(edge.url + url, content=body, headers=headers).status_code == 404
    # The service, not the edge, checks the scope.
    robot = {**headers, **dict(bearer(ROBOT_SCOPES))}
    assert grpc_web_status(httpx.post(dev_edge.url + url, content=body, headers=robot)) == "7"
