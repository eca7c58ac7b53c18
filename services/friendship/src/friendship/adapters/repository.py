"""PostgreSQL repository and unit of work (SQLAlchemy Core over psycopg2)."""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection, Engine, RootTransaction

from friendship.adapters.events import level_changed_message
from friendship.adapters.tables import (
    erased_conversations,
    friendship_status,
    ledger,
    outbox,
    rule_jobs,
    rule_results,
    rule_sets,
    topic_metrics,
)
from friendship.domain.events import ROUTING_KEY_LEVEL_CHANGED, LevelChanged
from friendship.domain.friendship import ApplyOutcome, FriendshipStatus, LedgerEntry
from friendship.domain.history import HistoryCursor
from friendship.domain.levels import Level
from friendship.domain.replay import UserChange, ledger_order
from friendship.domain.rules import RuleJob, RuleMode, RuleSet, StoredRuleSet, parse_rule_set
from friendship.domain.scoring import AnalysisInput, Emotion, ScoreBreakdown
from friendship.domain.topics import TopicState
from servicekit.erasure import erasure_hash

# Serializes rule set changes (seed at start-up, activation by the operator command).
_RULE_SETS_LOCK_KEY = 0x46524E44_52554C45 & 0x7FFFFFFFFFFFFFFF  # "FRND" "RULE"


