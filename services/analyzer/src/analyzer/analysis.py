"""The local implementation of the ConversationAnalysis port (no third party involved)."""

from __future__ import annotations

from analyzer.domain.local_analysis import analyze_locally
from analyzer.domain.memories import extract_facts
from analyzer.domain.model import Analysis, Conversation
from analyzer.domain.ports import MemoryStore


class LocalConversationAnalysis:
    """Robot metadata when complete, else local EN/VI analysis; local memory extraction."""

    def __init__(self, memories: MemoryStore) -> None:
        self._memories = memories

    async def analyze(self, conversation: Conversation) -> Analysis:
        facts = extract_facts(conversation.turns)
        new_count = (
            await self._memories.remember(conversation.user_id, conversation.conversation_id, facts)
            if facts
            else 0
        )
        return analyze_locally(conversation.turns, conversation.metadata, new_count)
