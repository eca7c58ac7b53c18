"""erasure tombstones

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = "analyzer"


def upgrade() -> None:
    # sha256 (hex) of the conversation ids erased by DeleteUserData: no analysis or memory
    # is stored for them again (a conversation that was in flight at erasure).
    op.create_table(
        "erased_conversations",
        sa.Column("conversation_hash", sa.String(64), primary_key=True),
        sa.Column(
            "erased_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("erased_conversations", schema=SCHEMA)
