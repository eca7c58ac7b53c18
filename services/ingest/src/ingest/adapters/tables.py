"""The ingest schema (migrations/versions/0001 creates exactly this)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

SCHEMA = "ingest"
metadata = sa.MetaData(schema=SCHEMA)

conversations = sa.Table(
    "conversations",
    metadata,
    sa.Column("conversation_id", sa.String(128), primary_key=True),
    sa.Column("user_id", sa.String(128), nullable=False),
    sa.Column("bot_id", sa.String(128), nullable=False),
    sa.Column("bot_type", sa.String(64), nullable=False, server_default=""),
    sa.Column("agent_tag", sa.String(128), nullable=False, server_default=""),
    # The turns exactly as received; content untouched. NULL once the retention job
    # (ingest-retention) dropped it (0003); the normalized log stays.
    sa.Column("raw_log", JSONB, nullable=True),
    sa.Column("normalized_log", JSONB, nullable=False),
    sa.Column("user_initiated_questions", sa.Integer, nullable=True),
    sa.Column("session_emotion", sa.Integer, nullable=False, server_default="0"),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text, nullable=False, server_default=""),
    sa.Column("score_change", sa.Float(precision=53), nullable=True),
    sa.Column("analysis", JSONB, nullable=True),
    sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("raw_log_dropped_at", sa.DateTime(timezone=True), nullable=True),
    # Shared by the log lines of this conversation in every service (migration 0004).
    sa.Column("trace_id", sa.String(64), nullable=False, server_default=""),
    sa.CheckConstraint(
        "status IN ('PENDING', 'PROCESSING', 'PROCESSED', 'SKIPPED', 'FAILED')",
        name="conversations_status_known",
    ),
    sa.Index("ix_conversations_user_id", "user_id"),
    sa.Index(
        "ix_conversations_processing_lease",
        "lease_expires_at",
        postgresql_where=sa.text("status = 'PROCESSING'"),
    ),
    sa.Index(
        "ix_conversations_pending_updated",
        "updated_at",
        postgresql_where=sa.text("status = 'PENDING'"),
    ),
    sa.Index(
        "ix_conversations_raw_log_accepted",
        "accepted_at",
        postgresql_where=sa.text("raw_log IS NOT NULL"),
    ),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),  # bigserial
    sa.Column("conversation_id", sa.String(128), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("publish_attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Index(
        "ix_outbox_unpublished",
        "id",
        postgresql_where=sa.text("published_at IS NULL"),
    ),
    sa.Index(
        "ix_outbox_unpublished_conversation",
        "conversation_id",
        postgresql_where=sa.text("published_at IS NULL"),
    ),
)

# Erasure tombstones (0003): sha256 hex of the conversation id and of the user id only.
erased_conversations = sa.Table(
    "erased_conversations",
    metadata,
    sa.Column("conversation_hash", sa.String(64), primary_key=True),
    sa.Column("user_hash", sa.String(64), nullable=False),
    sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_erased_conversations_user_hash", "user_hash"),
)
