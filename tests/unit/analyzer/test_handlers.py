from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from analyzer.analysis import LocalConversationAnalysis
from analyzer.domain.errors import DependencyFailed, RedeliveryFailed
from analyzer.domain.failure import RetryPolicy
from analyzer.domain.messages import encode_ended_message
from analyzer.domain.model import (
    Analysis,
    AnalysisSource,
    Conversation,
    ConversationMetadata,
    Emotion,
    Role,
    Turn,
)
from analyzer.domain.ports import Claim
from analyzer.handlers import MessagePolicy, Outcome, Pipeline, handle_conversation_ended
from tests.unit.analyzer.fakes import (
    CountingAnalysis,
    FakeFriendship,
    FakeIngest,
    FakeRedelivery,
    FakeStore,
)

POLICY = MessagePolicy(RetryPolicy(max_attempts=3, delays_s=(10, 60)), deadline_s=0.5, lease_s=60)


def conversation(cid: str, bot_type: str = "", user: str = "u1") -> Conversation:
    return Conversation(
        conversation_id=cid,
        user_id=user,
        bot_id="bot-1",
        bot_type=bot_type,
        agent_tag="animals",
        turns=(
            Turn(Role.ASSISTANT, "Hello! What do you like?"),
            Turn(Role.USER, "I like cats. Do you like cats?"),
        ),
        metadata=ConversationMetadata(),
    )


@dataclass
class World:
    ingest: FakeIngest
    friendship: FakeFriendship
    store: FakeStore
    analysis: CountingAnalysis
    redelivery: FakeRedelivery

    @property
    def pipeline(self) -> Pipeline:
        return Pipeline(self.ingest, self.friendship, self.analysis, self.store)

    async def deliver(self, cid: str, previous_attempts: int = 0) -> Outcome:
        return await handle_conversation_ended(
            encode_ended_message(cid), previous_attempts, self.pipeline, self.redelivery, POLICY
        )


@pytest.fixture
def world() -> World:
    store = FakeStore()
    return World(
        FakeIngest(),
        FakeFriendship(),
        store,
        CountingAnalysis(LocalConversationAnalysis(store)),
        FakeRedelivery(),
    )


async def test_a_conversation_is_analysed_applied_and_completed(world: World) -> None:
    world.ingest.conversations["c1"] = conversation("c1")
    assert await world.deliver("c1") == Outcome.PROCESSED
    ((cid, status, score, analysis),) = world.ingest.completed
    assert (cid, status) == ("c1", "PROCESSED")
    assert analysis is not None
    assert analysis.total_turns == 2
    assert analysis.user_initiated_questions == 1
    assert analysis.session_emotion == Emotion.HAPPY
    assert analysis.new_memories_count == 1
    assert analysis.source == AnalysisSource.LOCAL
    assert score == 2 * 0.5 + 1 * 3
    assert world.friendship.applied["c1"] == analysis


async def test_next_lesson_is_skipped_without_analysis(world: World) -> None:
    world.ingest.conversations["c2"] = conversation("c2", bot_type="NEXT_LESSON")
    assert await world.deliver("c2") == Outcome.SKIPPED
    assert world.ingest.completed == [("c2", "SKIPPED", 0.0, None)]
    assert world.analysis.calls == 0 and world.friendship.applied == {}


async def test_an_already_terminal_conversation_is_just_acked(world: World) -> None:
    world.ingest.conversations["c3"] = conversation("c3")
    world.ingest.terminal.add("c3")
    assert await world.deliver("c3") == Outcome.ALREADY_DONE
    assert world.ingest.completed == [] and world.redelivery.retries == []


async def test_a_redelivered_message_reuses_the_stored_analysis(world: World) -> None:
    world.ingest.conversations["c4"] = conversation("c4")
    world.friendship.down = True
    assert await world.deliver("c4") == Outcome.RETRY_SCHEDULED
    world.friendship.down = False
    assert await world.deliver("c4", previous_attempts=1) == Outcome.PROCESSED
    assert world.analysis.calls == 1
    # The memory was new in the first attempt, and stays counted as new.
    assert world.ingest.completed[0][3] is not None
    assert world.ingest.completed[0][3].new_memories_count == 1


async def test_memories_already_known_for_the_user_are_not_new(world: World) -> None:
    world.ingest.conversations["c5"] = conversation("c5")
    world.ingest.conversations["c6"] = conversation("c6")
    await world.deliver("c5")
    await world.deliver("c6")
    first, second = (c[3] for c in world.ingest.completed)
    assert first is not None and second is not None
    assert (first.new_memories_count, second.new_memories_count) == (1, 0)


