"""The lease sweeper: conversations nobody is working on any more go back through the outbox.

A worker that claims a conversation holds it PROCESSING under a lease. If the worker dies
and its message is gone too (acked, or dead-lettered by the broker's delivery limit), the
lease runs out and nothing would ever pick the conversation up again. Each sweep takes,
with `FOR UPDATE SKIP LOCKED` (several replicas may sweep at once):

- PROCESSING rows whose lease expired: back to PENDING (attempts kept, so a conversation
  that kills its workers still runs out of attempts), with a new outbox row;
- PENDING rows untouched for `pending_after_s` with no outbox row waiting: a new outbox row
  (their message was published long ago and never claimed; a lost message is the only
  way there). `updated_at` moves, so such a row is swept at most once per period.

Duplicated messages are harmless: claims are idempotent and friendship's ledger applies a
conversation once. The sweep runs inside the outbox relay's loop, on its connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from prometheus_client import Counter
from sqlalchemy.engine import Engine

from ingest.adapters.tables import conversations, outbox

SWEPT = Counter(
    "ingest_sweeper_requeued_total", "Conversations the sweeper enqueued again", ["reason"]
)
LEASE_EXPIRED_NOTE = "lease expired (worker lost)"


@dataclass(frozen=True)
class SweepResult:
    released: int  # PROCESSING past their lease
    nudged: int  # stale PENDING

    @property
    def total(self) -> int:
        return self.released + self.nudged


class LeaseSweeper:
    def __init__(self, engine: Engine, *, pending_after_s: float, batch_size: int) -> None:
        self._engine = engine
        self._pending_after_s = pending_after_s
        self._batch_size = batch_size

    def sweep(self) -> SweepResult:
        """One transaction; blocking (run it through a BlockingRunner)."""
        with self._engine.begin() as conn:
            now = conn.execute(sa.select(sa.func.now())).scalar_one()
            expired = (
                sa.select(conversations.c.conversation_id)
                .where(
                    conversations.c.status == "PROCESSING",
                    conversations.c.lease_expires_at < now,
                )
                .order_by(conversations.c.lease_expires_at)
                .limit(self._batch_size)
                .with_for_update(skip_locked=True)
            )
            released = list(conn.execute(expired).scalars())
            if released:
                conn.execute(
                    sa.update(conversations)
                    .where(conversations.c.conversation_id.in_(released))
                    .values(
                        status="PENDING",
                        lease_expires_at=None,
                        last_error=LEASE_EXPIRED_NOTE,
                        updated_at=now,
                    )
                )
            nudged: list[str] = []
            if self._pending_after_s > 0:
                waiting = sa.exists().where(
                    outbox.c.conversation_id == conversations.c.conversation_id,
                    outbox.c.published_at.is_(None),
                )
                stale = (
                    sa.select(conversations.c.conversation_id)
                    .where(
                        conversations.c.status == "PENDING",
                        conversations.c.updated_at
                        < now - timedelta(seconds=self._pending_after_s),
                        ~waiting,
                    )
                    .order_by(conversations.c.updated_at)
                    .limit(self._batch_size)
                    .with_for_update(skip_locked=True)
                )
                nudged = list(conn.execute(stale).scalars())
                if nudged:
                    conn.execute(
                        sa.update(conversations)
                        .where(conversations.c.conversation_id.in_(nudged))
                        .values(updated_at=now)
                    )
            ids = released + nudged
            if ids:
                conn.execute(
                    sa.insert(outbox),
                    [{"conversation_id": cid, "created_at": now} for cid in ids],
                )
        if released:
            SWEPT.labels("lease_expired").inc(len(released))
        if nudged:
            SWEPT.labels("pending_stale").inc(len(nudged))
        return SweepResult(len(released), len(nudged))
