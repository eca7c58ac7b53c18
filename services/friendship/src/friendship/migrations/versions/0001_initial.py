"""friendship schema: friendship_status, topic_metrics, ledger

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "friendship"


def upgrade() -> None:
    op.execute(f'CREATE SCHEMA IF NOT EXISTS "{SCHEMA}"')
    op.create_table(
        "friendship_status",
        sa.Column("user_id", sa.Text, primary_key=True),
        sa.Column("score", sa.Double, nullable=False, server_default=sa.text("0")),
        sa.Column("level", sa.Text, nullable=False),
        sa.Column("conversations", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        schema=SCHEMA,
    )
    op.create_table(
        "topic_metrics",
        sa.Column("user_id", sa.Text, primary_key=True),
        sa.Column("topic_id", sa.Text, primary_key=True),
        sa.Column("score", sa.Double, nullable=False, server_default=sa.text("0")),
        sa.Column("turns", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column(
            "agents_used",
            postgresql.ARRAY(sa.Text),
            nullable=False,
            server_default=sa.text("'{}'::text[]"),
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        schema=SCHEMA,
    )
    op.create_table(
        "ledger",
        sa.Column("conversation_id", sa.Text, primary_key=True),
        sa.Column("user_id", sa.Text, nullable=False),
        sa.Column("bot_id", sa.Text, nullable=False),
        sa.Column("agent_tag", sa.Text, nullable=False, server_default=sa.text("''")),
        sa.Column("total_turns", sa.Integer, nullable=False),
        sa.Column("user_initiated_questions", sa.Integer, nullable=False),
        sa.Column("emotion", sa.Text, nullable=False),
        sa.Column("new_memories_count", sa.Integer, nullable=False),
        sa.Column("source", sa.Text, nullable=False, server_default=sa.text("''")),
        sa.Column("base_points", sa.Double, nullable=False),
        sa.Column("engagement_points", sa.Double, nullable=False),
        sa.Column("emotion_points", sa.Double, nullable=False),
        sa.Column("memory_points", sa.Double, nullable=False),
        sa.Column("score_change", sa.Double, nullable=False),
        sa.Column("applied_delta", sa.Double, nullable=False),
        sa.Column("score_before", sa.Double, nullable=False),
        sa.Column("score_after", sa.Double, nullable=False),
        sa.Column("level_before", sa.Text, nullable=False),
        sa.Column("level_after", sa.Text, nullable=False),
        sa.Column("rule_version", sa.Text, nullable=False, server_default=sa.text("'v1'")),
        sa.Column(
            "applied_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_ledger_user_id_applied_at", "ledger", ["user_id", "applied_at"], schema=SCHEMA
    )


def downgrade() -> None:
    op.drop_index("ix_ledger_user_id_applied_at", table_name="ledger", schema=SCHEMA)
    op.drop_table("ledger", schema=SCHEMA)
    op.drop_table("topic_metrics", schema=SCHEMA)
    op.drop_table("friendship_status", schema=SCHEMA)
