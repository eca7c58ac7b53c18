"""A fake Groq server on 127.0.0.1: the OpenAI-compatible chat completions API, driven
by tests (answers, latency, 429 with retry-after, 5xx, malformed JSON, hanging
connections). Real sockets, a thread per connection, so it also serves the stack's
processes. `ScriptedHttpServer` is the base the fake Mem0 shares.

The groq SDK sends POST {base_url}/openai/v1/chat/completions with
`Authorization: Bearer <key>`; GROQ_BASE_URL is the server's root URL.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CHAT_PATH = "/openai/v1/chat/completions"


@dataclass(frozen=True)
class Behavior:
    """What the server does with a matching request.

    kind: "ok" (the normal answer), "status" (`status` with `body`), "malformed"
    (200 with a body or answer that is not the JSON asked for), "hang" (never answers
    until the server closes), "close" (drops the connection without an answer).
    """

    kind: str = "ok"
    delay_s: float = 0.0
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: str | None = None
    content: str | None = None  # LLM answer content instead of the configured one


OK = Behavior()
HANG = Behavior(kind="hang")


def slow(delay_s: float) -> Behavior:
    return Behavior(delay_s=delay_s)


def status(code: int, retry_after: str | None = None, body: str | None = None) -> Behavior:
    headers = (("retry-after", retry_after),) if retry_after is not None else ()
    return Behavior(kind="status", status=code, headers=headers, body=body)


@dataclass
class Recorded:
    arrived_at: float  # time.monotonic(): comparable across processes on this machine
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw: str
    part: str  # what the request is for (per fake: "questions"/"emotion", "add"/"event")


@dataclass
class _Rule:
    matches: Callable[[Recorded], bool]
    behavior: Behavior
    times: int | None  # None: every matching request


@dataclass
class ScriptedHttpServer:
    api_key: str = "test-key"
    requests: list[Recorded] = field(default_factory=list)
    _rules: list[_Rule] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _released: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None

    # -- driving -------------------------------------------------------------------
    def when(
        self,
        behavior: Behavior,
        *,
        part: str | None = None,
        contains: str | None = None,
        times: int | None = None,
    ) -> None:
        """Requests for `part` and/or whose body contains `contains` get `behavior`
        (the `times` next ones, or all). Earlier rules win."""

        def matches(request: Recorded) -> bool:
            return (part is None or request.part == part) and (
                contains is None or contains in request.raw
            )

        with self._lock:
            self._rules.append(_Rule(matches, behavior, times))

    def reset(self) -> None:
        with self._lock:
            self._rules.clear()
            self.requests.clear()

    def count(self, part: str | None = None, contains: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (part is None or r.part == part) and (contains is None or contains in r.raw)
            )

    def arrivals(self, contains: str | None = None) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if contains is None or contains in r.raw]

    # -- serving -------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> ScriptedHttpServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def do_GET(self) -> None:
                fake._handle(self)

            def do_POST(self) -> None:
                fake._handle(self)

            def do_DELETE(self) -> None:
                fake._handle(self)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, name="fake-http", daemon=True).start()
        return self

    def close(self) -> None:
        self._released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _pick(self, request: Recorded) -> Behavior:
        with self._lock:
            self.requests.append(request)
            for rule in self._rules:
                if rule.matches(request) and (rule.times is None or rule.times > 0):
                    if rule.times is not None:
                        rule.times -= 1
                    return rule.behavior
        return OK

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("content-length") or 0)
        raw = handler.rfile.read(length).decode("utf-8") if length else ""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in handler.headers.items()}
        request = Recorded(
            time.monotonic(), handler.command, handler.path, headers, body, raw, ""
        )
        request.part = self.part_of(request)
        behavior = self._pick(request)
        if behavior.delay_s and self._released.wait(behavior.delay_s):
            handler.close_connection = True
            return
        if behavior.kind == "hang":
            self._released.wait()
            handler.close_connection = True
            return
        if behavior.kind == "close":
            handler.close_connection = True
            return
        if headers.get("authorization") != self.expected_authorization():
            self._send(handler, 401, json.dumps({"detail": "Invalid API key"}))
            return
        if behavior.kind == "status":
            body_text = behavior.body if behavior.body is not None else json.dumps(
                {"error": {"message": f"status {behavior.status}", "type": "test"}}
            )
            self._send(handler, behavior.status, body_text, behavior.headers)
            return
        code, text = self.answer(request, behavior)
        self._send(handler, code, text, behavior.headers)

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler,
        code: int,
        text: str,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        data = text.encode("utf-8")
        try:
            handler.send_response(code)
            handler.send_header("content-type", "application/json")
            handler.send_header("content-length", str(len(data)))
            for name, value in headers:
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True

    # -- per API -------------------------------------------------------------------
    def part_of(self, request: Recorded) -> str:
        return ""

    def expected_authorization(self) -> str:
        return f"Bearer {self.api_key}"

    def answer(self, request: Recorded, behavior: Behavior) -> tuple[int, str]:
        return 404, json.dumps({"detail": "not found"})


@dataclass
class FakeGroq(ScriptedHttpServer):
    questions_answer: str = '{"user_initiated_questions": 2}'
    emotion_answer: str = '{"emotion": "interesting"}'

    def part_of(self, request: Recorded) -> str:
        if request.path != CHAT_PATH or not isinstance(request.body, dict):
            return "other"
        messages = request.body.get("messages") or [{}]
        system = str(messages[0].get("content", ""))
        return "questions" if "user_initiated_questions" in system else "emotion"

    def answer(self, request: Recorded, behavior: Behavior) -> tuple[int, str]:
        if request.part == "other":
            return 404, json.dumps({"error": {"message": "unknown route"}})
        if behavior.kind == "malformed" and behavior.body is not None:
            return 200, behavior.body  # the HTTP body itself is broken
        if behavior.content is not None:
            content = behavior.content
        elif behavior.kind == "malformed":
            content = "Sure! The user asked {about three} questions"
        elif request.part == "questions":
            content = self.questions_answer
        else:
            content = self.emotion_answer
        assert isinstance(request.body, dict)
        return 200, json.dumps(
            {
                "id": f"chatcmpl-{uuid.uuid4()}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": request.body.get("model", ""),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
                "system_fingerprint": "fp_test",
                "x_groq": {"id": f"req_{uuid.uuid4().hex}"},
            }
        )


JSON_VALIDATE_FAILED = json.dumps(
    {
        "error": {
            "message": "Failed to validate JSON. Please adjust your prompt.",
            "type": "invalid_request_error",
            "code": "json_validate_failed",
            "failed_generation": "{not json",
        }
    }
)
