"""DB pool metrics on real PostgreSQL: connections in use and checkouts that waited, by pool."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY

from servicekit.db import create_db_engine
from tests.support.env import SERVER_DATABASE_URL, new_id


def sample(name: str, pool: str) -> float:
    return REGISTRY.get_sample_value(name, {"pool": pool}) or 0.0


def test_in_use_waits_and_timeouts_are_counted_per_pool() -> None:
    pool = new_id("pool")
    engine = create_db_engine(
        SERVER_DATABASE_URL, application_name=pool, pool_size=1, pool_timeout_s=0.5,
        connect_timeout_s=5, statement_timeout_ms=5000,
    )  # fmt: skip
    try:
        assert sample("db_pool_waits_total", pool) == 0
        held = engine.connect()
        held.execute(sa.text("SELECT 1"))
        assert sample("db_pool_in_use", pool) == 1
        # The only connection is out: the next checkout waits, then times out.
        with pytest.raises(sa.exc.TimeoutError):
            engine.connect()
        assert sample("db_pool_waits_total", pool) == 1
        assert sample("db_pool_timeouts_total", pool) == 1

        # A waiter served when the connection comes back: a wait, no timeout.
        done = threading.Event()

        def waiter() -> None:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            done.set()

        thread = threading.Thread(target=waiter)
        thread.start()
        deadline = time.monotonic() + 5
        while sample("db_pool_waits_total", pool) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        held.close()
        thread.join(timeout=5)
        assert done.is_set()
        assert sample("db_pool_waits_total", pool) == 2
        assert sample("db_pool_timeouts_total", pool) == 1
        assert sample("db_pool_in_use", pool) == 0
        # Recreated pools (dispose) keep their name.
        engine.dispose()
        with engine.connect():
            assert sample("db_pool_in_use", pool) == 1
    finally:
        engine.dispose()
