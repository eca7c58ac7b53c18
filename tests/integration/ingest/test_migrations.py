from __future__ import annotations

import sqlalchemy as sa

from servicekit.db import migrate, sqlalchemy_url


def test_migrations_build_the_schema_on_an_empty_database(fresh_db_url: str) -> None:
    migrate(fresh_db_url, "ingest:migrations", "ingest")
    migrate(fresh_db_url, "ingest:migrations", "ingest")  # again: a no-op

    engine = sa.create_engine(sqlalchemy_url(fresh_db_url), poolclass=sa.pool.NullPool)
    try:
        inspector = sa.inspect(engine)
        assert set(inspector.get_table_names(schema="ingest")) == {
            "conversations", "outbox", "alembic_version", "erased_conversations",
        }
        conversation_columns = {c["name"] for c in inspector.get_columns("conversations", "ingest")}
        assert conversation_columns == {
            "conversation_id", "user_id", "bot_id", "bot_type", "agent_tag", "raw_log",
            "normalized_log", "user_initiated_questions", "session_emotion", "started_at",
            "ended_at", "content_hash", "status", "attempts", "last_error", "score_change",
            "analysis", "lease_expires_at", "accepted_at", "updated_at", "raw_log_dropped_at",
            "trace_id",
        }
        assert inspector.get_pk_constraint("conversations", "ingest")["constrained_columns"] == [
            "conversation_id"
        ]
        indexes = {i["name"]: i for i in inspector.get_indexes("conversations", "ingest")}
        assert indexes["ix_conversations_user_id"]["column_names"] == ["user_id"]

        outbox_columns = {c["name"]: c for c in inspector.get_columns("outbox", "ingest")}
        assert set(outbox_columns) == {
            "id", "conversation_id", "created_at", "published_at", "publish_attempts",
        }
        assert "nextval" in str(outbox_columns["id"]["default"])  # bigserial
        with engine.connect() as conn:
            index_def = conn.execute(
                sa.text(
                    "SELECT indexdef FROM pg_indexes WHERE schemaname = 'ingest' "
                    "AND indexname = 'ix_outbox_unpublished'"
                )
            ).scalar_one()
            assert "WHERE (published_at IS NULL)" in index_def
            assert conn.execute(
                sa.text("SELECT version_num FROM ingest.alembic_version")
            ).scalar_one() == "0004"
            assert conn.execute(
                sa.text("SELECT data_type FROM information_schema.columns WHERE "
                        "table_schema = 'ingest' AND table_name = 'conversations' "
                        "AND column_name = 'raw_log'")
            ).scalar_one() == "jsonb"
    finally:
        engine.dispose()
