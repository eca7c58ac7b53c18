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
    # The rule set the score and level were computed with (0002).
    sa.Column("rule_version", sa.Text, nullable=False, server_default=sa.text("'v1'")),
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
    # History paging and replay order (0002).
    sa.Index("ix_ledger_user_history", "user_id", "applied_at", "conversation_id"),
)

# --- 0002: rule sets, rule change jobs and results, level-change outbox -----------------------

rule_sets = sa.Table(
    "rule_sets",
    metadata,
    sa.Column("version", sa.Text, primary_key=True),
    sa.Column("body", postgresql.JSONB, nullable=False),
    sa.Column("mode", sa.Text, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.text("false")),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
    sa.Index("ux_rule_sets_one_active", "active", unique=True,
             postgresql_where=sa.text("active")),
)

rule_jobs = sa.Table(
    "rule_jobs",
    metadata,
    sa.Column("version", sa.Text, primary_key=True),
    sa.Column("mode", sa.Text, nullable=False),
    sa.Column("cursor", sa.Text, nullable=False, server_default=sa.text("''")),
    sa.Column("users_done", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    sa.Column(
        "started_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
)

rule_results = sa.Table(
    "rule_results",
    metadata,
    sa.Column("version", sa.Text, primary_key=True),
    sa.Column("user_id", sa.Text, primary_key=True),
    sa.Column("old_score", sa.Double, nullable=False),
    sa.Column("new_score", sa.Double, nullable=False),
    sa.Column("old_level", sa.Text, nullable=False),
    sa.Column("new_level", sa.Text, nullable=False),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Index("ix_rule_results_user_id", "user_id"),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),  # bigserial
    sa.Column("event_id", sa.Text, nullable=False, unique=True),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("routing_key", sa.Text, nullable=False),
    sa.Column("message_type", sa.Text, nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("publish_attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Index("ix_outbox_unpublished", "id", postgresql_where=sa.text("published_at IS NULL")),
    sa.Index("ix_outbox_user_id", "user_id"),
)

# Erasure tombstones (0003): sha256 hex of erased conversation ids, nothing else.
erased_conversations = sa.Table(
    "erased_conversations",
    metadata,
    sa.Column("conversation_hash", sa.Text, primary_key=True),
    sa.Column(
        "erased_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)
