"""JSON logs, one line per event, with ids from context and never conversation text."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

conversation_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "conversation_id", default=None
)
# One id per accepted conversation, shared by its log lines in every service: ingest makes it
# (or takes the caller's x-request-id / traceparent), the message carries it, the analyzer
# forwards it as `x-trace-id` gRPC metadata.
trace_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "trace_id", default=None
)
TRACE_ID_HEADER = "x-trace-id"
_TRACE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


def new_trace_id() -> str:
    return uuid.uuid4().hex


def valid_trace_id(value: str | None) -> str | None:
    """The value if it is a short id (never arbitrary text in logs), else None."""
    return value if value is not None and _TRACE_ID.match(value) else None


def trace_id_from_metadata(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """`x-trace-id`, else `x-request-id` (Envoy sets one), else the W3C traceparent's trace id."""
    found: dict[str, str] = {}
    for key, value in metadata or ():
        if key in (TRACE_ID_HEADER, "x-request-id", "traceparent") and key not in found:
            found[key] = value if isinstance(value, str) else value.decode(errors="replace")
    for key in (TRACE_ID_HEADER, "x-request-id"):
        trace_id = valid_trace_id(found.get(key))
        if trace_id is not None:
            return trace_id
    match = _TRACEPARENT.match(found.get("traceparent", ""))
    return match.group(1) if match else None

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self._service,
            "logger": record.name,
            "event": record.getMessage(),
        }
        conversation_id = conversation_id_var.get()
        if conversation_id is not None:
            entry["conversation_id"] = conversation_id
        trace_id = trace_id_var.get()
        if trace_id is not None:
            entry["trace_id"] = trace_id
        # Structured fields passed with `extra=` (ids, counts, durations; never text).
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aio-pika/aiormq log reconnect chatter at INFO; keep it out of the way.
    for noisy in ("aiormq", "aio_pika"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
