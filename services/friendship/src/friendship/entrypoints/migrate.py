"""`friendship-migrate`: create the database and the `friendship` schema, upgrade to head."""

from __future__ import annotations

import logging
import os
import sys

from sqlalchemy.engine import make_url

from servicekit.db import migrate
from servicekit.logging import configure_logging
from servicekit.settings import DEFAULT_DATABASE_URL

SCRIPT_LOCATION = "friendship:migrations"
SCHEMA = "friendship"

log = logging.getLogger("friendship.migrate")


def run(database_url: str) -> None:
    migrate(database_url, SCRIPT_LOCATION, SCHEMA)


def main() -> None:
    configure_logging("friendship-migrate", os.environ.get("LOG_LEVEL", "INFO"))
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    database = make_url(url).database
    try:
        run(url)
    except Exception as exc:
        log.error(
            "migration failed",
            extra={
                "database": database,
                "error": type(exc).__name__,
                "detail": (str(exc).splitlines() or [""])[0][:200],
            },
        )
        sys.exit(1)
    log.info("migrated", extra={"database": database, "schema": SCHEMA})


if __name__ == "__main__":
    main()
