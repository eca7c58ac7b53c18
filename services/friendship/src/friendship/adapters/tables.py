"""Tables of the `friendship` schema (migrations/versions/0001 creates them)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

SCHEMA = "friendship"

metadata = sa.MetaData(schema=SCHEMA)

friendship_status = sa.Table(
    "friendship_status",
    metadata,
    sa.Column("user_id", sa.Text, primary_key=True),
    sa.Column("score", sa.Double, nullable=False, server_default=sa.text("0")),
    sa.Column("level", sa.Text, nullable=False),
    sa.Column("conversations", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)

topic_metrics = sa.Table(
    "topic_metrics",
    metadata,
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
)

ledger = sa.Table(
    "ledger",
    metadata,
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
    sa.Index("ix_ledger_user_id_applied_at", "user_id", "applied_at"),
)
