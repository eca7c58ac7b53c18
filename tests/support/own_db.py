"""A database of a test's own: tests that count every row (fuzzer, chaos) cannot share one.

spring_test is shared: any running ingest relay publishes every unpublished outbox row of
it, so a stack that must account for each of its conversations needs its own database.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from servicekit.db import sqlalchemy_url
from tests.support.env import TEST_DATABASE_URL
from tests.support.stack import migrate_all


def _admin() -> sa.Engine:
    return sa.create_engine(
        sqlalchemy_url(TEST_DATABASE_URL).set(database="postgres"),
        isolation_level="AUTOCOMMIT",
        poolclass=sa.pool.NullPool,
    )


@contextmanager
def own_database(prefix: str) -> Iterator[str]:
    """A fresh database with the three schemas migrated; dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    url = make_url(TEST_DATABASE_URL).set(database=name).render_as_string(hide_password=False)
    try:
        migrate_all(url)
        yield url
    finally:
        admin = _admin()
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            admin.dispose()


def engine_for(url: str) -> sa.Engine:
    return sa.create_engine(sqlalchemy_url(url), pool_size=2, max_overflow=0)
