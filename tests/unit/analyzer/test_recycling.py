"""When the worker recycles itself (entrypoints/recycling.py)."""

from __future__ import annotations

import asyncio

from analyzer.entrypoints.recycling import RecycleLimits, Recycler, recycle_reason, rss_mb


def test_each_limit_and_zero_means_off() -> None:
    limits = RecycleLimits(messages=100, age_s=60, rss_mb=512)
    calm = {"handled": 99, "age_s": 59.0, "rss": 511.0, "age_limit_s": 60.0}
    assert recycle_reason(limits, **calm) is None
    assert recycle_reason(limits, **{**calm, "handled": 100}) == "messages"
    assert recycle_reason(limits, **{**calm, "age_s": 60.0}) == "age"
    assert recycle_reason(limits, **{**calm, "rss": 512.0}) == "rss"
    off = RecycleLimits(messages=0, age_s=0, rss_mb=0)
    assert not off.enabled
    assert recycle_reason(off, handled=10**9, age_s=10**9, rss=10**9, age_limit_s=0) is None


def test_counts_only_messages_handled_since_it_started() -> None:
    handled = [1000]
    recycler = Recycler(RecycleLimits(messages=5, age_s=0, rss_mb=0), handled=lambda: handled[0])
    assert recycler.due() is None
    handled[0] += 5
    assert recycler.due() == "messages"


async def test_wait_returns_the_reason() -> None:
    recycler = Recycler(RecycleLimits(messages=0, age_s=0, rss_mb=1), rss=lambda: 2.0)
    assert await asyncio.wait_for(recycler.wait(), 5) == "rss"


def test_rss_is_read_from_proc() -> None:
    assert 5 < rss_mb() < 4096
