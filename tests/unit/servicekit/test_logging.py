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
