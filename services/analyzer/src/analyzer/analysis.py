"""The ConversationAnalysis port: metadata, LLM and memory API, local fallback per part.

Three parts run in parallel, each with its own budget, none can fail the conversation
because of a third party:
- questions and emotion: the robot's metadata when complete (no LLM call, source
  "metadata"); else the LLM when configured; else, or when the LLM gives no valid answer
  in time (no key, provider down, breaker open, timeout, 429 after its retries, invalid
  JSON), the local EN/VI analysis of that part.
- memories: the local extraction always runs and keeps the facts in the analyzer's
  schema; when the memory API is configured and answers, new_memories_count is the
  number of memories its call added, else the local count of new facts.

`source`: "metadata" when the robot's metadata was complete; "llm" only when both
questions and emotion came from the LLM; else "local" (a mix of LLM and local counts as
"local"). Where the memory count came from does not change `source`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

from analyzer.domain.emotion import session_emotion
from analyzer.domain.errors import ProviderFailed
from analyzer.domain.memories import extract_facts
from analyzer.domain.model import (
    Analysis,
    AnalysisSource,
    Conversation,
    ConversationMetadata,
    Emotion,
    Role,
    Turn,
    metadata_is_complete,
)
from analyzer.domain.ports import LlmPort, MemoryApiPort, MemoryStore
from analyzer.domain.prompts import PromptBudget, excerpt, render
from analyzer.domain.questions import count_user_questions

log = logging.getLogger(__name__)
T = TypeVar("T")

QUESTIONS = "questions"
EMOTION = "emotion"
MEMORIES = "memories"


def _no_fallback_metric(part: str) -> None:
    return None


async def _all(*coroutines: Coroutine[Any, Any, Any]) -> list[Any]:
    """Like gather, but the first error cancels the others and is raised as is."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(c) for c in coroutines]
    except BaseExceptionGroup as errors:
        raise errors.exceptions[0] from None
    return [t.result() for t in tasks]


class ConversationAnalyzer:
    """ConversationAnalysis (analyze: stores local memories) and preview (stores nothing)."""

    def __init__(
        self,
        memories: MemoryStore,
        *,
        llm: LlmPort | None = None,
        memory_api: MemoryApiPort | None = None,
        budget: PromptBudget | None = None,
        on_fallback: Callable[[str], None] = _no_fallback_metric,
    ) -> None:
        self._memories = memories
        self._llm = llm
        self._memory_api = memory_api
        self._budget = budget or PromptBudget()
        self._on_fallback = on_fallback

    async def analyze(self, conversation: Conversation) -> Analysis:
        async def local_count() -> int:
            # CPU-bound on a large log: off the event loop, so heartbeats, health checks and
            # the other in-flight messages keep their deadlines while it runs.
            facts = await asyncio.to_thread(extract_facts, conversation.turns)
            if not facts:
                return 0
            return await self._memories.remember(
                conversation.user_id, conversation.conversation_id, facts
            )

        return await self._analyze(
            conversation.turns, conversation.metadata, local_count, conversation
        )

    async def preview(self, turns: Sequence[Turn], metadata: ConversationMetadata) -> Analysis:
        """The same analysis, nothing stored: the LLM is asked; the memory API is not (an
        add would store memories), every locally extracted fact counts as new."""

        async def local_count() -> int:
            return len(extract_facts(turns))

        return await self._analyze(tuple(turns), metadata, local_count, None)

    async def _analyze(
        self,
        turns: Sequence[Turn],
        metadata: ConversationMetadata,
        local_memories: Callable[[], Coroutine[Any, Any, int]],
        conversation: Conversation | None,
    ) -> Analysis:
        part = excerpt(turns, self._budget)
        text: str | None = None
        if self._llm is not None and not metadata_is_complete(metadata):
            text = render(part)
        (questions, from_llm_q), (emotion, from_llm_e), memories = await _all(
            self._questions(turns, metadata, text),
            self._emotion(turns, metadata, text),
            self._memories_count(conversation, part.turns, local_memories),
        )
        if metadata_is_complete(metadata):
            source = AnalysisSource.METADATA
        elif from_llm_q and from_llm_e:
            source = AnalysisSource.LLM
        else:
            source = AnalysisSource.LOCAL
        return Analysis(
            total_turns=len(turns),
            user_initiated_questions=questions,
            session_emotion=emotion,
            new_memories_count=memories,
            source=source,
        )

    async def _from_provider(self, part: str, call: Awaitable[T]) -> T | None:
        try:
            return await call
        except ProviderFailed as exc:
            outcome = exc.outcome
        except Exception as exc:  # a third party must never fail the conversation
            outcome = f"unexpected {type(exc).__name__}"
        self._on_fallback(part)
        log.info("falling back to the local analysis", extra={"part": part, "outcome": outcome})
        return None

    async def _questions(
        self, turns: Sequence[Turn], metadata: ConversationMetadata, text: str | None
    ) -> tuple[int, bool]:
        if metadata_is_complete(metadata):
            assert metadata.user_initiated_questions is not None
            return metadata.user_initiated_questions, False
        if self._llm is not None and text is not None:
            user_turns = sum(1 for t in turns if t.role is Role.USER)
            answer = await self._from_provider(
                QUESTIONS, self._llm.count_questions(text, user_turns)
            )
            if answer is not None:
                return answer, True
        return await asyncio.to_thread(count_user_questions, turns), False

    async def _emotion(
        self, turns: Sequence[Turn], metadata: ConversationMetadata, text: str | None
    ) -> tuple[Emotion, bool]:
        if metadata_is_complete(metadata):
            return metadata.session_emotion, False
        if self._llm is not None and text is not None:
            answer = await self._from_provider(EMOTION, self._llm.session_emotion(text))
            if answer is not None:
                return answer, True
        return await asyncio.to_thread(session_emotion, turns), False

    async def _memories_count(
        self,
        conversation: Conversation | None,
        turns: Sequence[Turn],
        local_memories: Callable[[], Coroutine[Any, Any, int]],
    ) -> int:
        if self._memory_api is None or conversation is None:
            return await local_memories()

        async def from_api() -> int | None:
            assert self._memory_api is not None and conversation is not None
            return await self._from_provider(MEMORIES, self._memory_api.add(conversation, turns))

        api_count, local = await _all(from_api(), local_memories())
        return int(local) if api_count is None else int(api_count)


class LocalConversationAnalysis(ConversationAnalyzer):
    """No third party: robot metadata when complete, else local EN/VI analysis."""

    def __init__(self, memories: MemoryStore) -> None:
        super().__init__(memories)
