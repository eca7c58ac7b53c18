"""What the Groq and Mem0 adapters share: the breaker around one call, retry waits.

Retry policy (one way for both providers): the SDK/httpx never retries on its own
(max_retries=0). We retry 429, 5xx, timeouts of one request and connection errors,
waiting `retry-after-ms` / `retry-after` when the provider sends one (else 0.5 s,
1 s, 2 s, ... capped at 8 s), but only while the wait ends before the call's deadline;
the whole call, waits included, runs under one asyncio.timeout of its budget.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from analyzer.adapters.provider_metrics import PROVIDER_BREAKER_OPEN
from analyzer.domain.breaker import CircuitBreaker
from analyzer.domain.errors import ProviderFailed

log = logging.getLogger(__name__)

BREAKER_OPEN = "breaker_open"
TIMEOUT = "timeout"
RATE_LIMITED = "rate_limited"
SERVER_ERROR = "server_error"
INVALID = "invalid"
UNAVAILABLE = "unavailable"
OK = "ok"
RETRYABLE = frozenset({TIMEOUT, RATE_LIMITED, SERVER_ERROR, UNAVAILABLE})
# The provider answered: its health is fine even if the answer was not.
_HEALTHY = frozenset({OK, INVALID})

INITIAL_BACKOFF_S = 0.5
MAX_BACKOFF_S = 8.0


def retry_after_s(headers: Mapping[str, str] | None) -> float | None:
    if not headers:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            return max(0.0, float(raw) * scale)
        except ValueError:
            pass
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            continue
        return max(0.0, (when - datetime.now(UTC)).total_seconds())
    return None


def backoff_s(attempt: int) -> float:
    """Wait after the n-th failed attempt (0-based) when the provider named none."""
    return float(min(INITIAL_BACKOFF_S * 2**attempt, MAX_BACKOFF_S))


def retry_delay_s(attempt: int, headers: Mapping[str, str] | None) -> float:
    """Wait after the n-th failed attempt (0-based): what the provider asked, else the backoff."""
    delay = retry_after_s(headers)
    return backoff_s(attempt) if delay is None else delay


async def wait_before_retry(delay_s: float, deadline: float) -> bool:
    """Sleeps when the retry can still start before the deadline; False: give up now."""
    loop = asyncio.get_running_loop()
    if loop.time() + delay_s >= deadline:
        return False
    await asyncio.sleep(delay_s)
    return True


class GuardedProvider:
    """Breaker, budget and breaker gauge around each call to one provider."""

    def __init__(self, provider: str, breaker: CircuitBreaker, budget_s: float) -> None:
        self.provider = provider
        self.breaker = breaker
        self.budget_s = budget_s

    def _publish_state(self) -> None:
        PROVIDER_BREAKER_OPEN.labels(self.provider).set(1 if self.breaker.is_open else 0)

    @asynccontextmanager
    async def call(self) -> AsyncIterator[float]:
        """Yields the call's deadline (loop time); ProviderFailed(outcome) on failure."""
        if not self.breaker.allow():
            self._publish_state()
            raise ProviderFailed(BREAKER_OPEN)
        self._publish_state()
        outcome = TIMEOUT
        try:
            deadline = asyncio.get_running_loop().time() + self.budget_s
            async with asyncio.timeout_at(deadline):
                yield deadline
            outcome = OK
        except TimeoutError:
            outcome = TIMEOUT
            raise ProviderFailed(TIMEOUT) from None
        except ProviderFailed as exc:
            outcome = exc.outcome
            raise
        finally:
            # A cancelled call (shutdown, message deadline) also frees the probe.
            if outcome in _HEALTHY:
                self.breaker.record_success()
            else:
                self.breaker.record_failure()
            self._publish_state()
