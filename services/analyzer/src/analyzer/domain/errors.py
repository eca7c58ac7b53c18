"""Domain errors. Their messages are short reasons, never conversation text."""

from __future__ import annotations


class DependencyFailed(Exception):
    """A call to another service, the database or the broker failed; `reason` is short."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RedeliveryFailed(Exception):
    """The failed message could not be scheduled for a retry nor dead-lettered."""
