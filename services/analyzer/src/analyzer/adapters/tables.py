"""Tables of the analyzer schema."""

from __future__ import annotations

import sqlalchemy as sa

SCHEMA = "analyzer"
metadata = sa.MetaData(schema=SCHEMA)

analyses = sa.Table(
    "analyses",
    metadata,
    sa.Column("conversation_id", sa.String(128), primary_key=True),
    sa.Column("total_turns", sa.Integer, nullable=False),
    sa.Column("user_initiated_questions", sa.Integer, nullable=False),
    sa.Column("session_emotion", sa.String(16), nullable=False),
    sa.Column("new_memories_count", sa.Integer, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)

memories = sa.Table(
    "memories",
    metadata,
    sa.Column("user_id", sa.String(128), primary_key=True),
    sa.Column("fact_hash", sa.String(64), primary_key=True),
    sa.Column("fact", sa.Text, nullable=False),
    sa.Column("first_conversation_id", sa.String(128), nullable=False),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)

# Erasure tombstones (0002): sha256 hex of erased conversation ids, nothing else.
erased_conversations = sa.Table(
    "erased_conversations",
    metadata,
    sa.Column("conversation_hash", sa.String(64), primary_key=True),
    sa.Column(
        "erased_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)