async def test_failures_retry_with_backoff_then_dead_letter(world: World) -> None:
    world.ingest.conversations["c7"] = conversation("c7")
    world.friendship.down = True
    assert await world.deliver("c7", 0) == Outcome.RETRY_SCHEDULED
    assert await world.deliver("c7", 1) == Outcome.RETRY_SCHEDULED
    assert await world.deliver("c7", 2) == Outcome.DEAD_LETTERED
    reason = "friendship.ApplyConversation UNAVAILABLE"
    assert world.redelivery.retries == [(10, 1, reason), (60, 2, reason)]
    assert world.redelivery.dead == [(reason, 3)]
    assert world.ingest.failures == [
        ("c7", reason, False), ("c7", reason, False), ("c7", reason, True),
    ]  # fmt: skip


async def test_an_unknown_conversation_retries_on_header_attempts_then_dead_letters(
    world: World,
) -> None:
    assert await world.deliver("ghost", 0) == Outcome.RETRY_SCHEDULED
    assert await world.deliver("ghost", 2) == Outcome.DEAD_LETTERED
    assert world.redelivery.dead == [("ingest.ClaimConversation NOT_FOUND", 3)]


async def test_ingest_attempts_count_when_higher_than_the_header(world: World) -> None:
    world.ingest.conversations["c8"] = conversation("c8")
    world.ingest.attempts["c8"] = 2  # claimed twice before (e.g. lease take-overs)
    world.friendship.down = True
    assert await world.deliver("c8", 0) == Outcome.DEAD_LETTERED


async def test_the_deadline_turns_a_hang_into_a_retry(world: World) -> None:
    world.ingest.conversations["c9"] = conversation("c9")
    world.ingest.claim_delay_s = 5
    assert await world.deliver("c9") == Outcome.RETRY_SCHEDULED
    assert world.redelivery.retries == [(10, 1, "deadline exceeded")]


async def test_a_failure_ingest_cannot_record_still_retries(world: World) -> None:
    world.ingest.down = True
    assert await world.deliver("c10") == Outcome.RETRY_SCHEDULED
    assert world.redelivery.retries == [(10, 1, "ingest.ClaimConversation UNAVAILABLE")]


async def test_malformed_messages_go_straight_to_the_dead_letters(world: World) -> None:
    for body in (b"not json", b"[]", b"{}", b'{"conversation_id": ""}', b"\xff\xfe"):
        outcome = await handle_conversation_ended(
            body, 0, world.pipeline, world.redelivery, POLICY
        )
        assert outcome == Outcome.DEAD_LETTERED
    assert [r for r, _ in world.redelivery.dead] == ["malformed message"] * 5
    assert world.ingest.failures == []


async def test_when_even_the_retry_publish_fails_the_caller_must_requeue(world: World) -> None:
    world.redelivery.broken = True
    with pytest.raises(RedeliveryFailed):
        await world.deliver("c11")


async def test_the_stored_analysis_is_read_while_the_claim_is_in_flight(world: World) -> None:
    world.ingest.conversations["c12"] = conversation("c12")
    read_started = asyncio.Event()
    store_get, ingest_claim = world.store.get, world.ingest.claim

    async def get(conversation_id: str) -> Analysis | None:
        read_started.set()
        return await store_get(conversation_id)

    async def claim(conversation_id: str, lease_s: int) -> Claim:
        # Answers only once the read has started: a read after the claim never would.
        try:
            await asyncio.wait_for(read_started.wait(), POLICY.deadline_s / 2)
        except TimeoutError:
            raise DependencyFailed("the read did not start during the claim") from None
        return await ingest_claim(conversation_id, lease_s)

    world.store.get = get  # type: ignore[method-assign]
    world.ingest.claim = claim  # type: ignore[method-assign]
    assert await world.deliver("c12") == Outcome.PROCESSED
    assert world.redelivery.retries == []


async def test_a_failed_read_does_not_matter_when_the_claim_is_not_ours(world: World) -> None:
    world.ingest.conversations["c13"] = conversation("c13")
    world.ingest.terminal.add("c13")
    world.store.get_error = DependencyFailed("database unavailable")
    assert await world.deliver("c13") == Outcome.ALREADY_DONE
    assert world.store.reads == 1
    assert world.ingest.failures == [] and world.redelivery.retries == []


async def test_a_failed_read_after_the_claim_retries_without_analysing(world: World) -> None:
    world.ingest.conversations["c14"] = conversation("c14")
    world.store.get_error = DependencyFailed("database unavailable")
    assert await world.deliver("c14") == Outcome.RETRY_SCHEDULED
    assert world.redelivery.retries == [(10, 1, "database unavailable")]
    assert world.analysis.calls == 0 and world.friendship.applied == {}


async def test_a_failed_claim_wins_over_a_failed_read(world: World) -> None:
    world.ingest.down = True
    world.store.get_error = DependencyFailed("database unavailable")
    assert await world.deliver("c15") == Outcome.RETRY_SCHEDULED
    assert world.redelivery.retries == [(10, 1, "ingest.ClaimConversation UNAVAILABLE")]
