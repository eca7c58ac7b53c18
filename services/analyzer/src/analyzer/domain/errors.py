"""Domain errors. Their messages are short reasons, never conversation text."""

from __future__ import annotations


class DependencyFailed(Exception):
    """A call to another service, the database or the broker failed; `reason` is short."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RedeliveryFailed(Exception):
    """The failed message could not be scheduled for a retry nor dead-lettered."""


class ProviderFailed(Exception):
    """A third-party call (LLM, memory API) gave no usable answer; the part falls back.

    `outcome` is one of ok/timeout/rate_limited/server_error/invalid/unavailable (never
    "ok" here), or "breaker_open" when no call was made.
    """

    def __init__(self, outcome: str) -> None:
        super().__init__(outcome)
        self.outcome = outcome
