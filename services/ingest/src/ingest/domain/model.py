"""Values of the ingest domain: frozen dataclasses, no infrastructure types."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Instant:
    """A point in time exactly as the wire carries it (seconds + nanos since the epoch, UTC)."""

    seconds: int
    nanos: int = 0


@dataclass(frozen=True, slots=True)
class Turn:
    """One turn exactly as received (raw) or after normalization."""

    role: str
    content: str
    at: Instant | None = None


@dataclass(frozen=True, slots=True)
class Metadata:
    user_initiated_questions: int | None = None
    session_emotion: int = 0  # Emotion enum value; 0 = not given


@dataclass(frozen=True, slots=True)
class ConversationInput:
    """What the robot sent, before any validation."""

    conversation_id: str
    user_id: str
    bot_id: str
    bot_type: str
    agent_tag: str
    turns: tuple[Turn, ...]
    metadata: Metadata
    started_at: Instant | None = None
    ended_at: Instant | None = None


@dataclass(frozen=True, slots=True)
class NormalizedConversation:
    """What the analyzer gets back when it claims a conversation."""

    conversation_id: str
    user_id: str
    bot_id: str
    bot_type: str
    agent_tag: str
    turns: tuple[Turn, ...]
    metadata: Metadata


@dataclass(frozen=True, slots=True)
class Analysis:
    total_turns: int
    user_initiated_questions: int
    session_emotion: int
    new_memories_count: int
    source: str
