"""Alembic environment: online only, connection and schema from servicekit.db.migrate."""

from friendship.adapters.tables import metadata
from servicekit.db import run_alembic_env

run_alembic_env(metadata)
