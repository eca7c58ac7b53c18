"""Pooled connections on real PostgreSQL: pinged only after sitting idle, replaced if dead."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from servicekit.db import create_db_engine
from tests.support.env import SERVER_DATABASE_URL, new_id


def _engine(name: str, ping_after_idle_s: float) -> sa.Engine:
    return create_db_engine(
        SERVER_DATABASE_URL, application_name=name, pool_size=1, pool_timeout_s=2,
        connect_timeout_s=5, statement_timeout_ms=5000, ping_after_idle_s=ping_after_idle_s,
    )  # fmt: skip


def _backend_pid(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(pid: int) -> None:
    killer = sa.create_engine(
        sa.make_url(SERVER_DATABASE_URL).set(drivername="postgresql+psycopg2"),
        poolclass=sa.pool.NullPool,
    )
    try:
        with killer.begin() as conn:
            assert conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
        # The backend is gone once it no longer shows in pg_stat_activity.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with killer.connect() as conn:
                alive = conn.execute(
                    sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
                ).scalar_one()
            if not alive:
                return
            time.sleep(0.05)
        raise AssertionError("backend still alive")
    finally:
        killer.dispose()


def test_a_connection_killed_while_idle_is_replaced_before_use() -> None:
    engine = _engine(new_id("idle-ping"), ping_after_idle_s=0.2)
    try:
        first = _backend_pid(engine)
        _terminate(first)
        time.sleep(0.3)  # idle past the threshold: the next checkout pings it
        second = _backend_pid(engine)  # no error reaches the caller
        assert second != first
    finally:
        engine.dispose()


def test_a_connection_used_a_moment_ago_is_not_pinged_and_a_dead_one_fails_once() -> None:
    """Within the threshold there is no ping: a connection killed meanwhile fails one unit of
    work with a disconnect (UNAVAILABLE for an RPC), and the pool replaces it at once."""
    engine = _engine(new_id("idle-ping"), ping_after_idle_s=3600)
    try:
        first = _backend_pid(engine)
        _terminate(first)
        with pytest.raises(sa.exc.DBAPIError) as info:
            _backend_pid(engine)
        assert info.value.connection_invalidated
        assert _backend_pid(engine) != first
    finally:
        engine.dispose()


def test_zero_pings_before_every_use() -> None:
    engine = _engine(new_id("idle-ping"), ping_after_idle_s=0)
    try:
        first = _backend_pid(engine)
        _terminate(first)
        assert _backend_pid(engine) != first  # no sleep needed: pinged at checkout
    finally:
        engine.dispose()
