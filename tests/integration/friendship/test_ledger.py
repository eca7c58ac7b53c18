"""The ledger against real PostgreSQL: exactly once per conversation_id, exact history."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from friendship.adapters.repository import SqlAlchemyUnitOfWork
from friendship.adapters.tables import friendship_status, ledger, topic_metrics
from friendship.domain.friendship import ApplyCommand, apply_conversation
from friendship.domain.levels import Level, LevelThresholds
from friendship.domain.rules import RuleSet
from friendship.domain.scoring import AnalysisInput, Emotion, ScoreWeights
from friendship.handlers import FriendshipHandlers
from tests.support.env import new_id

pytestmark = pytest.mark.integration


def handlers(engine: Engine) -> FriendshipHandlers:
    return FriendshipHandlers(
        lambda: SqlAlchemyUnitOfWork(engine),
        default_rules=RuleSet("v1", ScoreWeights(), LevelThresholds()),
    )


def command(
    conversation_id: str, user_id: str, *, turns: int, emotion: Emotion = Emotion.NEUTRAL,
    agent_tag: str = "math",
) -> ApplyCommand:
    return ApplyCommand(
        conversation_id=conversation_id,
        user_id=user_id,
        bot_id="bot-1",
        agent_tag=agent_tag,
        analysis=AnalysisInput(turns, 1, emotion, 2, "llm"),
    )


def ledger_rows(engine: Engine, conversation_id: str) -> list[sa.Row[tuple[object, ...]]]:
    with engine.connect() as conn:
        query = sa.select(ledger).where(ledger.c.conversation_id == conversation_id)
        return list(conn.execute(query))


def test_apply_is_recorded_once(engine: Engine) -> None:
    use_cases = handlers(engine)
    user, conversation = new_id("user"), new_id("conv")
    # 200 turns * 0.5 + 1 question * 3 + 2 memories * 5 + interesting 15 = 128
    first = use_cases.apply_conversation(
        command(conversation, user, turns=200, emotion=Emotion.INTERESTING)
    )
    assert (first.applied, first.score_change, first.score, first.level) == (
        True, 128, 128, Level.ACQUAINTANCE
    )
    for _ in range(3):
        again = use_cases.apply_conversation(
            command(conversation, user, turns=999, emotion=Emotion.BORING)
        )
        assert (again.applied, again.score_change, again.score, again.level) == (
            False, 128, 128, Level.ACQUAINTANCE
        )

    rows = ledger_rows(engine, conversation)
    assert len(rows) == 1
    row = rows[0]
    assert (row.user_id, row.bot_id, row.agent_tag) == (user, "bot-1", "math")
    assert (row.total_turns, row.user_initiated_questions, row.emotion,
            row.new_memories_count, row.source) == (200, 1, "interesting", 2, "llm")
    assert (row.base_points, row.engagement_points, row.emotion_points, row.memory_points,
            row.score_change) == (100, 3, 15, 10, 128)
    assert (row.score_before, row.score_after, row.applied_delta) == (0, 128, 128)
    assert (row.level_before, row.level_after, row.rule_version) == (
        "stranger", "acquaintance", "v1"
    )

    view = use_cases.get_level(user)
    assert (view.score, view.conversations, view.level) == (128, 1, Level.ACQUAINTANCE)
    [topic] = use_cases.get_topic_metrics(user)
    assert (topic.score, topic.turns, topic.agents_used) == (128, 200, ("bot-1",))


def test_floor_at_zero_is_recorded(engine: Engine) -> None:
    use_cases = handlers(engine)
    user, conversation = new_id("user"), new_id("conv")
    # 2 turns * 0.5 + 3 + 10 - 15 = -1 on a fresh user
    result = use_cases.apply_conversation(
        command(conversation, user, turns=2, emotion=Emotion.BORING, agent_tag="")
    )
    assert (result.score_change, result.score) == (-1, 0)
    [row] = ledger_rows(engine, conversation)
    assert (row.score_change, row.applied_delta, row.score_before, row.score_after) == (-1, 0, 0, 0)
    assert use_cases.get_topic_metrics(user) == []


def test_repeat_under_another_user_changes_nothing(engine: Engine) -> None:
    use_cases = handlers(engine)
    user, other, conversation = new_id("user"), new_id("user"), new_id("conv")
    use_cases.apply_conversation(command(conversation, user, turns=10))
    repeat = use_cases.apply_conversation(command(conversation, other, turns=10))
    assert repeat.applied is False
    with engine.connect() as conn:
        assert conn.execute(
            sa.select(sa.func.count()).where(friendship_status.c.user_id == other)
        ).scalar() == 0
        assert conn.execute(
            sa.select(sa.func.count()).where(topic_metrics.c.user_id == other)
        ).scalar() == 0


def test_save_applied_writes_nothing_once_the_ledger_holds_the_conversation(
    engine: Engine,
) -> None:
    """What a losing racer (same conversation_id, another user) runs into: the ledger's
    unique key refuses its row, and its status and topic updates, gated on that insert in
    the same statement, change nothing."""
    rules = RuleSet("v1", ScoreWeights(), LevelThresholds())
    use_cases = handlers(engine)
    user, other, conversation = new_id("user"), new_id("user"), new_id("conv")
    use_cases.apply_conversation(command(conversation, user, turns=10))
    with SqlAlchemyUnitOfWork(engine) as uow:
        repo = uow.friendship
        status, topic = repo.lock_status(other), repo.lock_topic(other, "math")
        outcome = apply_conversation(
            status, topic, command(conversation, other, turns=400),
            weights=rules.weights, thresholds=rules.thresholds,
            now=datetime.now(UTC), rule_version=rules.version,
        )
        assert repo.save_applied(outcome) is False
        after = repo.get_status(other)
        assert after is not None
        assert (after.score, after.conversations) == (0, 0)
        [topic_after] = repo.list_topics(other)
        assert (topic_after.score, topic_after.turns) == (0, 0)
    [row] = ledger_rows(engine, conversation)
    assert row.user_id == user


def test_unit_of_work_rolls_back_unless_committed(engine: Engine) -> None:
    user = new_id("user")
    with SqlAlchemyUnitOfWork(engine) as uow:
        uow.friendship.lock_status(user)
        uow.friendship.lock_topic(user, "math")
    with SqlAlchemyUnitOfWork(engine) as uow:
        assert uow.friendship.get_status(user) is None
        assert uow.friendship.list_topics(user) == []
