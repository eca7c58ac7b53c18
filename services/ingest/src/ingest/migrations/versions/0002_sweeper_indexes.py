"""indexes for the lease sweeper and the operators' requeue

Revision ID: 0002
Revises: 0001
Create Date: 2026-01-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = "ingest"


def upgrade() -> None:
    # The sweeper looks for PROCESSING rows whose lease expired, and stale PENDING rows.
    op.create_index(
        "ix_conversations_processing_lease",
        "conversations",
        ["lease_expires_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'PROCESSING'"),
    )
    op.create_index(
        "ix_conversations_pending_updated",
        "conversations",
        ["updated_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'PENDING'"),
    )
    # "Does this conversation already wait in the outbox?"
    op.create_index(
        "ix_outbox_unpublished_conversation",
        "outbox",
        ["conversation_id"],
        schema=SCHEMA,
        postgresql_where=sa.text("published_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_unpublished_conversation", table_name="outbox", schema=SCHEMA)
    op.drop_index("ix_conversations_pending_updated", table_name="conversations", schema=SCHEMA)
    op.drop_index("ix_conversations_processing_lease", table_name="conversations", schema=SCHEMA)
