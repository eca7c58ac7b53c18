"""Self-recycling: after N messages, an age or an RSS, the worker drains and exits.

A long-lived process cannot bloat: once a limit is passed the worker stops exactly as on
SIGTERM (NOT_SERVING, no new messages, in-flight ones finish within the grace, the rest
go back to the queue) and exits with RECYCLE_EXIT_CODE, so that its supervisor (Kubernetes,
`make run`'s dev runner) starts a fresh one. A periodic restart loses nothing: unacked
messages return to the queue and every step downstream is idempotent.

Limits (0 = off): ANALYZER_RECYCLE_AFTER_MESSAGES, ANALYZER_RECYCLE_AFTER_AGE_S (with up
to 10% random jitter, so replicas started together do not recycle together),
ANALYZER_RECYCLE_AFTER_RSS_MB.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import Counter

from analyzer.entrypoints.consumer import MESSAGES
from servicekit.server import wait_for_termination_signal

log = logging.getLogger("analyzer.recycling")

# EX_TEMPFAIL: "stopped on purpose, start me again".
RECYCLE_EXIT_CODE = 75
CHECK_INTERVAL_S = 1.0
RECYCLES = Counter("analyzer_recycles_total", "Times the worker decided to recycle", ["reason"])


@dataclass(frozen=True)
class RecycleLimits:
    messages: int = 10_000
    age_s: float = 86_400.0
    rss_mb: float = 512.0

    @property
    def enabled(self) -> bool:
        return self.messages > 0 or self.age_s > 0 or self.rss_mb > 0


def messages_handled() -> int:
    """Messages this process finished, whatever the outcome (the consumer's counter)."""
    return int(
        sum(
            sample.value
            for metric in MESSAGES.collect()
            for sample in metric.samples
            if sample.name.endswith("_total")
        )
    )


def rss_mb() -> float:
    """Resident set size now (not the peak), from /proc; 0 where there is no /proc."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


def recycle_reason(
    limits: RecycleLimits, *, handled: int, age_s: float, rss: float, age_limit_s: float
) -> str | None:
    """Which limit is passed, if any (pure: the tests drive it directly)."""
    if limits.messages > 0 and handled >= limits.messages:
        return "messages"
    if age_limit_s > 0 and age_s >= age_limit_s:
        return "age"
    if limits.rss_mb > 0 and rss >= limits.rss_mb:
        return "rss"
    return None


class Recycler:
    def __init__(
        self,
        limits: RecycleLimits,
        *,
        handled: Callable[[], int] = messages_handled,
        rss: Callable[[], float] = rss_mb,
    ) -> None:
        self._limits = limits
        self._handled = handled
        self._rss = rss
        self._baseline = handled()
        self._started = time.monotonic()
        self._age_limit_s = limits.age_s * (1 - random.uniform(0, 0.1)) if limits.age_s else 0.0

    def handled_since_start(self) -> int:
        return self._handled() - self._baseline

    def due(self) -> str | None:
        return recycle_reason(
            self._limits,
            handled=self.handled_since_start(),
            age_s=time.monotonic() - self._started,
            rss=self._rss(),
            age_limit_s=self._age_limit_s,
        )

    async def wait(self) -> str:
        """Returns the reason once a limit is passed (never, when all are off)."""
        if not self._limits.enabled:
            await asyncio.Event().wait()
        while True:
            reason = self.due()
            if reason is not None:
                return reason
            await asyncio.sleep(CHECK_INTERVAL_S)


async def wait_for_signal_or_recycle(limits: RecycleLimits) -> str | None:
    """None on SIGTERM/SIGINT; the recycle reason when a limit is passed first."""
    recycler = Recycler(limits)
    signal_task = asyncio.ensure_future(wait_for_termination_signal())
    recycle_task = asyncio.ensure_future(recycler.wait())
    try:
        done, _ = await asyncio.wait(
            {signal_task, recycle_task}, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        for task in (signal_task, recycle_task):
            task.cancel()
    if signal_task not in done and recycle_task in done:
        reason = recycle_task.result()
        RECYCLES.labels(reason).inc()
        log.info(
            "recycling: draining, then exiting for the supervisor to restart us",
            extra={"reason": reason, "messages": recycler.handled_since_start(),
                   "rss_mb": round(rss_mb(), 1), "exit_code": RECYCLE_EXIT_CODE},
        )
        return reason
    return None

