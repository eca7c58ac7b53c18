"""The series the alerts and the dashboard read, scraped from the real processes' /metrics.

Each process is scraped before and after conversations flow; the counters and histograms
the alerts use must have moved, the gauges must be there, and no label may carry an id or
conversation text. Then the logs: one conversation's lines in the three processes share
one trace id and never contain its text.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterable

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from spring.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from tests.chaos.harness import publish_raw
from tests.support.auth import ROBOT_SCOPES, bearer
from tests.support.conversations import conversation, rpc_error, wait_terminal
from tests.support.env import new_id
from tests.support.stack import ServiceProcess, Stack

pytestmark = pytest.mark.e2e
E = ingest_pb2

INGEST = "/spring.ingest.v1.IngestService/EndConversation"
APPLY = "/spring.friendship.v1.FriendshipInternalService/ApplyConversation"
COMPLETE = "/spring.ingest.v1.IngestInternalService/CompleteConversation"

Sample = tuple[str, frozenset[tuple[str, str]]]


def scrape(service: ServiceProcess) -> dict[Sample, float]:
    url = f"http://127.0.0.1:{service.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict[Sample, float], name: str, **labels: str) -> float:
    """The sample's value, 0 when absent (a labelled counter not yet incremented)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def present(samples: dict[Sample, float], name: str, **labels: str) -> bool:
    return (name, frozenset(labels.items())) in samples


def label_values(samples: Iterable[Sample]) -> set[str]:
    return {v for _name, labels in samples for _k, v in labels}


def wait_for(check: object, timeout_s: float = 15) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "metric did not move in time"
        time.sleep(0.2)


def test_every_series_the_alerts_read_moves_as_conversations_flow(
    stack: Stack, ingest: ingest_pb2_grpc.IngestServiceStub
) -> None:
    services = {s.name: s for s in stack.services}
    before = {name: scrape(s) for name, s in services.items()}

    marker = new_id("metricmarker")
    user_id = new_id("metricsuser")
    requests = [
        conversation(user_id=user_id, turns=[("user", f"{marker} hello"), ("assistant", "hi")])
        for _ in range(3)
    ]
    for request in requests:
        ingest.EndConversation(request, metadata=bearer(ROBOT_SCOPES), timeout=5)
    # A rejected call (no token) and a bad one count under their codes.
    with pytest.raises(grpc.RpcError) as no_token:
        ingest.EndConversation(requests[0], timeout=5)
    assert rpc_error(no_token.value).code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as denied:
        ingest.EndConversation(requests[0], metadata=bearer(["friendship:read"]), timeout=5)
    assert rpc_error(denied.value).code() == grpc.StatusCode.PERMISSION_DENIED
    # A message that is not JSON is dead-lettered at once.
    publish_raw(stack.namespace, [b"not json " + marker.encode()])

    for request in requests:
        status = wait_terminal(ingest, request.conversation_id, timeout_s=30)
        assert status.status == E.CONVERSATION_STATUS_PROCESSED, status

    def analyzer_done() -> bool:
        now = scrape(services["analyzer"])
        return value(now, "analyzer_dead_letters_total") > value(
            before["analyzer"], "analyzer_dead_letters_total"
        )

    wait_for(analyzer_done)
    after = {name: scrape(s) for name, s in services.items()}

    def delta(service: str, name: str, **labels: str) -> float:
        return value(after[service], name, **labels) - value(before[service], name, **labels)

    # RED per RPC, errors by code (auth rejections included), latency histogram.
    assert delta("ingest", "grpc_server_handled_total", method=INGEST, code="OK") >= 3
    assert delta("ingest", "grpc_server_handled_total", method=INGEST, code="UNAUTHENTICATED") >= 1
    assert delta("ingest", "grpc_server_handled_total", method=INGEST,
                 code="PERMISSION_DENIED") >= 1  # fmt: skip
    assert delta("ingest", "grpc_server_handling_seconds_count", method=INGEST) >= 5
    assert delta("ingest", "grpc_server_handled_total", method=COMPLETE, code="OK") >= 3
    assert delta("friendship", "grpc_server_handled_total", method=APPLY, code="OK") >= 3
    assert delta("friendship", "grpc_server_handling_seconds_count", method=APPLY) >= 3

    # Outbox: published, backlog and relay lag exported.
    assert delta("ingest", "ingest_outbox_published_total") >= 3
    assert present(after["ingest"], "ingest_outbox_backlog")
    assert value(after["ingest"], "ingest_outbox_oldest_age_seconds") >= 0
    assert present(after["ingest"], "ingest_outbox_oldest_age_seconds")

    # Accepted -> PROCESSED, observed once per conversation where PROCESSED is recorded.
    assert delta("ingest", "pipeline_accept_to_processed_seconds_count") >= 3
    assert delta("ingest", "pipeline_accept_to_processed_seconds_sum") > 0

    # Analyzer: outcomes, attempts, dead letters, queue depth.
    assert delta("analyzer", "analyzer_messages_total", outcome="processed") >= 3
    assert delta("analyzer", "analyzer_messages_total", outcome="dead_lettered") >= 1
    assert delta("analyzer", "analyzer_dead_letters_total") >= 1
    assert delta("analyzer", "analyzer_message_attempt_count") >= 4
    assert present(after["analyzer"], "analyzer_queue_depth")
    assert value(after["analyzer"], "analyzer_queue_depth") >= 0

    # DB pools by name: checkouts were made, none is left in use; waits exported.
    for service, pool in (("ingest", "ingest"), ("ingest", "ingest-relay"),
                          ("friendship", "friendship"), ("analyzer", "analyzer")):  # fmt: skip
        assert present(after[service], "db_pool_in_use", pool=pool), (service, pool)
        assert present(after[service], "db_pool_waits_total", pool=pool), (service, pool)
        assert value(after[service], "db_pool_in_use", pool=pool) >= 0

    # Every process: RSS and open fds.
    for name in services:
        assert value(after[name], "process_resident_memory_bytes") > 10_000_000, name
        assert value(after[name], "process_open_fds") > 3, name

    # No ids or text in any label of any service.
    for name in services:
        labels = label_values(after[name])
        for forbidden in (marker, user_id, *(r.conversation_id for r in requests)):
            assert not any(forbidden in v for v in labels), (name, forbidden)


