"""The LLM part over the official groq SDK (AsyncGroq), JSON mode, strict parsing.

GROQ_BASE_URL is the API host: the SDK appends /openai/v1/chat/completions.
Retries: see provider_calls (the SDK's own are off, max_retries=0).

The request goes through the SDK's own `post` (its documented way to make a raw request)
with the very body `chat.completions.create` sends, and the answer comes back as the raw
response: `create`'s typed request transform and response models cost ~0.75 ms of CPU per
call (2 calls per conversation, the largest item of the analyzer's CPU profile) to read
one string, `choices[0].message.content`. Auth, base URL, timeouts and the SDK's error
classes (status, timeout, connection) are the SDK's as before.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import TypeVar

import groq
import httpx

from analyzer.adapters.provider_calls import (
    INVALID,
    OK,
    RATE_LIMITED,
    RETRYABLE,
    SERVER_ERROR,
    TIMEOUT,
    UNAVAILABLE,
    GuardedProvider,
    retry_delay_s,
    wait_before_retry,
)
from analyzer.adapters.provider_metrics import GROQ, init_provider, record_request
from analyzer.domain.breaker import CircuitBreaker
from analyzer.domain.errors import ProviderFailed
from analyzer.domain.llm_answers import InvalidAnswer, parse_emotion, parse_questions
from analyzer.domain.model import Emotion
from analyzer.domain.prompts import EMOTION_SYSTEM_PROMPT, QUESTIONS_SYSTEM_PROMPT

log = logging.getLogger(__name__)
T = TypeVar("T")
DEFAULT_BASE_URL = "https://api.groq.com"
CHAT_COMPLETIONS_PATH = "/openai/v1/chat/completions"
MIN_REQUEST_TIMEOUT_S = 0.05


def completion_content(body: bytes) -> str | None:
    """`choices[0].message.content` of a chat completion; ValueError when the body is not one."""
    completion = json.loads(body)
    choices = completion.get("choices") if isinstance(completion, dict) else None
    if not isinstance(choices, list):
        raise ValueError("not a chat completion")
    if not choices:
        return None
    message = choices[0].get("message") if isinstance(choices[0], dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if content is not None and not isinstance(content, str):
        raise ValueError("content is not a string")
    return content


def _status_outcome(exc: groq.APIStatusError) -> str:
    if isinstance(exc, groq.RateLimitError):
        return RATE_LIMITED
    if exc.status_code >= 500:
        return SERVER_ERROR
    if isinstance(exc, groq.BadRequestError):
        # e.g. 400 json_validate_failed: the model produced no valid JSON.
        return INVALID
    return UNAVAILABLE  # 401/403/404/...: not usable, not worth a retry


class GroqLlm:
    """LlmPort: two prompts, each within its own budget (retries and waits included)."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None,
        model: str,
        timeout_s: float,
        max_attempts: int,
        max_completion_tokens: int,
        breaker: CircuitBreaker,
    ) -> None:
        self._model = model
        self._max_attempts = max_attempts
        self._max_completion_tokens = max_completion_tokens
        self._guard = GuardedProvider(GROQ, breaker, timeout_s)
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )
        self._client = groq.AsyncGroq(
            api_key=api_key,
            base_url=base_url or DEFAULT_BASE_URL,
            max_retries=0,
            timeout=timeout_s,
            http_client=self._http,
        )
        init_provider(GROQ)

    async def close(self) -> None:
        await self._client.close()
        await self._http.aclose()

    async def count_questions(self, conversation_text: str, user_turns: int) -> int:
        return await self._ask(
            QUESTIONS_SYSTEM_PROMPT,
            conversation_text,
            lambda content: parse_questions(content, user_turns),
        )

    async def session_emotion(self, conversation_text: str) -> Emotion:
        return await self._ask(EMOTION_SYSTEM_PROMPT, conversation_text, parse_emotion)

    async def _ask(self, system: str, user: str, parse: Callable[[str | None], T]) -> T:
        async with self._guard.call() as deadline:
            return await self._attempts(system, user, parse, deadline)
        raise AssertionError("unreachable")  # pragma: no cover (mypy: the guard may swallow)

    async def _attempts(
        self, system: str, user: str, parse: Callable[[str | None], T], deadline: float
    ) -> T:
        loop = asyncio.get_running_loop()
        outcome = UNAVAILABLE
        for attempt in range(self._max_attempts):
            started = loop.time()
            headers: httpx.Headers | None = None
            outcome = TIMEOUT
            refused = False  # a 4xx answer: sending it again will not help
            try:
                response = await self._client.post(
                    CHAT_COMPLETIONS_PATH,
                    cast_to=httpx.Response,
                    body={
                        "messages": [
                            {"role": "system", "content": system},
                            {"role": "user", "content": user},
                        ],
                        "model": self._model,
                        "max_completion_tokens": self._max_completion_tokens,
                        "response_format": {"type": "json_object"},
                        "temperature": 0,
                    },
                    options={"timeout": max(deadline - started, MIN_REQUEST_TIMEOUT_S)},
                )
                content = completion_content(response.content)
                try:
                    value = parse(content)
                    outcome = OK
                except InvalidAnswer:
                    outcome = INVALID
                else:
                    return value
            except groq.APITimeoutError:
                outcome = TIMEOUT
            except groq.APIConnectionError:
                outcome = UNAVAILABLE
            except groq.APIStatusError as exc:
                outcome = _status_outcome(exc)
                headers = exc.response.headers
                refused = outcome == UNAVAILABLE
            except (groq.APIResponseValidationError, ValueError):
                outcome = INVALID  # e.g. a body that is not JSON at all
            finally:
                # A request cut by the call's deadline is recorded as a timeout.
                record_request(GROQ, outcome, loop.time() - started)
            if refused or outcome not in RETRYABLE or attempt + 1 >= self._max_attempts:
                break
            if not await wait_before_retry(retry_delay_s(attempt, headers), deadline):
                break
        log.info("llm call failed", extra={"provider": GROQ, "outcome": outcome})
        raise ProviderFailed(outcome)
