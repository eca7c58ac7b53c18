"""In-memory fakes of the analyzer's ports, recording what they were asked."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from analyzer.domain.errors import DependencyFailed
from analyzer.domain.model import Analysis, Conversation, Fact
from analyzer.domain.ports import Claim


@dataclass
class FakeIngest:
    conversations: dict[str, Conversation] = field(default_factory=dict)
    terminal: set[str] = field(default_factory=set)
    attempts: dict[str, int] = field(default_factory=dict)
    down: bool = False
    claim_delay_s: float = 0.0
    completed: list[tuple[str, str, float, Analysis | None]] = field(default_factory=list)
    failures: list[tuple[str, str, bool]] = field(default_factory=list)

    async def claim(self, conversation_id: str, lease_s: int) -> Claim:
        if self.claim_delay_s:
            await asyncio.sleep(self.claim_delay_s)
        if self.down:
            raise DependencyFailed("ingest.ClaimConversation UNAVAILABLE")
        if conversation_id not in self.conversations:
            raise DependencyFailed("ingest.ClaimConversation NOT_FOUND")
        if conversation_id in self.terminal:
            return Claim(False, self.attempts.get(conversation_id, 0), None)
        self.attempts[conversation_id] = self.attempts.get(conversation_id, 0) + 1
        return Claim(True, self.attempts[conversation_id], self.conversations[conversation_id])

    async def complete_processed(
        self, conversation_id: str, score_change: float, analysis: Analysis
    ) -> None:
        self.completed.append((conversation_id, "PROCESSED", score_change, analysis))
        self.terminal.add(conversation_id)

    async def complete_skipped(self, conversation_id: str) -> None:
        self.completed.append((conversation_id, "SKIPPED", 0.0, None))
        self.terminal.add(conversation_id)

    async def fail(self, conversation_id: str, error: str, dead_lettered: bool) -> None:
        if self.down:
            raise DependencyFailed("ingest.FailConversation UNAVAILABLE")
        self.failures.append((conversation_id, error, dead_lettered))
        if dead_lettered:
            self.terminal.add(conversation_id)


@dataclass
class FakeFriendship:
    applied: dict[str, Analysis] = field(default_factory=dict)
    down: bool = False

    async def apply(self, conversation: Conversation, analysis: Analysis) -> float:
        if self.down:
            raise DependencyFailed("friendship.ApplyConversation UNAVAILABLE")
        self.applied.setdefault(conversation.conversation_id, analysis)
        stored = self.applied[conversation.conversation_id]
        return stored.total_turns * 0.5 + stored.user_initiated_questions * 3


@dataclass
class FakeStore:
    """AnalysisStore and MemoryStore with the repository's first-write-wins rules."""

    analyses: dict[str, Analysis] = field(default_factory=dict)
    memories: dict[tuple[str, str], str] = field(default_factory=dict)  # -> first conversation
    get_error: Exception | None = None
    reads: int = 0

    async def get(self, conversation_id: str) -> Analysis | None:
        self.reads += 1
        if self.get_error is not None:
            raise self.get_error
        return self.analyses.get(conversation_id)

    async def save_first(self, conversation_id: str, analysis: Analysis) -> Analysis:
        return self.analyses.setdefault(conversation_id, analysis)

    async def remember(self, user_id: str, conversation_id: str, facts: Sequence[Fact]) -> int:
        for fact in facts:
            self.memories.setdefault((user_id, fact.fact_hash), conversation_id)
        return sum(1 for f in facts if self.memories[(user_id, f.fact_hash)] == conversation_id)


@dataclass
class CountingAnalysis:
    inner: object
    calls: int = 0

    async def analyze(self, conversation: Conversation) -> Analysis:
        self.calls += 1
        return await self.inner.analyze(conversation)  # type: ignore[attr-defined, no-any-return]


@dataclass
class FakeRedelivery:
    retries: list[tuple[int, int, str]] = field(default_factory=list)
    dead: list[tuple[str, int]] = field(default_factory=list)
    broken: bool = False

    async def retry_later(self, delay_s: int, attempts: int, reason: str) -> None:
        if self.broken:
            raise ConnectionError("broker gone")
        self.retries.append((delay_s, attempts, reason))

    async def dead_letter(self, reason: str, attempts: int) -> None:
        if self.broken:
            raise ConnectionError("broker gone")
        self.dead.append((reason, attempts))
