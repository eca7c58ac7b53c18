"""SQLAlchemy (Core) repositories and the unit of work over them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from json.encoder import encode_basestring
from types import TracebackType
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection, Engine

from ingest.adapters.tables import conversations, erased_conversations, outbox
from ingest.domain.model import Analysis, Instant, Metadata, NormalizedConversation, Turn
from ingest.domain.status import Status
from ingest.handlers import ConversationState, NewConversation

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def instant_to_datetime(value: Instant | None) -> datetime | None:
    if value is None:
        return None
    return _EPOCH + timedelta(seconds=value.seconds, microseconds=value.nanos // 1000)


def _instant_json(value: Instant | None) -> dict[str, int] | None:
    return None if value is None else {"seconds": value.seconds, "nanos": value.nanos}


def _instant_from_json(value: dict[str, int] | None) -> Instant | None:
    return None if value is None else Instant(int(value["seconds"]), int(value["nanos"]))


def turns_to_json(turns: tuple[Turn, ...]) -> list[dict[str, Any]]:
    return [{"role": t.role, "content": t.content, "at": _instant_json(t.at)} for t in turns]


def _at_json(value: Instant | None) -> str:
    return "null" if value is None else (
        f'{{"seconds":{int(value.seconds)},"nanos":{int(value.nanos)}}}'
    )


def turns_json(turns: tuple[Turn, ...]) -> str:
    """The JSON text of turns_to_json(turns), written directly (no dicts, no encoder call per
    turn); bound as text and cast to jsonb by the statement."""
    return "[" + ",".join([
        f'{{"role":{encode_basestring(t.role)},"content":{encode_basestring(t.content)},'
        f'"at":{_at_json(t.at)}}}'
        for t in turns
    ]) + "]"


def turns_from_json(rows: list[dict[str, Any]]) -> tuple[Turn, ...]:
    return tuple(
        Turn(role=r["role"], content=r["content"], at=_instant_from_json(r.get("at")))
        for r in rows
    )


def analysis_to_json(analysis: Analysis | None) -> dict[str, Any] | None:
    if analysis is None:
        return None
    return {
        "total_turns": analysis.total_turns,
        "user_initiated_questions": analysis.user_initiated_questions,
        "session_emotion": analysis.session_emotion,
        "new_memories_count": analysis.new_memories_count,
        "source": analysis.source,
    }


def analysis_from_json(value: dict[str, Any] | None) -> Analysis | None:
    if value is None:
        return None
    return Analysis(
        total_turns=int(value["total_turns"]),
        user_initiated_questions=int(value["user_initiated_questions"]),
        session_emotion=int(value["session_emotion"]),
        new_memories_count=int(value["new_memories_count"]),
        source=str(value["source"]),
    )


# Prebuilt statements (text, bound parameters): nothing is built or compiled per call. JSONB
# values are bound as JSON text and cast by the statement.
_C = conversations.fullname
_STATE = (
    "conversation_id, status, attempts, last_error, score_change, analysis, content_hash,"
    " accepted_at, updated_at, lease_expires_at"
)
_NORMALIZED = (
    "conversation_id, user_id, bot_id, bot_type, agent_tag, normalized_log,"
    " user_initiated_questions, session_emotion"
)
# The conversation and its outbox row in one statement (atomic on its own): the outbox row
# is inserted only if the conversation was. normalized_log NULL: the same as the raw log
# (sent and parsed once).
INSERT_WITH_OUTBOX = sa.text(
    f"WITH logs AS (SELECT CAST(:raw_log AS jsonb) AS raw_log),"
    f" inserted AS ("
    f" INSERT INTO {_C} (conversation_id, user_id, bot_id, bot_type, agent_tag, raw_log,"
    f" normalized_log, user_initiated_questions, session_emotion, started_at, ended_at,"
    f" content_hash, status, attempts, last_error, accepted_at, updated_at, trace_id)"
    f" VALUES (:conversation_id, :user_id, :bot_id, :bot_type, :agent_tag,"
    f" (SELECT raw_log FROM logs),"
    f" COALESCE(CAST(:normalized_log AS jsonb), (SELECT raw_log FROM logs)),"
    f" :user_initiated_questions, :session_emotion, :started_at, :ended_at, :content_hash,"
    f" :status, 0, '', :accepted_at, :accepted_at, :trace_id)"
    f" ON CONFLICT (conversation_id) DO NOTHING RETURNING conversation_id)"
    f" INSERT INTO {outbox.fullname} (conversation_id, created_at)"
    f" SELECT conversation_id, :accepted_at FROM inserted RETURNING id"
)
GET_STATE = sa.text(f"SELECT {_STATE} FROM {_C} WHERE conversation_id = :conversation_id")
GET_STATE_FOR_UPDATE = sa.text(
    f"SELECT {_STATE} FROM {_C} WHERE conversation_id = :conversation_id FOR UPDATE"
)
SAVE_STATE = sa.text(
    f"UPDATE {_C} SET status = :status, attempts = :attempts, last_error = :last_error,"
    f" score_change = :score_change, analysis = CAST(:analysis AS jsonb),"
    f" lease_expires_at = :lease_expires_at, updated_at = :updated_at"
    f" WHERE conversation_id = :conversation_id"
)
GET_NORMALIZED = sa.text(
    f"SELECT {_NORMALIZED} FROM {_C} WHERE conversation_id = :conversation_id"
)
CLAIM_IF = sa.text(
    f"UPDATE {_C} SET status = :processing, attempts = attempts + 1,"
    f" lease_expires_at = :lease_expires_at, updated_at = :now"
    f" WHERE conversation_id = :conversation_id AND status = ANY(:claimable)"
    f" RETURNING attempts, {_NORMALIZED}"
)
COMPLETE_IF = sa.text(
    f"UPDATE {_C} SET status = :outcome, score_change = :score_change,"
    f" analysis = CAST(:analysis AS jsonb), lease_expires_at = NULL, updated_at = :now"
    f" WHERE conversation_id = :conversation_id AND status = ANY(:from_statuses)"
    f" RETURNING accepted_at"
)


def _json_or_none(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value)


def _normalized_from_row(row: sa.Row[Any]) -> NormalizedConversation:
    return NormalizedConversation(
        conversation_id=row.conversation_id,
        user_id=row.user_id,
        bot_id=row.bot_id,
        bot_type=row.bot_type,
        agent_tag=row.agent_tag,
        turns=turns_from_json(row.normalized_log),
        metadata=Metadata(row.user_initiated_questions, row.session_emotion),
    )


def _require_transaction(transaction: bool, what: str) -> None:
    if not transaction:
        raise RuntimeError(f"{what} needs a unit of work with a transaction")


class SqlAlchemyConversationRepository:
    def __init__(self, conn: Connection, *, transaction: bool = True) -> None:
        self._conn = conn
        self._transaction = transaction

    def insert_with_outbox_if_absent(self, conversation: NewConversation) -> bool:
        request = conversation.request
        # Mostly the normalized turns are the turns as received: then the log is serialized,
        # sent and parsed once, for both columns.
        normalized_log = (
            None if conversation.normalized == request.turns
            else turns_json(conversation.normalized)
        )
        params = {
            "conversation_id": request.conversation_id,
            "user_id": request.user_id,
            "bot_id": request.bot_id,
            "bot_type": request.bot_type,
            "agent_tag": request.agent_tag,
            "raw_log": turns_json(request.turns),
            "normalized_log": normalized_log,
            "user_initiated_questions": request.metadata.user_initiated_questions,
            "session_emotion": request.metadata.session_emotion,
            "started_at": instant_to_datetime(request.started_at),
            "ended_at": instant_to_datetime(request.ended_at),
            "content_hash": conversation.content_hash,
            "status": Status.PENDING.value,
            "accepted_at": conversation.accepted_at,
            "trace_id": conversation.trace_id,
        }
        return self._conn.execute(INSERT_WITH_OUTBOX, params).first() is not None

    def claim_if(
        self,
        conversation_id: str,
        claimable: frozenset[Status],
        lease_expires_at: datetime,
        now: datetime,
    ) -> tuple[int, NormalizedConversation] | None:
        row = self._conn.execute(
            CLAIM_IF,
            {
                "conversation_id": conversation_id,
                "processing": Status.PROCESSING.value,
                "claimable": sorted(s.value for s in claimable),
                "lease_expires_at": lease_expires_at,
                "now": now,
            },
        ).first()
        return None if row is None else (int(row.attempts), _normalized_from_row(row))

    def complete_if(
        self,
        conversation_id: str,
        from_statuses: frozenset[Status],
        outcome: Status,
        score_change: float | None,
        analysis: Analysis | None,
        now: datetime,
    ) -> datetime | None:
        row = self._conn.execute(
            COMPLETE_IF,
            {
                "conversation_id": conversation_id,
                "from_statuses": sorted(s.value for s in from_statuses),
                "outcome": outcome.value,
                "score_change": score_change,
                "analysis": _json_or_none(analysis_to_json(analysis)),
                "now": now,
            },
        ).first()
        return None if row is None else row.accepted_at  # type: ignore[no-any-return]

    def get_state(
        self, conversation_id: str, *, for_update: bool = False
    ) -> ConversationState | None:
        if for_update:
            _require_transaction(self._transaction, "a row lock")
        row = self._conn.execute(
            GET_STATE_FOR_UPDATE if for_update else GET_STATE,
            {"conversation_id": conversation_id},
        ).first()
        if row is None:
            return None
        return ConversationState(
            conversation_id=row.conversation_id,
            status=Status(row.status),
            attempts=row.attempts,
            last_error=row.last_error,
            score_change=row.score_change,
            analysis=analysis_from_json(row.analysis),
            content_hash=row.content_hash,
            accepted_at=row.accepted_at,
            updated_at=row.updated_at,
            lease_expires_at=row.lease_expires_at,
        )

    def save_state(self, state: ConversationState) -> None:
        _require_transaction(self._transaction, "save_state")
        self._conn.execute(
            SAVE_STATE,
            {
                "conversation_id": state.conversation_id,
                "status": state.status.value,
                "attempts": state.attempts,
                "last_error": state.last_error,
                "score_change": state.score_change,
                "analysis": _json_or_none(analysis_to_json(state.analysis)),
                "lease_expires_at": state.lease_expires_at,
                "updated_at": state.updated_at,
            },
        )

    def get_normalized(self, conversation_id: str) -> NormalizedConversation:
        row = self._conn.execute(GET_NORMALIZED, {"conversation_id": conversation_id}).one()
        return _normalized_from_row(row)

    def delete_of_user(self, user_id: str) -> list[str]:
        _require_transaction(self._transaction, "delete_of_user")
        ids = [
            row.conversation_id
            for row in self._conn.execute(
                sa.select(conversations.c.conversation_id)
                .where(conversations.c.user_id == user_id)
                .order_by(conversations.c.conversation_id)
                .with_for_update()
            )
        ]
        if ids:
            self._conn.execute(
                sa.delete(conversations).where(conversations.c.conversation_id.in_(ids))
            )
        return ids

    def add_tombstones(self, user_hash: str, conversation_hashes: list[str], now: datetime) -> None:
        _require_transaction(self._transaction, "add_tombstones")
        if not conversation_hashes:
            return
        self._conn.execute(
            pg_insert(erased_conversations)
            .values(
                [
                    {"conversation_hash": h, "user_hash": user_hash, "erased_at": now}
                    for h in conversation_hashes
                ]
            )
            .on_conflict_do_nothing(index_elements=[erased_conversations.c.conversation_hash])
        )

    def tombstones_of(self, user_hash: str) -> list[str]:
        return [
            row.conversation_hash
            for row in self._conn.execute(
                sa.select(erased_conversations.c.conversation_hash)
                .where(erased_conversations.c.user_hash == user_hash)
                .order_by(erased_conversations.c.conversation_hash)
            )
        ]

    def drop_raw_logs(self, accepted_before: datetime, limit: int, now: datetime) -> int:
        _require_transaction(self._transaction, "drop_raw_logs")
        batch = (
            sa.select(conversations.c.conversation_id)
            .where(
                conversations.c.raw_log.is_not(None),
                conversations.c.accepted_at < accepted_before,
            )
            .order_by(conversations.c.accepted_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        result = self._conn.execute(
            sa.update(conversations)
            .where(conversations.c.conversation_id.in_(batch))
            .values(raw_log=sa.null(), raw_log_dropped_at=now)
        )
        return int(result.rowcount)


class SqlAlchemyOutboxRepository:
    def __init__(self, conn: Connection, *, transaction: bool = True) -> None:
        self._conn = conn
        self._transaction = transaction

    def add(self, conversation_id: str, created_at: datetime) -> None:
        _require_transaction(self._transaction, "outbox.add")
        self._conn.execute(
            sa.insert(outbox).values(conversation_id=conversation_id, created_at=created_at)
        )

    def has_unpublished(self, conversation_id: str) -> bool:
        row = self._conn.execute(
            sa.select(outbox.c.id)
            .where(outbox.c.conversation_id == conversation_id, outbox.c.published_at.is_(None))
            .limit(1)
        ).first()
        return row is not None

    def delete_of(self, conversation_ids: list[str]) -> int:
        _require_transaction(self._transaction, "outbox.delete_of")
        if not conversation_ids:
            return 0
        result = self._conn.execute(
            sa.delete(outbox).where(outbox.c.conversation_id.in_(conversation_ids))
        )
        return int(result.rowcount)


class SqlAlchemyUnitOfWork:
    """One connection. With a transaction (the default): one transaction, rolled back unless
    commit() was called. Without (transaction=False): psycopg2's autocommit for the unit, so
    each statement commits on its own with no BEGIN/COMMIT round trips; only reads and the
    single-statement writes run in it (the other writes refuse), and commit() does nothing.

    (SQLAlchemy's isolation_level="AUTOCOMMIT" would do the same but send a SET on every
    return of the connection to the pool; the driver's flag is client-side, and is reset
    before the connection goes back.)
    """

    conversations: SqlAlchemyConversationRepository
    outbox: SqlAlchemyOutboxRepository

    def __init__(self, engine: Engine, *, transaction: bool = True) -> None:
        self._engine = engine
        self._transaction = transaction
        self._conn: Connection | None = None
        self._driver: Any = None

    def __enter__(self) -> Self:
        conn = self._engine.connect()
        try:
            if self._transaction:
                conn.begin()
            else:
                self._driver = conn.connection.driver_connection
                self._driver.autocommit = True
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self.conversations = SqlAlchemyConversationRepository(
            conn, transaction=self._transaction
        )
        self.outbox = SqlAlchemyOutboxRepository(conn, transaction=self._transaction)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, driver = self._conn, self._driver
        assert conn is not None
        self._conn = self._driver = None
        try:
            if conn.in_transaction():
                conn.rollback()  # without a transaction: nothing to roll back, nothing sent
            if driver is not None and not conn.invalidated:
                try:
                    driver.autocommit = False
                except Exception:
                    # Never hand an autocommit connection back to the pool.
                    conn.invalidate()
        finally:
            conn.close()

    def commit(self) -> None:
        assert self._conn is not None
        if self._transaction:
            self._conn.commit()
