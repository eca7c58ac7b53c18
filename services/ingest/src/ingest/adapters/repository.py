"""SQLAlchemy (Core) repositories and the unit of work over them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
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


_STATE_COLUMNS = (
    conversations.c.conversation_id,
    conversations.c.status,
    conversations.c.attempts,
    conversations.c.last_error,
    conversations.c.score_change,
    conversations.c.analysis,
    conversations.c.content_hash,
    conversations.c.accepted_at,
    conversations.c.updated_at,
    conversations.c.lease_expires_at,
)


class SqlAlchemyConversationRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def insert_if_absent(self, conversation: NewConversation) -> bool:
        request = conversation.request
        statement = (
            pg_insert(conversations)
            .values(
                conversation_id=request.conversation_id,
                user_id=request.user_id,
                bot_id=request.bot_id,
                bot_type=request.bot_type,
                agent_tag=request.agent_tag,
                raw_log=turns_to_json(request.turns),
                normalized_log=turns_to_json(conversation.normalized),
                user_initiated_questions=request.metadata.user_initiated_questions,
                session_emotion=request.metadata.session_emotion,
                started_at=instant_to_datetime(request.started_at),
                ended_at=instant_to_datetime(request.ended_at),
                content_hash=conversation.content_hash,
                status=Status.PENDING.value,
                attempts=0,
                last_error="",
                accepted_at=conversation.accepted_at,
                updated_at=conversation.accepted_at,
                trace_id=conversation.trace_id,
            )
            .on_conflict_do_nothing(index_elements=[conversations.c.conversation_id])
            .returning(conversations.c.conversation_id)
        )
        return self._conn.execute(statement).first() is not None

    def get_state(
        self, conversation_id: str, *, for_update: bool = False
    ) -> ConversationState | None:
        query = sa.select(*_STATE_COLUMNS).where(
            conversations.c.conversation_id == conversation_id
        )
        if for_update:
            query = query.with_for_update()
        row = self._conn.execute(query).mappings().first()
        if row is None:
            return None
        return ConversationState(
            conversation_id=row["conversation_id"],
            status=Status(row["status"]),
            attempts=row["attempts"],
            last_error=row["last_error"],
            score_change=row["score_change"],
            analysis=analysis_from_json(row["analysis"]),
            content_hash=row["content_hash"],
            accepted_at=row["accepted_at"],
            updated_at=row["updated_at"],
            lease_expires_at=row["lease_expires_at"],
        )

    def save_state(self, state: ConversationState) -> None:
        self._conn.execute(
            sa.update(conversations)
            .where(conversations.c.conversation_id == state.conversation_id)
            .values(
                status=state.status.value,
                attempts=state.attempts,
                last_error=state.last_error,
                score_change=state.score_change,
                analysis=analysis_to_json(state.analysis),
                lease_expires_at=state.lease_expires_at,
                updated_at=state.updated_at,
            )
        )

    def get_normalized(self, conversation_id: str) -> NormalizedConversation:
        row = (
            self._conn.execute(
                sa.select(
                    conversations.c.conversation_id,
                    conversations.c.user_id,
                    conversations.c.bot_id,
                    conversations.c.bot_type,
                    conversations.c.agent_tag,
                    conversations.c.normalized_log,
                    conversations.c.user_initiated_questions,
                    conversations.c.session_emotion,
                ).where(conversations.c.conversation_id == conversation_id)
            )
            .mappings()
            .one()
        )
        return NormalizedConversation(
            conversation_id=row["conversation_id"],
            user_id=row["user_id"],
            bot_id=row["bot_id"],
            bot_type=row["bot_type"],
            agent_tag=row["agent_tag"],
            turns=turns_from_json(row["normalized_log"]),
            metadata=Metadata(row["user_initiated_questions"], row["session_emotion"]),
        )

    def delete_of_user(self, user_id: str) -> list[str]:
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
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, conversation_id: str, created_at: datetime) -> None:
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
        if not conversation_ids:
            return 0
        result = self._conn.execute(
            sa.delete(outbox).where(outbox.c.conversation_id.in_(conversation_ids))
        )
        return int(result.rowcount)


class SqlAlchemyUnitOfWork:
    """One connection, one transaction; rolls back unless commit() was called."""

    conversations: SqlAlchemyConversationRepository
    outbox: SqlAlchemyOutboxRepository

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._conn: Connection | None = None

    def __enter__(self) -> Self:
        self._conn = self._engine.connect()
        self._conn.begin()
        self.conversations = SqlAlchemyConversationRepository(self._conn)
        self.outbox = SqlAlchemyOutboxRepository(self._conn)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._conn is not None
        try:
            if self._conn.in_transaction():
                self._conn.rollback()
        finally:
            self._conn.close()
            self._conn = None

    def commit(self) -> None:
        assert self._conn is not None
        self._conn.commit()
