from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from servicekit.db import migrate, sqlalchemy_url
from tests.support.env import TEST_DATABASE_URL


def _admin_engine() -> sa.Engine:
    return sa.create_engine(
        sqlalchemy_url(TEST_DATABASE_URL).set(database="postgres"),
        isolation_level="AUTOCOMMIT",
        poolclass=sa.pool.NullPool,
    )


@pytest.fixture
def fresh_db_url() -> Iterator[str]:
    """A database of its own (random name, created by the migration), dropped afterwards."""
    name = f"ingest_it_{uuid.uuid4().hex[:12]}"
    url = make_url(TEST_DATABASE_URL).set(database=name).render_as_string(False)
    yield url
    admin = _admin_engine()
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture
def migrated_db_url(fresh_db_url: str) -> str:
    migrate(fresh_db_url, "ingest:migrations", "ingest")
    return fresh_db_url
