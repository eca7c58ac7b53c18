"""AnalyzerService.DeleteUserData over real gRPC, on PostgreSQL, against a fake Mem0:
scope, validation, counts, Mem0 delete-all-by-user, tombstones, idempotency."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from analyzer.adapters.mem0_api import Mem0Memories
from analyzer.adapters.repository import SqlAlchemyAnalyzerRepository
from analyzer.analysis import ConversationAnalyzer
from analyzer.config import Settings
from analyzer.domain.breaker import CircuitBreaker
from analyzer.domain.errors import ConversationErased
from analyzer.domain.model import Analysis, AnalysisSource, Emotion, Fact
from analyzer.entrypoints.worker import create_grpc_server
from servicekit.erasure import erasure_hash
from spring.analyzer.v1 import analyzer_pb2, analyzer_pb2_grpc
from tests.support.auth import INTERNAL_SCOPES, TEST_JWT_SECRET, bearer
from tests.support.fake_groq import Behavior
from tests.support.fake_mem0 import FakeMem0

INTERNAL = bearer(INTERNAL_SCOPES)
ANALYSIS = Analysis(3, 1, Emotion.HAPPY, 2, AnalysisSource.LOCAL)


@pytest.fixture(scope="module")
def mem0() -> Iterator[FakeMem0]:
    fake = FakeMem0().start()
    yield fake
    fake.close()


@pytest.fixture
async def stub(
    repository: SqlAlchemyAnalyzerRepository, mem0: FakeMem0
) -> AsyncIterator[analyzer_pb2_grpc.AnalyzerServiceStub]:
    mem0.reset()
    settings = Settings(auth_jwt_secret=TEST_JWT_SECRET, auth_jwt_public_key=None, grpc_port=0)
    memory_api = Mem0Memories(
        api_key=mem0.api_key, base_url=mem0.url, timeout_s=5, poll_initial_s=0.05,
        poll_max_s=0.1, breaker=CircuitBreaker(5, 30),
    )  # fmt: skip
    server = create_grpc_server(
        settings, ConversationAnalyzer(repository), repository, memory_api
    )
    port = await server.start("127.0.0.1:0")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield analyzer_pb2_grpc.AnalyzerServiceStub(channel)
    await server.stop(0.5)
    await memory_api.close()


def _ids() -> tuple[str, str, str]:
    tag = uuid.uuid4().hex[:10]
    return f"erase-user-{tag}", f"conv-a-{tag}", f"conv-b-{tag}"


async def test_erasure_removes_analyses_memories_and_the_memory_apis_records(
    stub: analyzer_pb2_grpc.AnalyzerServiceStub,
    repository: SqlAlchemyAnalyzerRepository,
    mem0: FakeMem0,
) -> None:
    user_id, first, second = _ids()
    for conversation_id in (first, second):
        await repository.save_first(conversation_id, ANALYSIS)
    facts = [Fact(f"likes {n}", erasure_hash(f"{user_id}-{n}")) for n in ("cats", "kites")]
    assert await repository.remember(user_id, first, facts) == 2
    mem0.memories_by_user[user_id] = 4
    request = analyzer_pb2.DeleteUserDataRequest(
        user_id=user_id, erased_conversation_hashes=[erasure_hash(first), erasure_hash(second)]
    )

    reply = await stub.DeleteUserData(request, metadata=INTERNAL)

    assert reply.user_id == user_id
    assert dict(reply.deleted) == {"analyses": 2, "memories": 2, "memory_api": 1}
    assert user_id not in mem0.memories_by_user
    (delete,) = [r for r in mem0.requests if r.part == "delete_all"]
    assert delete.method == "DELETE" and delete.path == f"/v1/memories/?user_id={user_id}"

    again = await stub.DeleteUserData(request, metadata=INTERNAL)
    assert dict(again.deleted) == {"analyses": 0, "memories": 0, "memory_api": 1}


async def test_a_conversation_in_flight_stores_nothing_after_erasure(
    stub: analyzer_pb2_grpc.AnalyzerServiceStub, repository: SqlAlchemyAnalyzerRepository
) -> None:
    user_id, in_flight, _ = _ids()
    await stub.DeleteUserData(
        analyzer_pb2.DeleteUserDataRequest(
            user_id=user_id, erased_conversation_hashes=[erasure_hash(in_flight)]
        ),
        metadata=INTERNAL,
    )
    with pytest.raises(ConversationErased):
        await repository.get(in_flight)
    with pytest.raises(ConversationErased):
        await repository.save_first(in_flight, ANALYSIS)
    with pytest.raises(ConversationErased):
        await repository.remember(user_id, in_flight, [Fact("likes owls", "f" * 64)])
    reply = await stub.DeleteUserData(
        analyzer_pb2.DeleteUserDataRequest(user_id=user_id), metadata=INTERNAL
    )
    assert dict(reply.deleted) == {"analyses": 0, "memories": 0, "memory_api": 1}


async def test_a_failing_memory_api_fails_the_call_and_a_rerun_completes(
    stub: analyzer_pb2_grpc.AnalyzerServiceStub, mem0: FakeMem0
) -> None:
    user_id, _, _ = _ids()
    mem0.memories_by_user[user_id] = 1
    mem0.when(Behavior(kind="status", status=403), part="delete_all")
    request = analyzer_pb2.DeleteUserDataRequest(user_id=user_id)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.DeleteUserData(request, metadata=INTERNAL)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert user_id in mem0.memories_by_user
    mem0.reset()
    reply = await stub.DeleteUserData(request, metadata=INTERNAL)
    assert reply.deleted["memory_api"] == 1 and user_id not in mem0.memories_by_user


async def test_erasure_needs_the_internal_scope(
    stub: analyzer_pb2_grpc.AnalyzerServiceStub,
) -> None:
    request = analyzer_pb2.DeleteUserDataRequest(user_id="someone")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.DeleteUserData(request, metadata=bearer(["friendship:read"]))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.DeleteUserData(request)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    ("user_id", "hashes", "field"),
    [
        ("", [], "user_id"),
        ("bad id", [], "user_id"),
        ("ok-user", ["not-a-hash"], "erased_conversation_hashes[0]"),
        ("ok-user", [erasure_hash("x").upper()], "erased_conversation_hashes[0]"),
    ],
)
async def test_bad_requests_are_invalid_argument(
    stub: analyzer_pb2_grpc.AnalyzerServiceStub, user_id: str, hashes: list[str], field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.DeleteUserData(
            analyzer_pb2.DeleteUserDataRequest(user_id=user_id, erased_conversation_hashes=hashes),
            metadata=INTERNAL,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = [
        v.field
        for detail in rpc_status.from_call(err.value).details  # type: ignore[union-attr]
        if detail.Unpack(bad := error_details_pb2.BadRequest())
        for v in bad.field_violations
    ]
    assert field in violations
