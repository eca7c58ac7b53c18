"""Migrations on an empty, freshly created database; a second run is a no-op."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from friendship.entrypoints.migrate import run as migrate
from servicekit.db import sqlalchemy_url
from tests.support.env import TEST_DATABASE_URL

pytestmark = pytest.mark.integration


@pytest.fixture
def fresh_database_url() -> Iterator[str]:
    """A database name nobody else uses; dropped (only it) afterwards."""
    name = f"friendship_mig_{uuid.uuid4().hex[:12]}"
    url = sqlalchemy_url(TEST_DATABASE_URL).set(database=name)
    yield url.render_as_string(hide_password=False)
    admin = sa.create_engine(
        url.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
    )
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def snapshot(url: str) -> tuple[set[str], list[str], set[str], set[str]]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        inspector = sa.inspect(engine)
        tables = set(inspector.get_table_names(schema="friendship"))
        indexes = {ix["name"] or "" for ix in inspector.get_indexes("ledger", schema="friendship")}
        public_tables = set(inspector.get_table_names(schema="public"))
        with engine.connect() as conn:
            query = sa.text("SELECT version_num FROM friendship.alembic_version")
            versions = list(conn.execute(query).scalars())
        return tables, versions, indexes, public_tables
    finally:
        engine.dispose()


def test_migrate_empty_database_then_again(fresh_database_url: str) -> None:
    migrate(fresh_database_url)  # creates the database, the schema and the tables

    tables, versions, indexes, public_tables = snapshot(fresh_database_url)
    assert tables == {"friendship_status", "topic_metrics", "ledger", "alembic_version"}
    assert versions == ["0001"]
    assert "ix_ledger_user_id_applied_at" in indexes
    assert public_tables == set()  # nothing outside the service's schema

    migrate(fresh_database_url)
    assert snapshot(fresh_database_url) == (tables, versions, indexes, public_tables)
