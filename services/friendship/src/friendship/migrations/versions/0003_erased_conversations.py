"""friendship: erasure tombstones

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "friendship"


def upgrade() -> None:
    # sha256 (hex) of conversation ids erased by DeleteUserData: ApplyConversation refuses
    # them (a conversation of the erased user that was still in flight).
    op.create_table(
        "erased_conversations",
        sa.Column("conversation_hash", sa.Text, primary_key=True),
        sa.Column(
            "erased_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("erased_conversations", schema=SCHEMA)
