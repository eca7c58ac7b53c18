"""Migrations on an empty, freshly created database; a second run is a no-op."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from friendship.entrypoints.migrate import run as migrate

pytestmark = pytest.mark.integration


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
    assert tables == {
        "friendship_status", "topic_metrics", "ledger", "alembic_version",
        "rule_sets", "rule_jobs", "rule_results", "outbox", "erased_conversations",
    }
    assert versions == ["0004"]
    assert {"ix_ledger_user_id_applied_at", "ix_ledger_user_history"} <= indexes
    assert public_tables == set()  # nothing outside the service's schema

    migrate(fresh_database_url)
    assert snapshot(fresh_database_url) == (tables, versions, indexes, public_tables)


def test_notify_triggers_installed(fresh_database_url: str) -> None:
    """0004: the GetLevel caches' invalidations come from triggers on these two tables."""
    migrate(fresh_database_url)
    engine = sa.create_engine(fresh_database_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            triggers = set(
                conn.execute(
                    sa.text(
                        "SELECT c.relname || ':' || t.tgname FROM pg_trigger t"
                        " JOIN pg_class c ON c.oid = t.tgrelid"
                        " JOIN pg_namespace n ON n.oid = c.relnamespace"
                        " WHERE n.nspname = 'friendship' AND NOT t.tgisinternal"
                    )
                ).scalars()
            )
    finally:
        engine.dispose()
    assert triggers == {
        "friendship_status:friendship_status_notify",
        "friendship_status:friendship_status_truncate_notify",
        "rule_sets:rule_sets_notify",
    }
