"""DiagnosticsService on the shared server stack: real gRPC on port 0, real tokens."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from servicekit.auth import TokenVerifier
from servicekit.server import GrpcServer
from spring.friendship.v1 import friendship_pb2
from spring.ops.v1 import diagnostics_pb2, diagnostics_pb2_grpc
from tests.support.auth import INTERNAL_SCOPES, READER_SCOPES, TEST_JWT_SECRET, bearer

SERVICE = friendship_pb2.DESCRIPTOR.services_by_name["FriendshipService"].full_name


SPRINGCTL = Path(sys.executable).with_name("springctl")


@pytest.fixture
async def target() -> AsyncIterator[str]:
    server = GrpcServer(
        service_names=[SERVICE],
        scopes_by_method={},
        verifier=TokenVerifier(secret=TEST_JWT_SECRET),
        max_message_bytes=1 << 20,
        malloc_trim_interval_s=0.05,
    )
    port = await server.start("127.0.0.1:0")
    yield f"127.0.0.1:{port}"
    await server.stop(0)


@pytest.fixture
async def stub(target: str) -> AsyncIterator[diagnostics_pb2_grpc.DiagnosticsServiceStub]:
    async with grpc.aio.insecure_channel(target) as channel:
        yield diagnostics_pb2_grpc.DiagnosticsServiceStub(channel)


async def test_report_has_memory_malloc_objects_and_work(
    stub: diagnostics_pb2_grpc.DiagnosticsServiceStub,
) -> None:
    reply = await stub.GetDiagnostics(
        diagnostics_pb2.GetDiagnosticsRequest(trim=True), metadata=bearer(INTERNAL_SCOPES)
    )
    report = json.loads(reply.report_json)
    assert reply.service == "friendship"
    assert reply.rss_bytes == report["memory"]["rss_bytes"] > 10 << 20
    assert report["malloc"]["in_use_bytes"] > 0
    assert report["trim"]["rss_after_bytes"] > 0
    assert report["objects"]["tracked"] > 1000
    assert report["work"]["threads"] >= 1
    assert "python_heap" not in report  # no sampling unless asked


async def test_heap_growth_names_the_allocating_line(
    stub: diagnostics_pb2_grpc.DiagnosticsServiceStub,
) -> None:
    hoard: list[bytes] = []

    async def allocate() -> None:
        await asyncio.sleep(0.2)
        hoard.extend(bytes(1000) + bytes([i % 256]) for i in range(3000))

    task = asyncio.create_task(allocate())
    reply = await stub.GetDiagnostics(
        diagnostics_pb2.GetDiagnosticsRequest(heap_sample_seconds=1, top=5),
        metadata=bearer(INTERNAL_SCOPES),
    )
    await task
    top = json.loads(reply.report_json)["python_heap"]["top_growth"]
    assert top[0]["site"].endswith("test_diagnostics.py:" + str(_line_of("hoard.extend")))
    assert top[0]["size_diff_bytes"] > 3_000_000
    assert len(hoard) == 3000


async def test_needs_the_internal_scope_and_sane_arguments(
    stub: diagnostics_pb2_grpc.DiagnosticsServiceStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await stub.GetDiagnostics(
            diagnostics_pb2.GetDiagnosticsRequest(), metadata=bearer(READER_SCOPES)
        )
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as invalid:
        await stub.GetDiagnostics(
            diagnostics_pb2.GetDiagnosticsRequest(heap_sample_seconds=3600),
            metadata=bearer(INTERNAL_SCOPES),
        )
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_springctl_diagnose_prints_the_report(target: str) -> None:
    process = await asyncio.create_subprocess_exec(
        str(SPRINGCTL), "diagnose", target, "--sample", "1", "--trim",
        env=dict(os.environ, AUTH_JWT_SECRET=TEST_JWT_SECRET),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    text = out.decode()
    assert process.returncode == 0, err.decode()
    assert text.startswith("friendship pid ")
    for expected in ("RSS ", "malloc: in use", "malloc_trim: RSS", "Python heap over 1 s",
                     "objects tracked by gc", "threads "):
        assert expected in text


def _line_of(text: str) -> int:
    with open(__file__) as source:
        lines = enumerate(source, 1)
        return next(n for n, line in lines if text in line and "_line_of" not in line)
