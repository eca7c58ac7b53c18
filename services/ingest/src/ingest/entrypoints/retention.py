"""`ingest-retention`: drops raw conversation logs older than RETENTION_RAW_LOG_DAYS.

Keeps the normalized log (the analysis input a re-process needs), the status, the analysis
and the content hash (so a robot's retry is still recognised as a duplicate). Batched (one
short transaction per RETENTION_BATCH_SIZE conversations, rows locked by a running claim are
skipped and taken by the next run) and idempotent: a second run finds nothing to drop.
Needs only DATABASE_URL. Prints one JSON line on stdout; exit 0 done, 1 database
unreachable, 2 bad configuration. Run by `make retention` and the k8s CronJob.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from datetime import UTC, datetime, timedelta

import sqlalchemy.exc
from pydantic import ValidationError

from ingest.adapters.repository import SqlAlchemyUnitOfWork
from ingest.config import RetentionSettings
from ingest.handlers import drop_raw_logs
from servicekit.db import create_db_engine
from servicekit.logging import configure_logging

log = logging.getLogger("ingest.retention")

EXIT_DB = 1
EXIT_USAGE = 2


def run(settings: RetentionSettings, now: datetime | None = None) -> int:
    engine = create_db_engine(
        settings.database_url,
        application_name="ingest-retention",
        pool_size=1,
        pool_timeout_s=10.0,
        connect_timeout_s=settings.db_connect_timeout_s,
        statement_timeout_ms=settings.db_statement_timeout_ms,
    )
    started = now or datetime.now(UTC)
    try:
        dropped = drop_raw_logs(
            functools.partial(SqlAlchemyUnitOfWork, engine),
            older_than=timedelta(days=settings.retention_raw_log_days),
            batch_size=settings.retention_batch_size,
            now=started,
        )
    except sqlalchemy.exc.OperationalError as exc:
        log.error(
            "database unavailable",
            extra={"error": (str(exc.orig).splitlines() or [""])[0][:200]},
        )
        return EXIT_DB
    finally:
        engine.dispose()
    log.info(
        "raw logs dropped",
        extra={"dropped": dropped, "older_than_days": settings.retention_raw_log_days},
    )
    sys.stdout.write(
        json.dumps(
            {
                "raw_logs_dropped": dropped,
                "older_than_days": settings.retention_raw_log_days,
                "cutoff": (started - timedelta(days=settings.retention_raw_log_days)).isoformat(),
            }
        )
        + "\n"
    )
    sys.stdout.flush()
    return 0


def main() -> None:
    configure_logging("ingest-retention")
    try:
        settings = RetentionSettings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        log.error("invalid configuration: %s", problems)
        sys.exit(EXIT_USAGE)
    configure_logging("ingest-retention", settings.log_level)
    sys.exit(run(settings))


if __name__ == "__main__":
    main()
