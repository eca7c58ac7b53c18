"""ingest-migrate: create the database and the `ingest` schema if missing, upgrade to head."""

from __future__ import annotations

import logging
import os
import sys

from servicekit.db import migrate
from servicekit.logging import configure_logging
from servicekit.settings import DEFAULT_DATABASE_URL

log = logging.getLogger(__name__)


def main() -> None:
    configure_logging("ingest", os.environ.get("LOG_LEVEL", "INFO"))
    url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    try:
        migrate(url, "ingest:migrations", "ingest")
    except Exception as exc:
        log.error("migration failed", extra={"error": f"{type(exc).__name__}: {exc}"})
        sys.exit(1)
    log.info("migrated", extra={"schema": "ingest"})


if __name__ == "__main__":
    main()
