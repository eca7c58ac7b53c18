"""`analyzer-migrate`: create the database and the analyzer schema, upgrade to head."""

from __future__ import annotations

import logging
import os
import sys

from servicekit.db import migrate
from servicekit.logging import configure_logging
from servicekit.settings import DEFAULT_DATABASE_URL

log = logging.getLogger("analyzer.migrate")


def main() -> None:
    configure_logging("analyzer", os.environ.get("LOG_LEVEL", "INFO"))
    url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    try:
        migrate(url, "analyzer:migrations", "analyzer")
    except Exception as exc:
        log.error("migration failed", extra={"error_type": type(exc).__name__})
        sys.exit(1)
    log.info("migrated", extra={"schema": "analyzer"})


if __name__ == "__main__":
    main()