def _lines_mentioning(service: ServiceProcess, conversation_id: str) -> list[dict[str, object]]:
    lines = []
    for raw in service.log_text().splitlines():
        if conversation_id not in raw:
            continue
        lines.append(json.loads(raw))  # one JSON object per line, or this fails
    return lines


def test_one_trace_id_across_the_three_processes_and_no_text(
    stack: Stack, ingest: ingest_pb2_grpc.IngestServiceStub
) -> None:
    marker = new_id("secretword").replace("-", "")
    request = conversation(turns=[("user", f"my {marker} is here"), ("assistant", "ok")])
    caller_trace = new_id("trace")
    ingest.EndConversation(
        request,
        metadata=(*bearer(ROBOT_SCOPES), ("x-request-id", caller_trace)),
        timeout=5,
    )
    status = wait_terminal(ingest, request.conversation_id, timeout_s=30)
    assert status.status == E.CONVERSATION_STATUS_PROCESSED, status

    # Log lines are written as they happen; give the last ones a moment.
    deadline = time.monotonic() + 10
    while True:
        by_service = {
            s.name: _lines_mentioning(s, request.conversation_id) for s in stack.services
        }
        if all(by_service.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.2)

    for name, lines in by_service.items():
        assert lines, f"{name} logged nothing about the conversation"
        for line in lines:
            assert line["service"] == name
            assert line.get("conversation_id") == request.conversation_id, line
            # The caller's x-request-id became the conversation's trace id, everywhere.
            assert line.get("trace_id") == caller_trace, (name, line)
    for service in stack.services:
        assert marker not in service.log_text(), f"{service.name} logged conversation text"
