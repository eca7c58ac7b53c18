"""Analyses and memories in the real PostgreSQL: first write wins, facts counted once."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from analyzer.adapters.repository import SqlAlchemyAnalyzerRepository
from analyzer.domain.memories import extract_facts
from analyzer.domain.model import Analysis, AnalysisSource, Emotion, Role, Turn
from servicekit.db import sqlalchemy_url
from tests.support.env import TEST_DATABASE_URL, new_id

pytestmark = pytest.mark.integration


def analysis(questions: int) -> Analysis:
    return Analysis(
        total_turns=4,
        user_initiated_questions=questions,
        session_emotion=Emotion.INTERESTING,
        new_memories_count=1,
        source=AnalysisSource.LOCAL,
    )


def rows(table: str, column: str, value: str) -> int:
    engine = sa.create_engine(sqlalchemy_url(TEST_DATABASE_URL), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    sa.text(f"SELECT count(*) FROM analyzer.{table} WHERE {column} = :v"),
                    {"v": value},
                ).scalar_one()
            )
    finally:
        engine.dispose()


async def test_the_same_conversation_stored_twice_keeps_the_first(
    repository: SqlAlchemyAnalyzerRepository,
) -> None:
    cid = new_id("conv")
    assert await repository.get(cid) is None
    first = await repository.save_first(cid, analysis(questions=2))
    second = await repository.save_first(cid, analysis(questions=9))
    assert first == second == analysis(questions=2)
    assert await repository.get(cid) == analysis(questions=2)
    assert rows("analyses", "conversation_id", cid) == 1


async def test_concurrent_first_writes_agree(repository: SqlAlchemyAnalyzerRepository) -> None:
    cid = new_id("conv")
    results = await asyncio.gather(*(repository.save_first(cid, analysis(n)) for n in range(4)))
    assert len(set(results)) == 1
    assert rows("analyses", "conversation_id", cid) == 1


async def test_a_fact_is_new_for_a_user_only_once(repository: SqlAlchemyAnalyzerRepository) -> None:
    user, other = new_id("user"), new_id("user")
    facts = extract_facts([Turn(Role.USER, "My name is Lan. I like cats. Con thích vẽ.")])
    assert len(facts) == 3
    c1, c2, c3 = new_id("conv"), new_id("conv"), new_id("conv")

    assert await repository.remember(user, c1, facts) == 3
    # Another conversation of the same user says one of them again, plus a new one.
    again = extract_facts([Turn(Role.USER, "I like cats! I have a dog.")])
    assert await repository.remember(user, c2, again) == 1
    # The same facts are new for another user.
    assert await repository.remember(other, c3, facts) == 3
    assert rows("memories", "user_id", user) == 4


async def test_a_redelivered_conversation_counts_its_facts_the_same(
    repository: SqlAlchemyAnalyzerRepository,
) -> None:
    user, cid = new_id("user"), new_id("conv")
    facts = extract_facts([Turn(Role.USER, "I live in Hue. I have a cat.")])
    assert await repository.remember(user, cid, facts) == 2
    assert await repository.remember(user, cid, facts) == 2
    assert rows("memories", "user_id", user) == 2
    assert await repository.remember(user, cid, ()) == 0
