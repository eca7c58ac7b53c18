"""The GetLevel cache alone: LRU bound, TTL, the ticket race, bypass while not live."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from friendship.adapters.level_cache import LevelCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def live_cache(size: int = 3, ttl_s: float = 60.0, clock: Clock | None = None) -> LevelCache[str]:
    cache: LevelCache[str] = LevelCache(size, ttl_s, clock=clock or Clock())
    cache.set_live(True)
    return cache


def fill(cache: LevelCache[str], key: str, value: str) -> bool:
    return cache.store(cache.ticket(key), value)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_stored_answer_is_served_until_invalidated() -> None:
    cache = live_cache()
    assert cache.get("u1") is None
    assert fill(cache, "u1", "level-1")
    assert cache.get("u1") == "level-1"
    cache.invalidate("u1")
    assert cache.get("u1") is None


def test_least_recently_used_goes_first_at_the_bound() -> None:
    cache = live_cache(size=3)
    for key in ("a", "b", "c"):
        fill(cache, key, key.upper())
    assert cache.get("a") == "A"  # a is now the most recently used
    fill(cache, "d", "D")
    assert len(cache) == 3
    assert cache.get("b") is None  # the least recently used went
    assert [cache.get(k) for k in ("a", "c", "d")] == ["A", "C", "D"]


def test_an_entry_expires_after_the_ttl() -> None:
    clock = Clock()
    cache = live_cache(ttl_s=10.0, clock=clock)
    fill(cache, "u1", "old")
    clock.now += 9.9
    assert cache.get("u1") == "old"
    clock.now += 0.2
    assert cache.get("u1") is None
    assert len(cache) == 0


def test_an_invalidation_between_ticket_and_store_drops_the_store() -> None:
    cache = live_cache()
    dropped = metric("friendship_level_cache_stores_dropped_total")
    ticket = cache.ticket("u1")  # the miss starts reading the database...
    cache.invalidate("u1")  # ...a change of u1 commits meanwhile...
    assert not cache.store(ticket, "read-before-the-change")  # ...so its answer is not kept
    assert cache.get("u1") is None
    assert metric("friendship_level_cache_stores_dropped_total") == dropped + 1


def test_an_invalidation_of_another_user_does_not_drop_the_store() -> None:
    cache = live_cache()
    ticket = cache.ticket("u1")
    cache.invalidate("u2")
    assert cache.store(ticket, "fresh")
    assert cache.get("u1") == "fresh"


def test_a_clear_between_ticket_and_store_drops_the_store() -> None:
    cache = live_cache()
    fill(cache, "u2", "x")
    ticket = cache.ticket("u1")
    cache.clear()  # rule sets changed
    assert not cache.store(ticket, "read-before-the-change")
    assert cache.get("u1") is None
    assert cache.get("u2") is None


def test_concurrent_misses_of_one_user_are_all_dropped_by_one_invalidation() -> None:
    cache = live_cache()
    first, second = cache.ticket("u1"), cache.ticket("u1")
    cache.invalidate("u1")
    third = cache.ticket("u1")  # started after the change: may be kept
    assert not cache.store(first, "old")
    assert not cache.store(second, "old")
    assert cache.store(third, "new")
    assert cache.get("u1") == "new"


def test_a_released_ticket_leaves_nothing_behind() -> None:
    cache = live_cache()
    ticket = cache.ticket("u1")
    cache.release(ticket)  # the read failed
    cache.release(ticket)  # idempotent
    assert cache._loading == {}
    later = cache.ticket("u1")
    assert cache.store(later, "v")
    assert cache._loading == {}


def test_not_live_bypasses_and_keeps_nothing() -> None:
    cache: LevelCache[str] = LevelCache(10, 60.0)
    bypassed = metric("friendship_level_cache_bypassed_total")
    assert not cache.live  # no listener yet
    assert not fill(cache, "u1", "v")
    assert cache.get("u1") is None
    assert metric("friendship_level_cache_bypassed_total") == bypassed + 1


def test_listener_loss_clears_and_drops_reads_in_flight() -> None:
    cache = live_cache()
    fill(cache, "u1", "v1")
    ticket = cache.ticket("u2")
    cache.set_live(False)  # listener lost: notifications may be missed from now on
    assert cache.get("u1") is None
    assert len(cache) == 0
    assert not cache.store(ticket, "v2")
    during = cache.ticket("u3")  # read while down
    cache.set_live(True)  # back: what was read while down may predate a missed change
    assert not cache.store(during, "v3")
    assert fill(cache, "u3", "v3")
    assert cache.get("u3") == "v3"


def test_size_zero_disables_everything() -> None:
    cache: LevelCache[str] = LevelCache(0, 60.0)
    cache.set_live(True)
    assert not cache.enabled and not cache.live
    assert not fill(cache, "u1", "v")
    assert cache.get("u1") is None
    cache.invalidate("u1")
    cache.clear()


def test_counters_hits_misses_invalidations() -> None:
    cache = live_cache()
    hits = metric("friendship_level_cache_hits_total")
    misses = metric("friendship_level_cache_misses_total")
    users = metric("friendship_level_cache_invalidations_total", scope="user")
    alls = metric("friendship_level_cache_invalidations_total", scope="all")
    cache.get("u1")
    fill(cache, "u1", "v")
    cache.get("u1")
    cache.get("u1")
    cache.invalidate("u1")
    cache.clear()
    assert metric("friendship_level_cache_hits_total") == hits + 2
    assert metric("friendship_level_cache_misses_total") == misses + 1
    assert metric("friendship_level_cache_invalidations_total", scope="user") == users + 1
    assert metric("friendship_level_cache_invalidations_total", scope="all") == alls + 1


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        LevelCache(-1, 60.0)
    with pytest.raises(ValueError):
        LevelCache(10, 0.0)