def _status_from_row(row: Any) -> FriendshipStatus:
    return FriendshipStatus(
        user_id=row.user_id,
        score=float(row.score),
        level=Level(row.level),
        conversations=int(row.conversations),
        updated_at=row.updated_at,
        rule_version=row.rule_version,
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


def _stored_rule_set(row: Any) -> StoredRuleSet:
    return StoredRuleSet(
        rules=parse_rule_set(row.body),
        mode=RuleMode(row.mode),
        active=bool(row.active),
        created_at=row.created_at,
    )


def _job_from_row(row: Any) -> RuleJob:
    return RuleJob(
        version=row.version,
        mode=RuleMode(row.mode),
        done=row.finished_at is not None,
        cursor=row.cursor,
        users_done=int(row.users_done),
        started_at=row.started_at,
        finished_at=row.finished_at,
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


# GetLevel's read: the user's row (all NULL when there is none) and the active rule
# version, in one statement (one snapshot, one round trip).
_level_inputs = sa.text(
    "SELECT s.user_id, s.score, s.level, s.conversations, s.updated_at, s.rule_version,"
    " (SELECT version FROM friendship.rule_sets WHERE active) AS active_version"
    " FROM (SELECT CAST(:user_id AS text) AS user_id) AS q"
    " LEFT JOIN friendship.friendship_status AS s ON s.user_id = q.user_id"
)


_lock_status = (
    sa.select(friendship_status)
    .where(friendship_status.c.user_id == sa.bindparam("user_id"))
    .with_for_update()
)
_lock_topic = (
    sa.select(topic_metrics)
    .where(
        topic_metrics.c.user_id == sa.bindparam("user_id"),
        topic_metrics.c.topic_id == sa.bindparam("topic_id"),
    )
    .with_for_update()
)

# ApplyConversation's reads after the user's lock, in one statement: the conversation's
# ledger row if any (all NULL otherwise), its erasure tombstone, the active rule version.
_apply_checks = sa.text(
    "SELECT l.*,"
    " EXISTS (SELECT 1 FROM friendship.erased_conversations"
    "         WHERE conversation_hash = :hash) AS erased,"
    " (SELECT version FROM friendship.rule_sets WHERE active) AS active_version"
    " FROM (SELECT CAST(:conversation_id AS text) AS conversation_id) AS q"
    " LEFT JOIN friendship.ledger AS l ON l.conversation_id = q.conversation_id"
)

_LEDGER_COLUMNS = (
    "conversation_id", "user_id", "bot_id", "agent_tag", "total_turns",
    "user_initiated_questions", "emotion", "new_memories_count", "source", "base_points",
    "engagement_points", "emotion_points", "memory_points", "score_change", "applied_delta",
    "score_before", "score_after", "level_before", "level_after", "rule_version", "applied_at",
)

# ApplyConversation's writes in one statement: the ledger row, and only if it was inserted
# (exactly once: the unique conversation_id decides), the user's status and the topic (rows
# the caller holds locked). Data-modifying CTEs all run; `l` gates the two updates.
_save_applied = sa.text(
    "WITH l AS ("
    f" INSERT INTO friendship.ledger ({', '.join(_LEDGER_COLUMNS)})"
    f" VALUES ({', '.join(':' + c for c in _LEDGER_COLUMNS)})"
    " ON CONFLICT (conversation_id) DO NOTHING RETURNING conversation_id"
    "), s AS ("
    " UPDATE friendship.friendship_status SET score = :s_score, level = :s_level,"
    " conversations = :s_conversations,"
    " updated_at = COALESCE(CAST(:s_updated_at AS timestamptz), now()),"
    " rule_version = :s_rule_version"
    " WHERE user_id = :user_id AND EXISTS (SELECT 1 FROM l)"
    "), t AS ("
    " UPDATE friendship.topic_metrics SET score = :t_score, turns = :t_turns,"
    " agents_used = CAST(:t_agents_used AS text[]),"
    " updated_at = COALESCE(CAST(:t_updated_at AS timestamptz), now())"
    " WHERE user_id = :user_id AND topic_id = :t_topic_id AND EXISTS (SELECT 1 FROM l)"
    ") SELECT count(*) FROM l"
)


def _ledger_values(entry: LedgerEntry) -> dict[str, Any]:
    return {
        "conversation_id": entry.conversation_id,
        "user_id": entry.user_id,
        "bot_id": entry.bot_id,
        "agent_tag": entry.agent_tag,
        "total_turns": entry.analysis.total_turns,
        "user_initiated_questions": entry.analysis.user_initiated_questions,
        "emotion": entry.analysis.emotion.name.lower(),
        "new_memories_count": entry.analysis.new_memories_count,
        "source": entry.analysis.source,
        "base_points": entry.breakdown.base,
        "engagement_points": entry.breakdown.engagement,
        "emotion_points": entry.breakdown.emotion,
        "memory_points": entry.breakdown.memory,
        "score_change": entry.breakdown.total,
        "applied_delta": entry.applied_delta,
        "score_before": entry.score_before,
        "score_after": entry.score_after,
        "level_before": entry.level_before.value,
        "level_after": entry.level_after.value,
        "rule_version": entry.rule_version,
        "applied_at": entry.applied_at,
    }


class SqlAlchemyFriendshipRepository:
    """Reads and writes inside the caller's transaction; never commits."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def get_status(self, user_id: str) -> FriendshipStatus | None:
        row = self._conn.execute(
            sa.select(friendship_status).where(friendship_status.c.user_id == user_id)
        ).one_or_none()
        return _status_from_row(row) if row is not None else None

    def level_inputs(self, user_id: str) -> tuple[FriendshipStatus | None, str | None]:
        row = self._conn.execute(_level_inputs, {"user_id": user_id}).one()
        status = _status_from_row(row) if row.user_id is not None else None
        return status, row.active_version

    def list_topics(self, user_id: str) -> list[TopicState]:
        rows = self._conn.execute(
            sa.select(topic_metrics)
            .where(topic_metrics.c.user_id == user_id)
            .order_by(topic_metrics.c.topic_id)
        ).all()
        return [_topic_from_row(row) for row in rows]

    def lock_status(self, user_id: str) -> FriendshipStatus:
        # Usually the row exists: one round trip. Else create it (a racing creator is fine).
        row = self._conn.execute(_lock_status, {"user_id": user_id}).one_or_none()
        if row is None:
            self._conn.execute(
                pg_insert(friendship_status)
                .values(user_id=user_id, score=0.0, level=Level.STRANGER.value, conversations=0)
                .on_conflict_do_nothing(index_elements=[friendship_status.c.user_id])
            )
            row = self._conn.execute(_lock_status, {"user_id": user_id}).one()
        return _status_from_row(row)

    def lock_topic(self, user_id: str, topic_id: str) -> TopicState:
        params = {"user_id": user_id, "topic_id": topic_id}
        row = self._conn.execute(_lock_topic, params).one_or_none()
        if row is None:
            self._conn.execute(
                pg_insert(topic_metrics)
                .values(user_id=user_id, topic_id=topic_id, score=0.0, turns=0, agents_used=[])
                .on_conflict_do_nothing(
                    index_elements=[topic_metrics.c.user_id, topic_metrics.c.topic_id]
                )
            )
            row = self._conn.execute(_lock_topic, params).one()
        return _topic_from_row(row)

    def apply_checks(self, conversation_id: str) -> tuple[LedgerEntry | None, bool, str | None]:
        row = self._conn.execute(
            _apply_checks,
            {"conversation_id": conversation_id, "hash": erasure_hash(conversation_id)},
        ).one()
        stored = _ledger_from_row(row) if row.conversation_id is not None else None
        return stored, bool(row.erased), row.active_version

    def save_applied(self, outcome: ApplyOutcome) -> bool:
        entry, status, topic = outcome.ledger, outcome.status, outcome.topic
        params = {
            **_ledger_values(entry),
            "s_score": status.score,
            "s_level": status.level.value,
            "s_conversations": status.conversations,
            "s_updated_at": status.updated_at,
            "s_rule_version": status.rule_version,
            "t_topic_id": topic.topic_id if topic is not None else None,
            "t_score": topic.score if topic is not None else 0.0,
            "t_turns": topic.turns if topic is not None else 0,
            "t_agents_used": list(topic.agents_used) if topic is not None else [],
            "t_updated_at": topic.updated_at if topic is not None else None,
        }
        return bool(self._conn.execute(_save_applied, params).scalar_one())

    def find_ledger(self, conversation_id: str) -> LedgerEntry | None:
        row = self._conn.execute(
            sa.select(ledger).where(ledger.c.conversation_id == conversation_id)
        ).one_or_none()
        return _ledger_from_row(row) if row is not None else None

    def insert_ledger(self, entry: LedgerEntry) -> bool:
        inserted = self._conn.execute(
            pg_insert(ledger)
            .values(**_ledger_values(entry))
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
                rule_version=status.rule_version,
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

    def lock_existing_status(self, user_id: str) -> FriendshipStatus | None:
        row = self._conn.execute(
            sa.select(friendship_status)
            .where(friendship_status.c.user_id == user_id)
            .with_for_update()
        ).one_or_none()
        return _status_from_row(row) if row is not None else None

    # --- history and recompute ---------------------------------------------------------------
    def history_page(
        self, user_id: str, after: HistoryCursor | None, limit: int
    ) -> list[LedgerEntry]:
        query = sa.select(ledger).where(ledger.c.user_id == user_id)
        if after is not None:
            query = query.where(
                sa.tuple_(ledger.c.applied_at, ledger.c.conversation_id)
                < sa.tuple_(sa.literal(after.applied_at), sa.literal(after.conversation_id))
            )
        rows = self._conn.execute(
            query.order_by(ledger.c.applied_at.desc(), ledger.c.conversation_id.desc()).limit(
                limit
            )
        ).all()
        return [_ledger_from_row(row) for row in rows]

    def user_ledger(self, user_id: str) -> list[LedgerEntry]:
        rows = self._conn.execute(
            sa.select(ledger)
            .where(ledger.c.user_id == user_id)
            .order_by(ledger.c.applied_at, ledger.c.conversation_id)
        ).all()
        return [_ledger_from_row(row) for row in rows]

    def ledgers_of(self, user_ids: Sequence[str]) -> dict[str, list[LedgerEntry]]:
        found: dict[str, list[LedgerEntry]] = {user_id: [] for user_id in user_ids}
        if not user_ids:
            return found
        rows = self._conn.execute(
            sa.select(ledger)
            .where(ledger.c.user_id.in_(list(user_ids)))
            .order_by(ledger.c.user_id, ledger.c.applied_at, ledger.c.conversation_id)
        ).all()
        for row in rows:
            found[row.user_id].append(_ledger_from_row(row))
        for entries in found.values():
            entries.sort(key=ledger_order)
        return found

    def rewrite_ledger(self, entries: Sequence[LedgerEntry]) -> None:
        if not entries:
            return
        self._conn.execute(
            sa.update(ledger)
            .where(ledger.c.conversation_id == sa.bindparam("b_conversation_id"))
            .values(
                base_points=sa.bindparam("b_base"),
                engagement_points=sa.bindparam("b_engagement"),
                emotion_points=sa.bindparam("b_emotion"),
                memory_points=sa.bindparam("b_memory"),
                score_change=sa.bindparam("b_total"),
                applied_delta=sa.bindparam("b_applied_delta"),
                score_before=sa.bindparam("b_score_before"),
                score_after=sa.bindparam("b_score_after"),
                level_before=sa.bindparam("b_level_before"),
                level_after=sa.bindparam("b_level_after"),
                rule_version=sa.bindparam("b_rule_version"),
            ),
            [
                {
                    "b_conversation_id": e.conversation_id,
                    "b_base": e.breakdown.base,
                    "b_engagement": e.breakdown.engagement,
                    "b_emotion": e.breakdown.emotion,
                    "b_memory": e.breakdown.memory,
                    "b_total": e.breakdown.total,
                    "b_applied_delta": e.applied_delta,
                    "b_score_before": e.score_before,
                    "b_score_after": e.score_after,
                    "b_level_before": e.level_before.value,
                    "b_level_after": e.level_after.value,
                    "b_rule_version": e.rule_version,
                }
                for e in entries
            ],
        )

    def upsert_topics(self, topics: Sequence[TopicState]) -> None:
        for topic in sorted(topics, key=lambda t: t.topic_id):
            values = {
                "score": topic.score,
                "turns": topic.turns,
                "agents_used": list(topic.agents_used),
                "updated_at": topic.updated_at or sa.func.now(),
            }
            self._conn.execute(
                pg_insert(topic_metrics)
                .values(user_id=topic.user_id, topic_id=topic.topic_id, **values)
                .on_conflict_do_update(
                    index_elements=[topic_metrics.c.user_id, topic_metrics.c.topic_id],
                    set_=values,
                )
            )

    def statuses_after(self, user_id: str, limit: int) -> list[FriendshipStatus]:
        rows = self._conn.execute(
            sa.select(friendship_status)
            .where(friendship_status.c.user_id > user_id)
            .order_by(friendship_status.c.user_id)
            .limit(limit)
        ).all()
        return [_status_from_row(row) for row in rows]

    # --- rule sets ---------------------------------------------------------------------------
    def lock_rule_sets(self) -> None:
        self._conn.execute(
            sa.select(sa.func.pg_advisory_xact_lock(sa.literal(_RULE_SETS_LOCK_KEY, sa.BigInteger)))
        )

    def active_rule_version(self) -> str | None:
        version = self._conn.execute(
            sa.select(rule_sets.c.version).where(rule_sets.c.active)
        ).scalar_one_or_none()
        return str(version) if version is not None else None

    def rule_set(self, version: str) -> StoredRuleSet | None:
        row = self._conn.execute(
            sa.select(rule_sets).where(rule_sets.c.version == version)
        ).one_or_none()
        return _stored_rule_set(row) if row is not None else None

    def list_rule_sets(self) -> list[StoredRuleSet]:
        rows = self._conn.execute(sa.select(rule_sets).order_by(rule_sets.c.created_at)).all()
        return [_stored_rule_set(row) for row in rows]

    def activate_rule_set(self, rules: RuleSet, mode: RuleMode) -> None:
        self._conn.execute(
            sa.update(rule_sets).where(rule_sets.c.active).values(active=False)
        )
        self._conn.execute(
            sa.insert(rule_sets).values(
                version=rules.version,
                body=rules.to_body(),
                mode=mode.value,
                active=True,
                activated_at=sa.func.now(),
            )
        )

    def create_job(self, version: str, mode: RuleMode) -> None:
        self._conn.execute(sa.insert(rule_jobs).values(version=version, mode=mode.value))

    def get_job(self, version: str) -> RuleJob | None:
        row = self._conn.execute(
            sa.select(rule_jobs).where(rule_jobs.c.version == version)
        ).one_or_none()
        return _job_from_row(row) if row is not None else None

    def unfinished_jobs(self) -> list[RuleJob]:
        rows = self._conn.execute(
            sa.select(rule_jobs).where(rule_jobs.c.finished_at.is_(None))
        ).all()
        return [_job_from_row(row) for row in rows]

    def advance_job(self, version: str, user_id: str) -> None:
        self._conn.execute(
            sa.update(rule_jobs)
            .where(rule_jobs.c.version == version)
            .values(
                cursor=sa.func.greatest(rule_jobs.c.cursor, user_id),
                users_done=rule_jobs.c.users_done + 1,
            )
        )

    def finish_job(self, version: str) -> None:
        self._conn.execute(
            sa.update(rule_jobs)
            .where(rule_jobs.c.version == version, rule_jobs.c.finished_at.is_(None))
            .values(finished_at=sa.func.now())
        )

    def record_rule_result(self, version: str, change: UserChange) -> None:
        self._conn.execute(
            pg_insert(rule_results)
            .values(
                version=version,
                user_id=change.user_id,
                old_score=change.old_score,
                new_score=change.new_score,
                old_level=change.old_level.value,
                new_level=change.new_level.value,
            )
            .on_conflict_do_nothing(index_elements=[rule_results.c.version, rule_results.c.user_id])
        )

    def rule_results(self, version: str) -> list[UserChange]:
        rows = self._conn.execute(
            sa.select(rule_results)
            .where(rule_results.c.version == version)
            .order_by(rule_results.c.user_id)
        ).all()
        return [
            UserChange(
                user_id=row.user_id,
                old_score=float(row.old_score),
                new_score=float(row.new_score),
                old_level=Level(row.old_level),
                new_level=Level(row.new_level),
            )
            for row in rows
        ]

    # --- events and erasure ------------------------------------------------------------------
    def add_event(self, event: LevelChanged) -> None:
        message = level_changed_message(event)
        self._conn.execute(
            sa.insert(outbox).values(
                event_id=event.event_id,
                user_id=event.user_id,
                routing_key=ROUTING_KEY_LEVEL_CHANGED,
                message_type=message.DESCRIPTOR.full_name,
                payload=message.SerializeToString(),
                created_at=event.occurred_at,
            )
        )

    def add_tombstones(self, conversation_hashes: Sequence[str]) -> None:
        if not conversation_hashes:
            return
        self._conn.execute(
            pg_insert(erased_conversations)
            .values([{"conversation_hash": h} for h in sorted(set(conversation_hashes))])
            .on_conflict_do_nothing(index_elements=[erased_conversations.c.conversation_hash])
        )

    def is_erased(self, conversation_id: str) -> bool:
        row = self._conn.execute(
            sa.select(erased_conversations.c.conversation_hash).where(
                erased_conversations.c.conversation_hash == erasure_hash(conversation_id)
            )
        ).first()
        return row is not None

    def delete_user(self, user_id: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for name, table in (
            ("ledger", ledger),
            ("topic_metrics", topic_metrics),
            ("outbox", outbox),
            ("rule_results", rule_results),
            ("friendship_status", friendship_status),
        ):
            result = self._conn.execute(sa.delete(table).where(table.c.user_id == user_id))
            counts[name] = int(result.rowcount)
        return counts


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


def autocommit_engine(engine: Engine) -> Engine:
    """The same engine and pool; its connections run in autocommit while checked out."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")


class SqlAlchemyReadOnlyUnitOfWork:
    """For single-statement reads (GetLevel): an autocommit connection, so no BEGIN and no
    ROLLBACK round trips; each statement reads its own consistent snapshot. commit() is an
    error: nothing may be written through it."""

    friendship: SqlAlchemyFriendshipRepository

    def __init__(self, engine: Engine) -> None:
        """`engine`: from autocommit_engine() (made once, not per unit of work)."""
        self._engine = engine
        self._conn: Connection | None = None

    def __enter__(self) -> Self:
        self._conn = self._engine.connect()
        self.friendship = SqlAlchemyFriendshipRepository(self._conn)
        return self

    def commit(self) -> None:
        raise RuntimeError("a read-only unit of work cannot commit")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
