"""friendship: NOTIFY on status and rule set changes (invalidates the GetLevel caches)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

Every committed change of a `friendship_status` row sends NOTIFY friendship_level_changed with
the row's user_id; any change of `rule_sets` (and a TRUNCATE of either table) sends "*"
("forget everything"). Triggers, not application code, so every writer is covered: the
servers' ApplyConversation and erasure, friendship-admin's rule jobs, another replica, an
operator's SQL. PostgreSQL delivers a notification only after its transaction commits, and
only once that commit is visible to new snapshots. Payloads are user ids, never anything else.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "friendship"
# Also in friendship.adapters.level_listener (CHANNEL, CLEAR_ALL).
CHANNEL = "friendship_level_changed"

# NOTIFY payloads are limited to 8000 bytes: a longer id (impossible through the API, whose
# ids are at most 128 characters) clears everything instead of failing the writer's commit.
_STATUS_FUNCTION = f"""
CREATE FUNCTION {SCHEMA}.notify_status_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM pg_notify('{CHANNEL}',
            CASE WHEN octet_length(OLD.user_id) < 7000 THEN OLD.user_id ELSE '*' END);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM pg_notify('{CHANNEL}',
            CASE WHEN octet_length(NEW.user_id) < 7000 THEN NEW.user_id ELSE '*' END);
    END IF;
    RETURN NULL;
END
$$
"""

_CLEAR_FUNCTION = f"""
CREATE FUNCTION {SCHEMA}.notify_levels_cleared() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{CHANNEL}', '*');
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.execute(_STATUS_FUNCTION)
    op.execute(_CLEAR_FUNCTION)
    # (PostgreSQL folds identical notifications of one transaction into one.)
    op.execute(
        f"CREATE TRIGGER friendship_status_notify"
        f" AFTER INSERT OR UPDATE OR DELETE ON {SCHEMA}.friendship_status"
        f" FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.notify_status_changed()"
    )
    op.execute(
        f"CREATE TRIGGER friendship_status_truncate_notify"
        f" AFTER TRUNCATE ON {SCHEMA}.friendship_status"
        f" FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.notify_levels_cleared()"
    )
    op.execute(
        f"CREATE TRIGGER rule_sets_notify"
        f" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {SCHEMA}.rule_sets"
        f" FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.notify_levels_cleared()"
    )


def downgrade() -> None:
    op.execute(f"DROP TRIGGER IF EXISTS rule_sets_notify ON {SCHEMA}.rule_sets")
    op.execute(
        f"DROP TRIGGER IF EXISTS friendship_status_truncate_notify ON {SCHEMA}.friendship_status"
    )
    op.execute(f"DROP TRIGGER IF EXISTS friendship_status_notify ON {SCHEMA}.friendship_status")
    op.execute(f"DROP FUNCTION IF EXISTS {SCHEMA}.notify_levels_cleared()")
    op.execute(f"DROP FUNCTION IF EXISTS {SCHEMA}.notify_status_changed()")
