"""Analyses and memories in PostgreSQL (schema analyzer): AnalysisStore and MemoryStore.

Each method is one short transaction run through the BlockingRunner (bounded threads,
deadline). Both writes are idempotent: ON CONFLICT DO NOTHING, first write wins.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection, Engine, RowMapping

from analyzer.adapters.tables import analyses, erased_conversations, memories
from analyzer.domain.errors import ConversationErased, DependencyFailed
from analyzer.domain.model import Analysis, AnalysisSource, Emotion, Fact
from servicekit.db import BlockingRunner, DatabaseUnavailable
from servicekit.erasure import erasure_hash

T = TypeVar("T")


def _row_to_analysis(row: RowMapping) -> Analysis:
    return Analysis(
        total_turns=int(row["total_turns"]),
        user_initiated_questions=int(row["user_initiated_questions"]),
        session_emotion=Emotion[row["session_emotion"]],
        new_memories_count=int(row["new_memories_count"]),
        source=AnalysisSource(row["source"]),
    )


_ANALYSIS_COLUMNS = (
    analyses.c.total_turns,
    analyses.c.user_initiated_questions,
    analyses.c.session_emotion,
    analyses.c.new_memories_count,
    analyses.c.source,
)


def _refuse_erased(conn: Connection, conversation_id: str) -> None:
    """Raises ConversationErased when DeleteUserData erased this conversation.

    Writers call it after their INSERT: the insert's lock on the table waits for a running
    erasure (which locks the tables first), and this statement then sees its tombstone.
    """
    erased = conn.execute(
        sa.select(erased_conversations.c.conversation_hash).where(
            erased_conversations.c.conversation_hash == erasure_hash(conversation_id)
        )
    ).first()
    if erased is not None:
        raise ConversationErased()


class SqlAlchemyAnalyzerRepository:
    def __init__(self, engine: Engine, run: BlockingRunner) -> None:
        self._engine = engine
        self._run = run

    async def _transaction(self, work: Callable[[Connection], T]) -> T:
        def in_transaction() -> T:
            with self._engine.begin() as conn:
                return work(conn)

        try:
            return await self._run(in_transaction)
        except DatabaseUnavailable as exc:
            raise DependencyFailed("database unavailable") from exc

    # -- AnalysisStore -----------------------------------------------------------
    async def get(self, conversation_id: str) -> Analysis | None:
        def work(conn: Connection) -> Analysis | None:
            _refuse_erased(conn, conversation_id)
            row = conn.execute(
                sa.select(*_ANALYSIS_COLUMNS).where(analyses.c.conversation_id == conversation_id)
            ).mappings().one_or_none()
            return None if row is None else _row_to_analysis(row)

        return await self._transaction(work)

    async def save_first(self, conversation_id: str, analysis: Analysis) -> Analysis:
        def work(conn: Connection) -> Analysis:
            inserted = conn.execute(
                insert(analyses)
                .values(
                    conversation_id=conversation_id,
                    total_turns=analysis.total_turns,
                    user_initiated_questions=analysis.user_initiated_questions,
                    session_emotion=analysis.session_emotion.name,
                    new_memories_count=analysis.new_memories_count,
                    source=analysis.source.value,
                )
                .on_conflict_do_nothing(index_elements=[analyses.c.conversation_id])
                .returning(analyses.c.conversation_id)
            ).first()
            _refuse_erased(conn, conversation_id)
            if inserted is not None:
                return analysis  # ours is the first: no read back (one round trip less)
            row = conn.execute(
                sa.select(*_ANALYSIS_COLUMNS).where(analyses.c.conversation_id == conversation_id)
            ).mappings().one()
            return _row_to_analysis(row)

        return await self._transaction(work)

    # -- MemoryStore -------------------------------------------------------------
    async def remember(self, user_id: str, conversation_id: str, facts: Sequence[Fact]) -> int:
        """Facts new for this user = first stored by this very conversation.

        A redelivered conversation therefore counts the same facts again, not zero.
        """
        if not facts:
            return 0
        hashes = [f.fact_hash for f in facts]

        def work(conn: Connection) -> int:
            conn.execute(
                insert(memories)
                .values(
                    [
                        {
                            "user_id": user_id,
                            "fact_hash": f.fact_hash,
                            "fact": f.text,
                            "first_conversation_id": conversation_id,
                        }
                        for f in facts
                    ]
                )
                .on_conflict_do_nothing(index_elements=[memories.c.user_id, memories.c.fact_hash])
                .returning(memories.c.fact_hash)
            ).all()
            _refuse_erased(conn, conversation_id)
            count = conn.execute(
                sa.select(sa.func.count())
                .select_from(memories)
                .where(
                    memories.c.user_id == user_id,
                    memories.c.fact_hash.in_(hashes),
                    memories.c.first_conversation_id == conversation_id,
                )
            ).scalar_one()
            return int(count)

        return await self._transaction(work)

    # -- ErasureStore ------------------------------------------------------------
    async def erase_user(self, user_id: str, conversation_hashes: Sequence[str]) -> dict[str, int]:
        hashes = sorted(set(conversation_hashes))

        def work(conn: Connection) -> dict[str, int]:
            # Writers (save_first, remember) wait until this commits, then see the tombstones.
            conn.execute(
                sa.text(
                    "LOCK TABLE analyzer.analyses, analyzer.memories IN SHARE ROW EXCLUSIVE MODE"
                )
            )
            deleted_analyses = 0
            if hashes:
                conn.execute(
                    insert(erased_conversations)
                    .values([{"conversation_hash": h} for h in hashes])
                    .on_conflict_do_nothing(
                        index_elements=[erased_conversations.c.conversation_hash]
                    )
                )
                hash_of_id = sa.func.encode(
                    sa.func.sha256(sa.func.convert_to(analyses.c.conversation_id, "UTF8")), "hex"
                )
                deleted_analyses = conn.execute(
                    sa.delete(analyses).where(hash_of_id.in_(hashes))
                ).rowcount
            deleted_memories = conn.execute(
                sa.delete(memories).where(memories.c.user_id == user_id)
            ).rowcount
            return {"analyses": int(deleted_analyses), "memories": int(deleted_memories)}

        return await self._transaction(work)

    async def ping(self) -> None:
        def work(conn: Connection) -> None:
            conn.execute(sa.text("SELECT 1"))

        await self._transaction(work)
