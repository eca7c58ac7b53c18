"""A bounded in-process cache of GetLevel answers, kept right by invalidations.

The cache itself does no I/O: the servicer reads and fills it, the LISTEN/NOTIFY listener
(level_listener.py) and the local write paths invalidate it. Everything runs on the event
loop's thread (no locks).

Correctness rules (docs/friendship.md, "The GetLevel cache"):
- A miss takes a ticket *before* reading the database and stores the answer with it. An
  invalidation of that user (or a clear) between the two marks the ticket stale and the store
  is dropped: an answer read before a change can never outlive the change's invalidation.
- The cache answers only while it is `live` (the listener is connected and LISTENing). Going
  live or dead clears it and makes every outstanding ticket stale; while dead, reads go to the
  database (`get` returns None, `store` keeps nothing).
- Entries expire after `ttl_s` whatever happens (a bound on staleness should a notification
  ever be missed); the least recently used entry goes when `max_entries` are held.
"""

from __future__ import annotations

import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

from prometheus_client import Counter, Gauge

V = TypeVar("V")

# No user ids in labels: only the scope of an invalidation.
CACHE_HITS = Counter("friendship_level_cache_hits_total", "GetLevel answers served from the cache")
CACHE_MISSES = Counter(
    "friendship_level_cache_misses_total", "GetLevel reads that went to the database (not cached)"
)
CACHE_BYPASSED = Counter(
    "friendship_level_cache_bypassed_total",
    "GetLevel reads that went to the database because the invalidation listener was down",
)
CACHE_INVALIDATIONS = Counter(
    "friendship_level_cache_invalidations_total",
    "Invalidations applied: scope=user (one user's entry) or all (everything)",
    ["scope"],
)
CACHE_STORES_DROPPED = Counter(
    "friendship_level_cache_stores_dropped_total",
    "Database reads not cached because an invalidation arrived while they ran",
)
CACHE_ENTRIES = Gauge("friendship_level_cache_entries", "Entries held by the GetLevel cache")


class Ticket:
    """One miss in progress: taken before the database read, handed back to store()."""

    __slots__ = ("epoch", "key", "stale")

    def __init__(self, key: str, epoch: int) -> None:
        self.key = key
        self.epoch = epoch
        self.stale = False


class LevelCache(Generic[V]):
    def __init__(
        self,
        max_entries: int,
        ttl_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """max_entries=0 disables the cache (every call reads the database, nothing counted)."""
        if max_entries < 0 or ttl_s <= 0:
            raise ValueError("max_entries must be >= 0 and ttl_s > 0")
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: OrderedDict[str, tuple[V, float]] = OrderedDict()
        self._loading: dict[str, list[Ticket]] = {}
        self._epoch = 0
        self._live = False
        if max_entries > 0:
            ref = weakref.ref(self)
            CACHE_ENTRIES.set_function(lambda: len(cache) if (cache := ref()) is not None else 0)

    @property
    def enabled(self) -> bool:
        return self.max_entries > 0

    @property
    def live(self) -> bool:
        """Answering from memory (enabled, and invalidations are arriving)."""
        return self._live

    def __len__(self) -> int:
        return len(self._entries)

    # --- reads -----------------------------------------------------------------------------
    def get(self, key: str) -> V | None:
        """The cached answer, or None: read the database (with a ticket) and store()."""
        if not self._live:
            if self.max_entries > 0:
                CACHE_BYPASSED.inc()
            return None
        found = self._entries.get(key)
        if found is None:
            CACHE_MISSES.inc()
            return None
        value, expires_at = found
        if self._clock() >= expires_at:
            del self._entries[key]
            CACHE_MISSES.inc()
            return None
        self._entries.move_to_end(key)
        CACHE_HITS.inc()
        return value

    def ticket(self, key: str) -> Ticket:
        """Before reading the database for `key`. Always hand it back (store or release)."""
        ticket = Ticket(key, self._epoch)
        if self._live:
            self._loading.setdefault(key, []).append(ticket)
        else:
            ticket.stale = True  # nothing read now may be kept
        return ticket

    def store(self, ticket: Ticket, value: V) -> bool:
        """Keep `value` (read after `ticket` was taken) unless an invalidation came since."""
        self.release(ticket)
        if ticket.stale or ticket.epoch != self._epoch or not self._live:
            if self.max_entries > 0:
                CACHE_STORES_DROPPED.inc()
            return False
        self._entries[ticket.key] = (value, self._clock() + self.ttl_s)
        self._entries.move_to_end(ticket.key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return True

    def release(self, ticket: Ticket) -> None:
        """The read failed or is done (idempotent)."""
        waiting = self._loading.get(ticket.key)
        if waiting is None:
            return
        try:
            waiting.remove(ticket)
        except ValueError:
            return
        if not waiting:
            del self._loading[ticket.key]

    # --- invalidation ----------------------------------------------------------------------
    def invalidate(self, key: str) -> None:
        """`key` changed (committed): forget it, and drop the reads of it now in flight."""
        if self.max_entries == 0:
            return
        CACHE_INVALIDATIONS.labels("user").inc()
        self._entries.pop(key, None)
        for ticket in self._loading.get(key, ()):
            ticket.stale = True

    def clear(self) -> None:
        """Everything may have changed (rule sets): forget all, drop every read in flight."""
        if self.max_entries == 0:
            return
        CACHE_INVALIDATIONS.labels("all").inc()
        self._forget_all()

    def set_live(self, live: bool) -> None:
        """The listener came up (LISTENing) or went down. Either way nothing known so far
        can be trusted: cleared, and reads in flight are not kept."""
        self._forget_all()
        self._live = live and self.max_entries > 0

    def _forget_all(self) -> None:
        self._entries.clear()
        self._epoch += 1
        for waiting in self._loading.values():
            for ticket in waiting:
                ticket.stale = True
