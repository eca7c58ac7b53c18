"""The lease sweeper on real PostgreSQL: stranded conversations go back through the outbox."""

from __future__ import annotations

import functools
import time
from datetime import UTC, datetime

import sqlalchemy as sa

from ingest import handlers
from ingest.adapters.lease_sweeper import LEASE_EXPIRED_NOTE, LeaseSweeper
from ingest.adapters.repository import SqlAlchemyUnitOfWork
from servicekit.db import create_db_engine
from tests.unit.ingest.fixtures import conversation


def _engine(url: str) -> sa.Engine:
    return create_db_engine(
        url, application_name="sweeper-test", pool_size=2,
        pool_timeout_s=5, connect_timeout_s=2, statement_timeout_ms=5000,
    )  # fmt: skip


def _publish_all(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE ingest.outbox SET published_at = now()"))


def _state(engine: sa.Engine, cid: str) -> tuple[str, int, str, int]:
    with engine.connect() as conn:
        status, attempts, error = conn.execute(
            sa.text("SELECT status, attempts, last_error FROM ingest.conversations "
                    "WHERE conversation_id = :c"), {"c": cid},
        ).one()  # fmt: skip
        waiting = conn.execute(
            sa.text("SELECT count(*) FROM ingest.outbox WHERE conversation_id = :c "
                    "AND published_at IS NULL"), {"c": cid},
        ).scalar_one()  # fmt: skip
    return str(status), int(attempts), str(error), int(waiting)


def test_expired_leases_and_stale_pending_are_enqueued_again_once(migrated_db_url: str) -> None:
    engine = _engine(migrated_db_url)
    try:
        uow = functools.partial(SqlAlchemyUnitOfWork, engine)
        now = datetime.now(UTC)
        lost, live, stale = (conversation(conversation_id=f"sweep-{n}") for n in range(3))
        for request in (lost, live, stale):
            handlers.end_conversation(uow, request, max_turns=10, now=now)
        _publish_all(engine)
        handlers.claim_conversation(uow, lost.conversation_id, 1, now=now)  # its worker dies
        handlers.claim_conversation(uow, live.conversation_id, 600, now=now)
        sweeper = LeaseSweeper(engine, pending_after_s=0, batch_size=10)

        time.sleep(1.2)
        result = sweeper.sweep()
        assert (result.released, result.nudged) == (1, 0)
        assert _state(engine, lost.conversation_id) == ("PENDING", 1, LEASE_EXPIRED_NOTE, 1)
        assert _state(engine, live.conversation_id)[0] == "PROCESSING"
        assert sweeper.sweep().total == 0  # nothing twice

        # PENDING, published, never claimed: enqueued once per period, not while a row waits.
        patient = LeaseSweeper(engine, pending_after_s=0.5, batch_size=10)
        time.sleep(0.6)
        assert patient.sweep().nudged == 1  # `stale` only: `lost` still waits in the outbox
        assert _state(engine, stale.conversation_id) == ("PENDING", 0, "", 1)
        assert patient.sweep().total == 0
    finally:
        engine.dispose()
