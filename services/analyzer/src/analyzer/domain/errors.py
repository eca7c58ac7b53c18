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


class ConversationErased(DependencyFailed):
    """The conversation was erased (DeleteUserData) while in flight: nothing is stored for it.

    A DependencyFailed: the message goes the failure way; ingest no longer knows the id, so
    the next claim is NOT_FOUND and the message ends dead-lettered, holding only the id.
    """

    def __init__(self) -> None:
        super().__init__("conversation erased")
