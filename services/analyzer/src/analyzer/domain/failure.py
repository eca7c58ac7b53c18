"""What to do with a message whose processing failed: retry later or dead-letter."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    delays_s: tuple[int, ...] = (10, 60, 180, 600)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not self.delays_s or any(d < 1 for d in self.delays_s):
            raise ValueError("retry delays must be whole seconds >= 1")


@dataclass(frozen=True)
class RetryLater:
    delay_s: int


@dataclass(frozen=True)
class DeadLetter:
    pass


def decide(attempts: int, policy: RetryPolicy) -> RetryLater | DeadLetter:
    """`attempts` counts the one that just failed (1 = the first)."""
    if attempts >= policy.max_attempts:
        return DeadLetter()
    return RetryLater(delay_for(attempts, policy.delays_s))


def delay_for(attempts: int, delays_s: Sequence[int]) -> int:
    """The n-th failure waits delays_s[n-1]; past the list, the last delay."""
    return delays_s[min(max(attempts, 1), len(delays_s)) - 1]
