"""The memory part over httpx against the Mem0 platform REST API.

POST /v3/memories/add/ {messages, user_id, agent_id, metadata} answers
{"message": ..., "status": "PENDING", "event_id": ...}; GET /v1/event/{event_id}/
answers {"id", "event_type", "status": PENDING|RUNNING|SUCCEEDED|FAILED, "results": [...]}
where each added memory is a result with "event": "ADD". We poll with backoff until
SUCCEEDED (or FAILED) within the budget. The SDK clients are not used: they block in
their constructors. Retries: see provider_calls.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

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
from analyzer.adapters.provider_metrics import MEM0, init_provider, record_request
from analyzer.domain.breaker import CircuitBreaker
from analyzer.domain.errors import ProviderFailed
from analyzer.domain.model import Conversation, Turn

log = logging.getLogger(__name__)

ADD_PATH = "/v3/memories/add/"
# Delete-all with a filter (the mem0ai client's MemoryClient.delete_all(user_id=...)):
# DELETE /v1/memories/?user_id=... answers {"message": "Memories deleted successfully!"}.
DELETE_ALL_PATH = "/v1/memories/"
EVENT_PATH = "/v1/event/{event_id}/"
_WAITING = frozenset({"PENDING", "RUNNING"})
MAX_ATTEMPTS_PER_REQUEST = 3


def _status_outcome(status: int) -> str:
    if status == 429:
        return RATE_LIMITED
    if status >= 500:
        return SERVER_ERROR
    if status >= 400:
        return UNAVAILABLE  # 401/403/404/400: not usable, not worth a retry
    return OK


def count_added(results: Any) -> int:
    if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
        raise ProviderFailed(INVALID)
    return sum(1 for r in results if str(r.get("event", "")).upper() == "ADD")


class Mem0Memories:
    """MemoryApiPort."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        timeout_s: float,
        poll_initial_s: float,
        poll_max_s: float,
        breaker: CircuitBreaker,
    ) -> None:
        self._poll_initial_s = poll_initial_s
        self._poll_max_s = poll_max_s
        self._guard = GuardedProvider(MEM0, breaker, timeout_s)
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Token {api_key}", "Accept": "application/json"},
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )
        init_provider(MEM0)

    async def close(self) -> None:
        await self._http.aclose()

    async def add(self, conversation: Conversation, turns: Sequence[Turn]) -> int:
        payload = {
            "messages": [{"role": t.role.value, "content": t.content} for t in turns],
            "user_id": conversation.user_id,
            "agent_id": conversation.bot_id,
            "metadata": {
                "conversation_id": conversation.conversation_id,
                "agent_tag": conversation.agent_tag,
            },
        }
        async with self._guard.call() as deadline:
            answer = await self._request("POST", ADD_PATH, deadline, payload)
            event_id = answer.get("event_id")
            if event_id is None and "results" in answer:  # a synchronous answer
                return count_added(answer["results"])
            if not isinstance(event_id, str) or not event_id:
                raise ProviderFailed(INVALID)
            return await self._poll(event_id, deadline)
        raise AssertionError("unreachable")  # pragma: no cover

    async def delete_user(self, user_id: str) -> None:
        """Erasure: every memory of the user in Mem0. No breaker (an operator asks for it
        explicitly and must hear a failure); retried on refused connections, 429 and 5xx."""
        loop = asyncio.get_running_loop()
        outcome = UNAVAILABLE
        for attempt in range(MAX_ATTEMPTS_PER_REQUEST):
            started = loop.time()
            headers: httpx.Headers | None = None
            try:
                response = await self._http.request(
                    "DELETE", DELETE_ALL_PATH, params={"user_id": user_id}
                )
                headers = response.headers
                outcome = _status_outcome(response.status_code)
            except httpx.TimeoutException:
                outcome = TIMEOUT
            except httpx.HTTPError:
                outcome = UNAVAILABLE
            finally:
                record_request(MEM0, outcome, loop.time() - started)
            if outcome == OK:
                return
            if outcome not in RETRYABLE or attempt + 1 >= MAX_ATTEMPTS_PER_REQUEST:
                break
            await asyncio.sleep(min(retry_delay_s(attempt, headers), 5.0))
        log.warning("memory api delete failed", extra={"provider": MEM0, "outcome": outcome})
        raise ProviderFailed(outcome)

    async def _poll(self, event_id: str, deadline: float) -> int:
        delay = self._poll_initial_s
        while True:
            await asyncio.sleep(delay)
            event = await self._request("GET", EVENT_PATH.format(event_id=event_id), deadline)
            status = str(event.get("status", "")).upper()
            if status == "SUCCEEDED":
                return count_added(event.get("results"))
            if status == "FAILED":
                log.info("memory event failed", extra={"provider": MEM0})
                raise ProviderFailed(SERVER_ERROR)
            if status not in _WAITING:
                raise ProviderFailed(INVALID)
            delay = min(delay * 2, self._poll_max_s)

    async def _request(
        self, method: str, path: str, deadline: float, payload: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        outcome = UNAVAILABLE
        for attempt in range(MAX_ATTEMPTS_PER_REQUEST):
            started = loop.time()
            headers: httpx.Headers | None = None
            outcome = TIMEOUT
            # Resent: reads; refused connections; 429/5xx. Not an add that timed out
            # (it may have been processed: a resend could add the memories twice).
            resendable = method == "GET"
            try:
                response = await self._http.request(method, path, json=payload)
                headers = response.headers
                outcome = _status_outcome(response.status_code)
                if outcome in (RATE_LIMITED, SERVER_ERROR):
                    resendable = True  # the provider asks for, or allows, another try
                if outcome == OK:
                    try:
                        body = response.json()
                    except ValueError:
                        body = None
                    if isinstance(body, dict):
                        return body
                    outcome = INVALID
            except httpx.ConnectError:
                outcome = UNAVAILABLE
                resendable = True
            except httpx.TimeoutException:
                outcome = TIMEOUT
            except httpx.HTTPError:
                outcome = UNAVAILABLE
            finally:
                record_request(MEM0, outcome, loop.time() - started)
            if (
                outcome not in RETRYABLE
                or not resendable
                or attempt + 1 >= MAX_ATTEMPTS_PER_REQUEST
            ):
                break
            if not await wait_before_retry(retry_delay_s(attempt, headers), deadline):
                break
        log.info("memory api call failed", extra={"provider": MEM0, "outcome": outcome})
        raise ProviderFailed(outcome)
