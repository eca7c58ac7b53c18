"""What the analyzer's use cases need from the outside world (implemented in adapters)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from analyzer.domain.model import Analysis, Conversation, Emotion, Fact, Turn


@dataclass(frozen=True)
class Claim:
    claimed: bool
    attempts: int
    conversation: Conversation | None  # set when claimed


class IngestPort(Protocol):
    async def claim(self, conversation_id: str, lease_s: int) -> Claim: ...

    async def complete_processed(
        self, conversation_id: str, score_change: float, analysis: Analysis
    ) -> None: ...

    async def complete_skipped(self, conversation_id: str) -> None: ...

    async def fail(self, conversation_id: str, error: str, dead_lettered: bool) -> None: ...


class FriendshipPort(Protocol):
    async def apply(self, conversation: Conversation, analysis: Analysis) -> float:
        """Applies the analysis exactly once; returns the score change."""
        ...


class ConversationAnalysis(Protocol):
    """Questions, emotion and new memories of one conversation.

    Implemented in analysis.py: robot metadata, the LLM and the memory API when
    configured, the local analysis as the fallback of each part.
    """

    async def analyze(self, conversation: Conversation) -> Analysis: ...


class LlmPort(Protocol):
    """The two LLM questions; each raises ProviderFailed when no valid answer came in time."""

    async def count_questions(self, conversation_text: str, user_turns: int) -> int: ...

    async def session_emotion(self, conversation_text: str) -> Emotion: ...


class MemoryApiPort(Protocol):
    async def add(self, conversation: Conversation, turns: Sequence[Turn]) -> int:
        """Sends the (bounded) turns; returns how many memories that call added.

        Raises ProviderFailed when the memory API gives no usable answer in time.
        """
        ...


class MemoryStore(Protocol):
    async def remember(
        self, user_id: str, conversation_id: str, facts: Sequence[Fact]
    ) -> int:
        """Stores the facts; returns how many are new for this user (first seen here)."""
        ...


class AnalysisStore(Protocol):
    async def get(self, conversation_id: str) -> Analysis | None: ...

    async def save_first(self, conversation_id: str, analysis: Analysis) -> Analysis:
        """Stores the analysis unless one exists; returns the stored one (first write wins)."""
        ...


class Redelivery(Protocol):
    """Where a failed message goes next (bound to the message being handled)."""

    async def retry_later(self, delay_s: int, attempts: int, reason: str) -> None: ...

    async def dead_letter(self, reason: str, attempts: int) -> None: ...


class ErasureStore(Protocol):
    async def erase_user(self, user_id: str, conversation_hashes: Sequence[str]) -> dict[str, int]:
        """Tombstones for the hashes, then the analyses of those conversations and the
        user's memories deleted, in one transaction; rows removed, by table."""
        ...


class MemoryApiEraser(Protocol):
    async def delete_user(self, user_id: str) -> None:
        """Deletes every record of the user in the memory API; raises ProviderFailed."""
        ...
