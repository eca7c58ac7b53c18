"""The real analyzer process with GROQ_BASE_URL / MEM0_BASE_URL pointed at fake servers:
the analysis comes from them, a hanging provider costs only its budget, and the
provider metrics are exported. A stack of its own (the session stack has no providers).
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator

import grpc
import pytest

from spring.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from tests.support.auth import ROBOT_SCOPES, bearer
from tests.support.conversations import conversation, wait_terminal
from tests.support.env import new_id
from tests.support.fake_groq import HANG, FakeGroq
from tests.support.fake_mem0 import FakeMem0
from tests.support.own_db import own_database
from tests.support.stack import Stack, running_stack

pytestmark = pytest.mark.e2e
E = ingest_pb2
LLM_TIMEOUT_S = 2.0
MEMORY_TIMEOUT_S = 3.0


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeGroq, FakeMem0]]:
    groq, mem0 = FakeGroq().start(), FakeMem0().start()
    yield groq, mem0
    groq.close()
    mem0.close()


@pytest.fixture(scope="module")
def provider_stack(
    fakes: tuple[FakeGroq, FakeMem0], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    # A database of its own, so no other stack's relay takes this stack's conversations.
    groq, mem0 = fakes
    with (
        own_database("e2e_providers") as database_url,
        running_stack(
            database_url=database_url,
            log_dir=tmp_path_factory.mktemp("e2e-provider-logs"),
            retry_delays_s=[1],
            extra_env={
                "GROQ_API_KEY": groq.api_key,
                "GROQ_BASE_URL": groq.url,
                "MEM0_API_KEY": mem0.api_key,
                "MEM0_BASE_URL": mem0.url,
                "ANALYZER_LLM_TIMEOUT_S": str(LLM_TIMEOUT_S),
                "ANALYZER_MEMORY_TIMEOUT_S": str(MEMORY_TIMEOUT_S),
                "ANALYZER_MEMORY_POLL_INITIAL_S": "0.05",
                "ANALYZER_BREAKER_FAILURES": "1000",
            },
        ) as built,
    ):
        yield built


@pytest.fixture(scope="module")
def ingest(provider_stack: Stack) -> Iterator[ingest_pb2_grpc.IngestServiceStub]:
    with grpc.insecure_channel(provider_stack.ingest.target) as channel:
        yield ingest_pb2_grpc.IngestServiceStub(channel)


def marked(marker: str) -> E.EndConversationRequest:
    return conversation(
        turns=[
            ("assistant", "Xin chào! Hôm nay con thế nào?"),
            ("user", f"Tên con là Minh {marker}. Con thích khủng long."),
            ("assistant", "Khủng long thật tuyệt!"),
            ("user", "Khủng long ăn gì vậy? Hay quá!"),
        ]
    )


def test_the_analysis_comes_from_the_providers(
    ingest: ingest_pb2_grpc.IngestServiceStub,
    fakes: tuple[FakeGroq, FakeMem0],
    provider_stack: Stack,
) -> None:
    groq, mem0 = fakes
    marker = new_id("e2e")
    request = marked(marker)
    ingest.EndConversation(request, metadata=bearer(ROBOT_SCOPES), timeout=5)
    status = wait_terminal(ingest, request.conversation_id, timeout_s=30)
    assert status.status == E.CONVERSATION_STATUS_PROCESSED, status
    assert status.analysis.source == "llm"
    assert status.analysis.user_initiated_questions == 2
    assert status.analysis.session_emotion == E.EMOTION_INTERESTING
    assert status.analysis.new_memories_count == 3
    assert groq.count(contains=marker) == 2 and mem0.count("add", contains=marker) == 1

    url = f"http://127.0.0.1:{provider_stack.analyzer.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        metrics = response.read().decode()
    assert 'provider_requests_total{outcome="ok",provider="groq"}' in metrics
    assert 'provider_breaker_open{provider="mem0"} 0.0' in metrics
    assert "provider_request_seconds_bucket" in metrics


def test_hanging_providers_cost_only_their_budget(
    ingest: ingest_pb2_grpc.IngestServiceStub, fakes: tuple[FakeGroq, FakeMem0]
) -> None:
    groq, mem0 = fakes
    marker = new_id("hang")
    groq.when(HANG, contains=marker)
    mem0.when(HANG, contains=marker)
    stuck = marked(marker)
    others = [marked(new_id("fine")) for _ in range(3)]
    started = time.monotonic()
    for request in (stuck, *others):
        ingest.EndConversation(request, metadata=bearer(ROBOT_SCOPES), timeout=5)
    for request in others:
        done = wait_terminal(ingest, request.conversation_id, timeout_s=30)
        assert done.status == E.CONVERSATION_STATUS_PROCESSED and done.analysis.source == "llm"
    others_elapsed = time.monotonic() - started

    status = wait_terminal(ingest, stuck.conversation_id, timeout_s=30)
    stuck_elapsed = time.monotonic() - started
    assert status.status == E.CONVERSATION_STATUS_PROCESSED, status
    assert status.analysis.source == "local"
    assert status.analysis.user_initiated_questions == 1  # "Khủng long ăn gì vậy?"
    assert status.analysis.session_emotion == E.EMOTION_INTERESTING  # "hay quá"
    assert status.analysis.new_memories_count == 2  # tên: minh, thích khủng long
    assert others_elapsed < stuck_elapsed < MEMORY_TIMEOUT_S + 5
