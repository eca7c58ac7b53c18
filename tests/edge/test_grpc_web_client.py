"""The generated TypeScript/JavaScript client (connect-web, gRPC-web) in Node, through Envoy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.edge.conftest import Edge, run_node
from tests.support.auth import ROBOT_SCOPES, bearer

pytestmark = pytest.mark.e2e


def test_grpc_web_client_sends_and_reads_status(edge: Edge, web_built: Path) -> None:
    token = dict(bearer(ROBOT_SCOPES))["authorization"].removeprefix("Bearer ")
    done = run_node("grpc_web_client.mjs", edge.url, token)
    assert done.returncode == 0, done.stderr + done.stdout
    out = json.loads(done.stdout.strip().splitlines()[-1])

    assert out["accepted"]["ok"] and out["accepted"]["status"] == "PENDING"
    assert out["accepted"]["duplicate"] is False
    assert out["again"] == {"ok": True, "status": out["again"]["status"], "duplicate": True}
    assert out["final"]["ok"] and out["final"]["status"] == "PROCESSED"
    assert out["final"]["totalTurns"] == 4
    assert out["final"]["scoreChange"] > 0

    # Errors come back as gRPC statuses with their details, across gRPC-web.
    assert out["invalid"]["ok"] is False
    assert out["invalid"]["code"] == "INVALID_ARGUMENT"
    fields = {v["field"] for v in out["invalid"]["violations"]}
    assert {"conversation_id", "user_id", "conversation_log"} <= fields
    assert out["unauthenticated"]["code"] == "UNAUTHENTICATED"
    assert out["unknown"]["code"] == "NOT_FOUND"
    # The cluster's edge routes no friendship method.
    assert out["friendship"]["code"] == "UNIMPLEMENTED"
