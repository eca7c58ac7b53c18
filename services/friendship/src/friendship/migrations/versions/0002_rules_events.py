"""friendship: rule sets, rule change jobs/results, level-change outbox, history index

Revision ID: 0002
Revises: 0001
Create Date: 2025-06-01

No rule set is seeded here: the migration only knows DATABASE_URL, while the first rule set
must be the formula the server runs with (its environment). The server stores it at start-up
when none exists (FriendshipHandlers.ensure_rules), as version "v1", the version every
existing ledger row and status already carry.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "friendship"


def upgrade() -> None:
    op.add_column(
        "friendship_status",
        sa.Column("rule_version", sa.Text, nullable=False, server_default=sa.text("'v1'")),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_ledger_user_history",
        "ledger",
        ["user_id", "applied_at", "conversation_id"],
        schema=SCHEMA,
    )
    op.create_table(
        "rule_sets",
        sa.Column("version", sa.Text, primary_key=True),
        sa.Column("body", postgresql.JSONB, nullable=False),
        sa.Column("mode", sa.Text, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        schema=SCHEMA,
    )
    op.create_index(
        "ux_rule_sets_one_active",
        "rule_sets",
        ["active"],
        unique=True,
        postgresql_where=sa.text("active"),
        schema=SCHEMA,
    )
    op.create_table(
        "rule_jobs",
        sa.Column("version", sa.Text, primary_key=True),
        sa.Column("mode", sa.Text, nullable=False),
        sa.Column("cursor", sa.Text, nullable=False, server_default=sa.text("''")),
        sa.Column("users_done", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column(
            "started_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        schema=SCHEMA,
    )
    op.create_table(
        "rule_results",
        sa.Column("version", sa.Text, primary_key=True),
        sa.Column("user_id", sa.Text, primary_key=True),
        sa.Column("old_score", sa.Double, nullable=False),
        sa.Column("new_score", sa.Double, nullable=False),
        sa.Column("old_level", sa.Text, nullable=False),
        sa.Column("new_level", sa.Text, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        schema=SCHEMA,
    )
    op.create_index("ix_rule_results_user_id", "rule_results", ["user_id"], schema=SCHEMA)
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
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
        schema=SCHEMA,
    )
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["id"],
        postgresql_where=sa.text("published_at IS NULL"),
        schema=SCHEMA,
    )
    op.create_index("ix_outbox_user_id", "outbox", ["user_id"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_table("outbox", schema=SCHEMA)
    op.drop_table("rule_results", schema=SCHEMA)
    op.drop_table("rule_jobs", schema=SCHEMA)
    op.drop_table("rule_sets", schema=SCHEMA)
    op.drop_index("ix_ledger_user_history", table_name="ledger", schema=SCHEMA)
    op.drop_column("friendship_status", "rule_version", schema=SCHEMA)
