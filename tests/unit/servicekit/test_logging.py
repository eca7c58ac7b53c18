"""Log lines are JSON with the service and the conversation id from context."""

from __future__ import annotations

import json
import logging

from servicekit.logging import JsonFormatter, conversation_id_var


def test_json_line_carries_service_ids_and_extra_fields() -> None:
    record = logging.LogRecord("ingest.handlers", logging.INFO, __file__, 1, "accepted", None, None)
    record.turns = 12
    token = conversation_id_var.set("conv-1")
    try:
        line = JsonFormatter("ingest").format(record)
    finally:
        conversation_id_var.reset(token)
    entry = json.loads(line)
    assert entry["service"] == "ingest"
    assert entry["event"] == "accepted"
    assert entry["conversation_id"] == "conv-1"
    assert entry["turns"] == 12
    assert entry["level"] == "info"


def test_trace_id_comes_from_the_caller_or_is_left_out() -> None:
    from servicekit.logging import trace_id_from_metadata, trace_id_var

    assert trace_id_from_metadata([("x-trace-id", "t-1"), ("x-request-id", "r-1")]) == "t-1"
    assert trace_id_from_metadata([("x-request-id", "5f0c-11aa")]) == "5f0c-11aa"
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert trace_id_from_metadata([("traceparent", parent)]) == "4bf92f3577b34da6a3ce929d0e0e4736"
    # Anything that is not a short id (text, spaces, too long) never reaches a log line.
    assert trace_id_from_metadata([("x-request-id", "hello there")]) is None
    assert trace_id_from_metadata([("x-request-id", "a" * 65)]) is None
    assert trace_id_from_metadata(None) is None

    record = logging.LogRecord("analyzer", logging.INFO, __file__, 1, "handled", None, None)
    token = trace_id_var.set("t-1")
    try:
        entry = json.loads(JsonFormatter("analyzer").format(record))
    finally:
        trace_id_var.reset(token)
    assert entry["trace_id"] == "t-1"
