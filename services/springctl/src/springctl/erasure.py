"""`springctl erase-user USER_ID`: a user's data removed from the three schemas and Mem0.

Order, upstream first:
1. ingest (IngestInternalService.DeleteUserData): the conversations (raw and normalized
   logs, statuses, analyses) and their outbox rows go, so no new work of this user's past
   starts: a queued message finds nothing to claim (NOT_FOUND) and ends dead-lettered with
   only its id. Ingest answers the sha256 of every erased conversation id (tombstones).
2. analyzer (AnalyzerService.DeleteUserData): analyses of those conversations, the user's
   local memories, then the memory API's records (Mem0 delete-all-by-user). The tombstones
   stop a conversation that was already claimed from storing an analysis or a memory.
3. friendship (FriendshipInternalService.DeleteUserData): ledger, status, topic metrics,
   level events, rule results; its tombstones make ApplyConversation refuse
   (FAILED_PRECONDITION) a conversation still in flight.
Downstream first would let an in-flight conversation recreate what was just erased.

Every step is idempotent: a repeat removes nothing, reports zeros, and passes on the same
tombstones. If a step fails, the command stops there (exit 1) and is simply run again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import grpc

from spring.analyzer.v1 import analyzer_pb2, analyzer_pb2_grpc
from spring.friendship.v1 import friendship_internal_pb2, friendship_internal_pb2_grpc
from spring.ingest.v1 import ingest_internal_pb2, ingest_internal_pb2_grpc

RPC_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Targets:
    ingest: str
    analyzer: str
    friendship: str
    token: str


class StepFailed(Exception):
    def __init__(self, step: str, code: str, details: str, report: dict[str, Any]) -> None:
        super().__init__(f"{step}: {code}: {details}")
        self.step = step
        self.report = report


def _call(step: str, method: Any, request: Any, token: str, report: dict[str, Any]) -> Any:
    try:
        return method(
            request, metadata=(("authorization", f"Bearer {token}"),), timeout=RPC_TIMEOUT_S
        )
    except grpc.RpcError as err:
        call: Any = err
        raise StepFailed(step, call.code().name, call.details() or "", report) from err


def erase_user(targets: Targets, user_id: str) -> dict[str, Any]:
    """Runs the three steps in order; returns what each removed (rows by table)."""
    report: dict[str, Any] = {"user_id": user_id}
    with grpc.insecure_channel(targets.ingest) as channel:
        stub = ingest_internal_pb2_grpc.IngestInternalServiceStub(channel)
        ingest = _call(
            "ingest", stub.DeleteUserData,
            ingest_internal_pb2.DeleteUserDataRequest(user_id=user_id), targets.token, report,
        )  # fmt: skip
    hashes = list(ingest.erased_conversation_hashes)
    report["ingest"] = dict(ingest.deleted)
    report["erased_conversations"] = len(hashes)
    with grpc.insecure_channel(targets.analyzer) as channel:
        analyzer_stub = analyzer_pb2_grpc.AnalyzerServiceStub(channel)
        analyzer = _call(
            "analyzer", analyzer_stub.DeleteUserData,
            analyzer_pb2.DeleteUserDataRequest(user_id=user_id, erased_conversation_hashes=hashes),
            targets.token, report,
        )  # fmt: skip
    report["analyzer"] = dict(analyzer.deleted)
    with grpc.insecure_channel(targets.friendship) as channel:
        friendship_stub = friendship_internal_pb2_grpc.FriendshipInternalServiceStub(channel)
        friendship = _call(
            "friendship", friendship_stub.DeleteUserData,
            friendship_internal_pb2.DeleteUserDataRequest(
                user_id=user_id, erased_conversation_hashes=hashes
            ),
            targets.token, report,
        )  # fmt: skip
    report["friendship"] = dict(friendship.deleted)
    return report


def as_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=True)
