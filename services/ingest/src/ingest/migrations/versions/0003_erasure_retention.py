"""erasure tombstones; raw logs may be dropped by the retention job

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SCHEMA = "ingest"


def upgrade() -> None:
    # Retention (ingest-retention) drops the raw log of old conversations; the normalized
    # log, the analysis and the content hash stay.
    op.alter_column("conversations", "raw_log", nullable=True, schema=SCHEMA)
    op.add_column(
        "conversations",
        sa.Column("raw_log_dropped_at", sa.DateTime(timezone=True), nullable=True),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_conversations_raw_log_accepted",
        "conversations",
        ["accepted_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("raw_log IS NOT NULL"),
    )
    # Erasure (DeleteUserData): one row per erased conversation, hashes only.
    op.create_table(
        "erased_conversations",
        sa.Column("conversation_hash", sa.String(64), primary_key=True),
        sa.Column("user_hash", sa.String(64), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_erased_conversations_user_hash",
        "erased_conversations",
        ["user_hash"],
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_index(
        "ix_erased_conversations_user_hash", table_name="erased_conversations", schema=SCHEMA
    )
    op.drop_table("erased_conversations", schema=SCHEMA)
    op.drop_index("ix_conversations_raw_log_accepted", table_name="conversations", schema=SCHEMA)
    op.drop_column("conversations", "raw_log_dropped_at", schema=SCHEMA)
    op.execute(f"UPDATE {SCHEMA}.conversations SET raw_log = normalized_log WHERE raw_log IS NULL")
    op.alter_column("conversations", "raw_log", nullable=False, schema=SCHEMA)
