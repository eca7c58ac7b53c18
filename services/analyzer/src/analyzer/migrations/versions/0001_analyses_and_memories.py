"""analyses and memories

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = "analyzer"


def upgrade() -> None:
    op.create_table(
        "analyses",
        sa.Column("conversation_id", sa.String(128), primary_key=True),
        sa.Column("total_turns", sa.Integer, nullable=False),
        sa.Column("user_initiated_questions", sa.Integer, nullable=False),
        sa.Column("session_emotion", sa.String(16), nullable=False),
        sa.Column("new_memories_count", sa.Integer, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        schema=SCHEMA,
    )
    op.create_table(
        "memories",
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("fact_hash", sa.String(64), primary_key=True),
        sa.Column("fact", sa.Text, nullable=False),
        sa.Column("first_conversation_id", sa.String(128), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("memories", schema=SCHEMA)
    op.drop_table("analyses", schema=SCHEMA)
