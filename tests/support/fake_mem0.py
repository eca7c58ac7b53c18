"""A fake Mem0 platform server on 127.0.0.1, driven by tests.

POST /v3/memories/add/ -> {"message": ..., "status": "PENDING", "event_id": <uuid>};
GET /v1/event/{event_id}/ -> {"id", "event_type": "ADD", "status", "payload", "metadata",
"results", ...}: PENDING for `pending_polls` polls, then SUCCEEDED with one result per
added memory ({"id", "event": "ADD", "data": {"memory": ...}}).
DELETE /v1/memories/?user_id=<id> (the mem0ai client's delete_all(user_id=...)) forgets
every memory added for that user -> {"message": "Memories deleted successfully!"}.
`Authorization: Token <key>`. Request parts: "add", "event", "delete_all", "other".
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.fake_groq import Behavior, Recorded, ScriptedHttpServer

ADD_PATH = "/v3/memories/add/"
DELETE_ALL_PATH = "/v1/memories/"
_EVENT_PATH = re.compile(r"^/v1/event/(?P<id>[0-9a-f-]+)/$")


@dataclass
class _Event:
    remaining_polls: int
    added: int
    failed: bool


@dataclass
class FakeMem0(ScriptedHttpServer):
    memories_per_add: int = 3
    pending_polls: int = 1
    fail_events: bool = False
    _events: dict[str, _Event] = field(default_factory=dict)
    # Memories added per user_id (what delete_all removes).
    memories_by_user: dict[str, int] = field(default_factory=dict)

    def expected_authorization(self) -> str:
        return f"Token {self.api_key}"

    def part_of(self, request: Recorded) -> str:
        if request.method == "POST" and request.path == ADD_PATH:
            return "add"
        if request.method == "GET" and _EVENT_PATH.match(request.path):
            return "event"
        if request.method == "DELETE" and urlsplit(request.path).path == DELETE_ALL_PATH:
            return "delete_all"
        return "other"

    def answer(self, request: Recorded, behavior: Behavior) -> tuple[int, str]:
        if behavior.kind == "malformed":
            return 200, behavior.body if behavior.body is not None else '{"event_id": '
        if request.part == "add":
            return self._add(request)
        if request.part == "event":
            match = _EVENT_PATH.match(request.path)
            assert match is not None
            return self._event(match["id"])
        if request.part == "delete_all":
            return self._delete_all(request)
        return 404, json.dumps({"detail": "Not found."})

    def _add(self, request: Recorded) -> tuple[int, str]:
        body = request.body
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("messages"), list)
            or not any(body.get(k) for k in ("user_id", "agent_id", "app_id", "run_id"))
        ):
            return 400, json.dumps({"error": "400 Bad Request", "details": {"message": "bad"}})
        event_id = str(uuid.uuid4())
        user_id = body.get("user_id")
        with self._lock:
            if isinstance(user_id, str) and not self.fail_events:
                self.memories_by_user[user_id] = (
                    self.memories_by_user.get(user_id, 0) + self.memories_per_add
                )
            self._events[event_id] = _Event(
                self.pending_polls, self.memories_per_add, self.fail_events
            )
        return 200, json.dumps(
            {
                "message": "Memory processing has been queued for background execution",
                "status": "PENDING",
                "event_id": event_id,
            }
        )

    def _delete_all(self, request: Recorded) -> tuple[int, str]:
        filters = parse_qs(urlsplit(request.path).query)
        user_ids = filters.get("user_id", [])
        if not user_ids:
            return 400, json.dumps({"error": "At least one filter is required!"})
        with self._lock:
            for user_id in user_ids:
                self.memories_by_user.pop(user_id, None)
        return 200, json.dumps({"message": "Memories deleted successfully!"})

    def _event(self, event_id: str) -> tuple[int, str]:
        with self._lock:
            event = self._events.get(event_id)
            if event is None:
                return 404, json.dumps({"detail": "Event not found."})
            if event.remaining_polls > 0:
                event.remaining_polls -= 1
                status = "PENDING"
            else:
                status = "FAILED" if event.failed else "SUCCEEDED"
        now = datetime.now(UTC).isoformat()
        results: list[dict[str, Any]] = (
            [
                {"id": str(uuid.uuid4()), "event": "ADD", "data": {"memory": f"memory {i}"}}
                for i in range(event.added)
            ]
            if status == "SUCCEEDED"
            else []
        )
        return 200, json.dumps(
            {
                "id": event_id,
                "event_type": "ADD",
                "status": status,
                "payload": {},
                "metadata": {},
                "results": results,
                "created_at": now,
                "updated_at": now,
                "started_at": now,
                "completed_at": now if status != "PENDING" else None,
                "latency": 12.5,
            }
        )
