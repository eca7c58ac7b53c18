"""The analysis with the real Groq SDK and Mem0 client against fake servers on 127.0.0.1.

Real sockets, real PostgreSQL for the local memories; small budgets so tests are quick.
Parallelism is shown with the fakes' request arrival times, not wall-clock thresholds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from prometheus_client import REGISTRY

from analyzer.adapters.groq_llm import GroqLlm
from analyzer.adapters.mem0_api import Mem0Memories
from analyzer.adapters.provider_metrics import record_fallback
from analyzer.adapters.repository import SqlAlchemyAnalyzerRepository
from analyzer.analysis import ConversationAnalyzer
from analyzer.domain.breaker import CircuitBreaker
from analyzer.domain.model import (
    Analysis,
    AnalysisSource,
    Conversation,
    ConversationMetadata,
    Emotion,
    Role,
    Turn,
)
from analyzer.domain.prompts import PromptBudget
from tests.support.env import new_id
from tests.support.fake_groq import (
    HANG,
    JSON_VALIDATE_FAILED,
    Behavior,
    FakeGroq,
    slow,
    status,
)
from tests.support.fake_mem0 import FakeMem0

pytestmark = pytest.mark.integration

LLM_TIMEOUT_S = 1.0
MEMORY_TIMEOUT_S = 2.0
# The local analysis of DIALOGUE: 1 question, interesting, 2 facts (name, likes cats).
LOCAL = (1, Emotion.INTERESTING, 2)


@pytest.fixture(scope="module")
def groq() -> Iterator[FakeGroq]:
    fake = FakeGroq().start()
    yield fake
    fake.close()


@pytest.fixture(scope="module")
def mem0() -> Iterator[FakeMem0]:
    fake = FakeMem0().start()
    yield fake
    fake.close()


@pytest.fixture(autouse=True)
def fresh_fakes(groq: FakeGroq, mem0: FakeMem0) -> None:
    groq.reset()
    mem0.reset()
    groq.questions_answer = '{"user_initiated_questions": 2}'
    groq.emotion_answer = '{"emotion": "happy"}'
    mem0.memories_per_add, mem0.pending_polls, mem0.fail_events = 3, 1, False


class Providers:
    def __init__(self, groq: FakeGroq, mem0: FakeMem0, **overrides: Any) -> None:
        options: dict[str, Any] = {
            "failures": 100, "cooldown_s": 0.5, "llm_key": groq.api_key,
            "llm_timeout_s": LLM_TIMEOUT_S, "memory_timeout_s": MEMORY_TIMEOUT_S,
        }
        options.update(overrides)
        self.llm_breaker = CircuitBreaker(options["failures"], options["cooldown_s"])
        self.llm = GroqLlm(
            api_key=options["llm_key"],
            base_url=groq.url,
            model="openai/gpt-oss-20b",
            timeout_s=options["llm_timeout_s"],
            max_attempts=3,
            max_completion_tokens=256,
            breaker=self.llm_breaker,
        )
        self.memory_api = Mem0Memories(
            api_key=mem0.api_key,
            base_url=mem0.url,
            timeout_s=options["memory_timeout_s"],
            poll_initial_s=0.05,
            poll_max_s=0.2,
            breaker=CircuitBreaker(options["failures"], options["cooldown_s"]),
        )

    def analyzer(self, repository: SqlAlchemyAnalyzerRepository) -> ConversationAnalyzer:
        return ConversationAnalyzer(
            repository,
            llm=self.llm,
            memory_api=self.memory_api,
            budget=PromptBudget(max_chars=4000, max_turns=50, max_turn_chars=500),
            on_fallback=record_fallback,
        )

    async def close(self) -> None:
        await self.llm.close()
        await self.memory_api.close()


@pytest.fixture
async def providers(groq: FakeGroq, mem0: FakeMem0) -> AsyncIterator[Providers]:
    built = Providers(groq, mem0)
    yield built
    await built.close()


def conversation(
    marker: str = "", metadata: ConversationMetadata | None = None
) -> Conversation:
    return Conversation(
        conversation_id=new_id("conv"),
        user_id=new_id("user"),
        bot_id="bot-1",
        bot_type="",
        agent_tag="topic-animals",
        turns=(
            Turn(Role.ASSISTANT, "Hello! What do you like?"),
            Turn(Role.USER, f"My name is Lan. I like cats. Do you like cats? {marker}".strip()),
            Turn(Role.ASSISTANT, "I do! Cats are wonderful."),
            Turn(Role.USER, "That is so fun!"),
        ),
        metadata=metadata or ConversationMetadata(),
    )


async def analyze(
    providers: Providers, repository: SqlAlchemyAnalyzerRepository, **kw: Any
) -> tuple[Analysis, float]:
    started = time.monotonic()
    result = await providers.analyzer(repository).analyze(conversation(**kw))
    return result, time.monotonic() - started


def parts(analysis: Analysis) -> tuple[int, Emotion, int]:
    return (
        analysis.user_initiated_questions,
        analysis.session_emotion,
        analysis.new_memories_count,
    )


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_correct_answers_come_from_the_providers(
    providers: Providers, repository: SqlAlchemyAnalyzerRepository, groq: FakeGroq,
    mem0: FakeMem0,
) -> None:  # fmt: skip
    ok_before = sample("provider_requests_total", provider="groq", outcome="ok")
    analysis, _ = await analyze(providers, repository)
    assert analysis.source is AnalysisSource.LLM
    assert parts(analysis) == (2, Emotion.HAPPY, 3)  # 3 = what the Mem0 event added
    assert groq.count("questions") == 1 and groq.count("emotion") == 1
    assert mem0.count("add") == 1 and mem0.count("event") >= 2  # PENDING, then SUCCEEDED
    request = groq.arrivals()[0]
    assert request.path == "/openai/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {groq.api_key}"
    assert request.body["model"] == "openai/gpt-oss-20b"
    assert request.body["response_format"] == {"type": "json_object"}
    assert request.body["messages"][1]["content"].endswith("user: That is so fun!")
    add = next(r for r in mem0.arrivals() if r.part == "add")
    assert add.headers["authorization"] == f"Token {mem0.api_key}"
    assert add.body["user_id"].startswith("user") and add.body["agent_id"] == "bot-1"
    assert add.body["metadata"]["agent_tag"] == "topic-animals"
    assert [m["role"] for m in add.body["messages"]] == ["assistant", "user"] * 2
    assert sample("provider_requests_total", provider="groq", outcome="ok") == ok_before + 2


async def test_the_three_calls_run_in_parallel(
    providers: Providers, repository: SqlAlchemyAnalyzerRepository, groq: FakeGroq,
    mem0: FakeMem0,
) -> None:  # fmt: skip
    groq.when(slow(0.6))
    mem0.when(slow(0.6), part="add")
    mem0.pending_polls = 0
    analysis, elapsed = await analyze(providers, repository)
    assert analysis.source is AnalysisSource.LLM
    arrivals = [r.arrived_at for r in groq.arrivals()] + [
        r.arrived_at for r in mem0.arrivals() if r.part == "add"
    ]
    assert len(arrivals) == 3
    # All three requests arrived before any answer could have come back (0.6 s each):
    # in sequence they would arrive >= 0.6 s apart.
    assert max(arrivals) - min(arrivals) < 0.3, arrivals
    assert elapsed < 3 * 0.6


async def test_a_slow_llm_past_its_timeout_falls_back_within_the_budget(
    providers: Providers, repository: SqlAlchemyAnalyzerRepository, groq: FakeGroq,
) -> None:  # fmt: skip
    groq.when(slow(LLM_TIMEOUT_S + 2))
    timeouts = sample("provider_requests_total", provider="groq", outcome="timeout")
    fallbacks = sample("analysis_fallbacks_total", part="questions")
    analysis, elapsed = await analyze(providers, repository)
    assert analysis.source is AnalysisSource.LOCAL
    assert parts(analysis)[:2] == LOCAL[:2]
    assert parts(analysis)[2] == 3  # memories still from Mem0
    assert elapsed < LLM_TIMEOUT_S + 0.5
    assert sample("provider_requests_total", provider="groq", outcome="timeout") >= timeouts + 2
    assert sample("analysis_fallbacks_total", part="questions") == fallbacks + 1


async def test_a_hanging_connection_falls_back_within_the_budget(
    providers: Providers, repository: SqlAlchemyAnalyzerRepository, groq: FakeGroq,
    mem0: FakeMem0,
) -> None:  # fmt: skip
    groq.when(HANG)
    mem0.when(HANG)
    analysis, elapsed = await analyze(providers, repository)
    assert analysis.source is AnalysisSource.LOCAL
    assert parts(analysis) == LOCAL
    assert elapsed < MEMORY_TIMEOUT_S + 0.5  # the slowest budget, not their sum
    assert groq.count() == 2 and mem0.count("add") == 1  # an add that timed out is not resent


async def test_429_with_retry_after_is_retried_within_the_budget(
    providers: Providers, repository: SqlAlchemyAnalyzerRepository, groq: FakeGroq,
) -> None:  # fmt: skip
    groq.when(status(429, retry_after="0.3"), part="questions", times=1)
    groq.when(status(429, retry_after="0.3"), part="emotion", times=1)
    analysis, _ = await analyze(providers, repository)
    assert analysis.source is AnalysisSource.LLM
    questions = [r.arrived_at for r in groq.arrivals() if r.part == "questions"]
    assert len(questions) == 2
    assert questions[1] - questions[0] >= 0.3  # retry-after honoured


async def test_429_whose_retry_after_passes_the_deadline_falls_back_at_once(
    providers: Providers, repository: SqlAlchemyAnalyzerRepository, groq: FakeGroq,
) -> None:  # fmt: skip
    groq.when(status(429, retry_after="30"))
    limited = sample("provider_requests_total", provider="groq", outcome="rate_limited")
    analysis, elapsed = await analyze(providers, repository)
    assert analysis.source is AnalysisSource.LOCAL
    assert groq.count() == 2  # no retry that could not finish in time
    assert elapsed < LLM_TIMEOUT_S
    assert sample("provider_requests_total", provider="groq", outcome="rate_limited") == (
        limited + 2
    )


async def test_500s_are_retried_then_fall_back(
    providers: Providers, repository: SqlAlchemyAnalyzerRepository, groq: FakeGroq,
    mem0: FakeMem0,
) -> None:  # fmt: skip
    groq.when(status(500))
    mem0.when(status(502), part="add")
    analysis, elapsed = await analyze(providers, repository)
    assert analysis.source is AnalysisSource.LOCAL
    assert parts(analysis) == LOCAL
    # 3 attempts per part within 1 s (waits 0.5 s then would be 1 s: past the deadline).
    assert 2 <= groq.count("questions") <= 3
    assert mem0.count("add") >= 2
    assert elapsed < MEMORY_TIMEOUT_S + 0.5


@pytest.mark.parametrize(
    "behavior",
    [
        Behavior(kind="malformed"),  # an answer that is not JSON
        Behavior(content='{"user_initiated_questions": -3, "emotion": "joy"}'),  # off-schema
        Behavior(kind="malformed", body="{not even an HTTP JSON body"),
        status(400, body=JSON_VALIDATE_FAILED),
    ],
    ids=["not-json", "out-of-range", "broken-body", "json_validate_failed"],
)
async def test_malformed_answers_fall_back(
    providers: Providers, repository: SqlAlchemyAnalyzerRepository, groq: FakeGroq,
    behavior: Behavior,
) -> None:  # fmt: skip
    invalid = sample("provider_requests_total", provider="groq", outcome="invalid")
    analysis, _ = await analyze(providers, repository)
    assert analysis.source is AnalysisSource.LLM  # the healthy baseline
    groq.reset()
    groq.when(behavior)
    analysis, elapsed = await analyze(providers, repository)
    assert analysis.source is AnalysisSource.LOCAL
    assert parts(analysis)[:2] == LOCAL[:2]
    assert groq.count() == 2  # an invalid answer is not retried
    assert elapsed < LLM_TIMEOUT_S
    assert sample("provider_requests_total", provider="groq", outcome="invalid") == invalid + 2


async def test_one_part_failing_mixes_and_the_source_is_local(
    providers: Providers, repository: SqlAlchemyAnalyzerRepository, groq: FakeGroq,
) -> None:  # fmt: skip
    groq.when(Behavior(kind="malformed"), part="emotion")
    analysis, _ = await analyze(providers, repository)
    assert analysis.user_initiated_questions == 2  # from the LLM
    assert analysis.session_emotion is Emotion.INTERESTING  # local
    assert analysis.source is AnalysisSource.LOCAL


async def test_complete_metadata_makes_no_llm_call_but_memories_still_run(
    providers: Providers, repository: SqlAlchemyAnalyzerRepository, groq: FakeGroq,
    mem0: FakeMem0,
) -> None:  # fmt: skip
    metadata = ConversationMetadata(user_initiated_questions=4, session_emotion=Emotion.SAD)
    analysis, _ = await analyze(providers, repository, metadata=metadata)
    assert analysis.source is AnalysisSource.METADATA
    assert parts(analysis) == (4, Emotion.SAD, 3)
    assert groq.count() == 0 and mem0.count("add") == 1


async def test_memory_api_failures_fall_back_to_the_local_count(
    providers: Providers, repository: SqlAlchemyAnalyzerRepository, mem0: FakeMem0,
) -> None:  # fmt: skip
    mem0.fail_events = True
    analysis, _ = await analyze(providers, repository)
    assert analysis.source is AnalysisSource.LLM  # memories do not change the source
    assert analysis.new_memories_count == 2
    mem0.fail_events = False
    mem0.when(Behavior(kind="malformed"), part="add")
    analysis, _ = await analyze(providers, repository)
    assert analysis.new_memories_count == 2


async def test_no_key_accepted_falls_back(
    groq: FakeGroq, mem0: FakeMem0, repository: SqlAlchemyAnalyzerRepository
) -> None:
    built = Providers(groq, mem0, llm_key="wrong-key")
    try:
        analysis, _ = await analyze(built, repository)
    finally:
        await built.close()
    assert analysis.source is AnalysisSource.LOCAL
    assert groq.count() == 2  # a 401 is not retried


async def test_the_breaker_opens_then_probes_again(
    groq: FakeGroq, mem0: FakeMem0, repository: SqlAlchemyAnalyzerRepository
) -> None:
    built = Providers(groq, mem0, failures=2, cooldown_s=0.5)
    try:
        groq.when(status(503, retry_after="5"))  # fails fast: the wait passes the deadline
        analysis, _ = await analyze(built, repository)  # two failed calls: open
        assert analysis.source is AnalysisSource.LOCAL
        assert built.llm_breaker.is_open
        assert sample("provider_breaker_open", provider="groq") == 1
        calls = groq.count()
        analysis, elapsed = await analyze(built, repository)
        assert groq.count() == calls  # not called while open
        assert analysis.source is AnalysisSource.LOCAL and elapsed < 0.5
        groq.reset()  # healthy again
        await asyncio.sleep(0.6)
        analysis, _ = await analyze(built, repository)
        # One probe went through and closed the breaker; the other part fell back.
        assert groq.count() == 1
        assert not built.llm_breaker.is_open
        assert sample("provider_breaker_open", provider="groq") == 0
        analysis, _ = await analyze(built, repository)
        assert analysis.source is AnalysisSource.LLM
    finally:
        await built.close()


async def test_preview_asks_the_llm_but_never_the_memory_api(
    providers: Providers, repository: SqlAlchemyAnalyzerRepository, groq: FakeGroq,
    mem0: FakeMem0,
) -> None:  # fmt: skip
    turns = conversation().turns
    analysis = await providers.analyzer(repository).preview(turns, ConversationMetadata())
    assert analysis.source is AnalysisSource.LLM
    assert parts(analysis) == (2, Emotion.HAPPY, 2)  # memories: local facts, nothing stored
    assert groq.count() == 2 and mem0.count() == 0


async def test_a_5000_turn_conversation_sends_a_bounded_request(
    repository: SqlAlchemyAnalyzerRepository, groq: FakeGroq, mem0: FakeMem0,
) -> None:  # fmt: skip
    long = conversation()
    turns = tuple(
        Turn(Role.USER if i % 2 else Role.ASSISTANT, f"turn {i} " + "words " * 80)
        for i in range(5000)
    )
    big = Conversation(long.conversation_id, long.user_id, "bot-1", "", "", turns)
    # Budgets far above the work: what this test checks is the size of what is sent, and
    # the local analysis of 2 MB on a loaded machine must not time the calls out first.
    providers = Providers(groq, mem0, llm_timeout_s=20.0, memory_timeout_s=20.0)
    try:
        await providers.analyzer(repository).analyze(big)
    finally:
        await providers.close()
    sent = [len(r.raw) for r in groq.arrivals()] + [len(r.raw) for r in mem0.arrivals()]
    assert sum(len(t.content) for t in turns) > 2_000_000
    assert max(sent) < 4000 * 1.3 + 2000  # budget (4000 chars) + JSON and prompts
