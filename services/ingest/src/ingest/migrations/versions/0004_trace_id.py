"""trace id of each conversation, carried to every log line about it

Revision ID: 0004
Revises: 0003
Create Date: 2026-01-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SCHEMA = "ingest"


def upgrade() -> None:
    # Rows accepted before this version have none (""): their logs carry no trace id.
    op.add_column(
        "conversations",
        sa.Column("trace_id", sa.String(64), nullable=False, server_default=""),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_column("conversations", "trace_id", schema=SCHEMA)
