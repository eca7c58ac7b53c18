"""PostgreSQL repository and unit of work (SQLAlchemy Core over psycopg2)."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection, Engine, RootTransaction

from friendship.adapters.tables import friendship_status, ledger, topic_metrics
from friendship.domain.friendship import FriendshipStatus, LedgerEntry
from friendship.domain.levels import Level
from friendship.domain.scoring import AnalysisInput, Emotion, ScoreBreakdown
from friendship.domain.topics import TopicState


def _status_from_row(row: Any) -> FriendshipStatus:
    return FriendshipStatus(
        user_id=row.user_id,
        score=float(row.score),
        level=Level(row.level),
        conversations=int(row.conversations),
        updated_at=row.updated_at,
    )


def _topic_from_row(row: Any) -> TopicState:
    return TopicState(
        user_id=row.user_id,
        topic_id=row.topic_id,
        score=float(row.score),
        turns=int(row.turns),
        agents_used=tuple(row.agents_used or ()),
        updated_at=row.updated_at,
    )


def _ledger_from_row(row: Any) -> LedgerEntry:
    return LedgerEntry(
        conversation_id=row.conversation_id,
        user_id=row.user_id,
        bot_id=row.bot_id,
        agent_tag=row.agent_tag,
        analysis=AnalysisInput(
            total_turns=row.total_turns,
            user_initiated_questions=row.user_initiated_questions,
            emotion=Emotion[row.emotion.upper()],
            new_memories_count=row.new_memories_count,
            source=row.source,
        ),
        breakdown=ScoreBreakdown(
            base=row.base_points,
            engagement=row.engagement_points,
            emotion=row.emotion_points,
            memory=row.memory_points,
            total=row.score_change,
        ),
        applied_delta=row.applied_delta,
        score_before=row.score_before,
        score_after=row.score_after,
        level_before=Level(row.level_before),
        level_after=Level(row.level_after),
        applied_at=row.applied_at,
        rule_version=row.rule_version,
    )


class SqlAlchemyFriendshipRepository:
    """Reads and writes inside the caller's transaction; never commits."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def get_status(self, user_id: str) -> FriendshipStatus | None:
        row = self._conn.execute(
            sa.select(friendship_status).where(friendship_status.c.user_id == user_id)
        ).one_or_none()
        return _status_from_row(row) if row is not None else None

    def list_topics(self, user_id: str) -> list[TopicState]:
        rows = self._conn.execute(
            sa.select(topic_metrics)
            .where(topic_metrics.c.user_id == user_id)
            .order_by(topic_metrics.c.topic_id)
        ).all()
        return [_topic_from_row(row) for row in rows]

    def lock_status(self, user_id: str) -> FriendshipStatus:
        self._conn.execute(
            pg_insert(friendship_status)
            .values(user_id=user_id, score=0.0, level=Level.STRANGER.value, conversations=0)
            .on_conflict_do_nothing(index_elements=[friendship_status.c.user_id])
        )
        row = self._conn.execute(
            sa.select(friendship_status)
            .where(friendship_status.c.user_id == user_id)
            .with_for_update()
        ).one()
        return _status_from_row(row)

    def lock_topic(self, user_id: str, topic_id: str) -> TopicState:
        self._conn.execute(
            pg_insert(topic_metrics)
            .values(user_id=user_id, topic_id=topic_id, score=0.0, turns=0, agents_used=[])
            .on_conflict_do_nothing(
                index_elements=[topic_metrics.c.user_id, topic_metrics.c.topic_id]
            )
        )
        row = self._conn.execute(
            sa.select(topic_metrics)
            .where(topic_metrics.c.user_id == user_id, topic_metrics.c.topic_id == topic_id)
            .with_for_update()
        ).one()
        return _topic_from_row(row)

    def find_ledger(self, conversation_id: str) -> LedgerEntry | None:
        row = self._conn.execute(
            sa.select(ledger).where(ledger.c.conversation_id == conversation_id)
        ).one_or_none()
        return _ledger_from_row(row) if row is not None else None

    def insert_ledger(self, entry: LedgerEntry) -> bool:
        inserted = self._conn.execute(
            pg_insert(ledger)
            .values(
                conversation_id=entry.conversation_id,
                user_id=entry.user_id,
                bot_id=entry.bot_id,
                agent_tag=entry.agent_tag,
                total_turns=entry.analysis.total_turns,
                user_initiated_questions=entry.analysis.user_initiated_questions,
                emotion=entry.analysis.emotion.name.lower(),
                new_memories_count=entry.analysis.new_memories_count,
                source=entry.analysis.source,
                base_points=entry.breakdown.base,
                engagement_points=entry.breakdown.engagement,
                emotion_points=entry.breakdown.emotion,
                memory_points=entry.breakdown.memory,
                score_change=entry.breakdown.total,
                applied_delta=entry.applied_delta,
                score_before=entry.score_before,
                score_after=entry.score_after,
                level_before=entry.level_before.value,
                level_after=entry.level_after.value,
                rule_version=entry.rule_version,
                applied_at=entry.applied_at,
            )
            .on_conflict_do_nothing(index_elements=[ledger.c.conversation_id])
            .returning(ledger.c.conversation_id)
        ).first()
        return inserted is not None

    def save_status(self, status: FriendshipStatus) -> None:
        self._conn.execute(
            sa.update(friendship_status)
            .where(friendship_status.c.user_id == status.user_id)
            .values(
                score=status.score,
                level=status.level.value,
                conversations=status.conversations,
                updated_at=status.updated_at or sa.func.now(),
            )
        )

    def save_topic(self, topic: TopicState) -> None:
        self._conn.execute(
            sa.update(topic_metrics)
            .where(
                topic_metrics.c.user_id == topic.user_id,
                topic_metrics.c.topic_id == topic.topic_id,
            )
            .values(
                score=topic.score,
                turns=topic.turns,
                agents_used=list(topic.agents_used),
                updated_at=topic.updated_at or sa.func.now(),
            )
        )


class SqlAlchemyUnitOfWork:
    """One connection, one transaction; rolled back on exit unless committed."""

    friendship: SqlAlchemyFriendshipRepository

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._conn: Connection | None = None
        self._tx: RootTransaction | None = None

    def __enter__(self) -> Self:
        self._conn = self._engine.connect()
        try:
            self._tx = self._conn.begin()
        except BaseException:
            self._conn.close()
            raise
        self.friendship = SqlAlchemyFriendshipRepository(self._conn)
        return self

    def commit(self) -> None:
        assert self._tx is not None, "commit() outside the unit of work"
        self._tx.commit()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._tx is not None and self._tx.is_active:
                self._tx.rollback()
        finally:
            if self._conn is not None:
                self._conn.close()
            self._tx = None
            self._conn = None
