from ingest.adapters.tables import metadata
from servicekit.db import run_alembic_env

run_alembic_env(metadata)
