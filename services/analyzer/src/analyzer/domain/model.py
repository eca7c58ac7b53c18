"""Value types of the analyzer domain: frozen dataclasses, no infrastructure."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum, StrEnum


class Emotion(IntEnum):
    """Mirrors spring.ingest.v1.Emotion (same names and numbers)."""

    UNSPECIFIED = 0
    INTERESTING = 1
    HAPPY = 2
    NEUTRAL = 3
    SAD = 4
    ANGRY = 5
    BORING = 6


class Role(Enum):
    USER = "user"
    ASSISTANT = "assistant"


class AnalysisSource(StrEnum):
    METADATA = "metadata"
    LLM = "llm"
    LOCAL = "local"


@dataclass(frozen=True)
class Turn:
    role: Role
    content: str


@dataclass(frozen=True)
class ConversationMetadata:
    """What the robot already analysed; complete = both fields set."""

    user_initiated_questions: int | None = None
    session_emotion: Emotion = Emotion.UNSPECIFIED


@dataclass(frozen=True)
class Conversation:
    """A normalized conversation as ingest hands it out on a claim."""

    conversation_id: str
    user_id: str
    bot_id: str
    bot_type: str
    agent_tag: str
    turns: tuple[Turn, ...]
    metadata: ConversationMetadata = ConversationMetadata()


@dataclass(frozen=True)
class Analysis:
    total_turns: int
    user_initiated_questions: int
    session_emotion: Emotion
    new_memories_count: int
    source: AnalysisSource


@dataclass(frozen=True)
class Fact:
    """A short, normalized self-disclosure of the person. Never logged."""

    text: str
    fact_hash: str


NEXT_LESSON_BOT_TYPE = "NEXT_LESSON"


def is_skipped(conversation: Conversation) -> bool:
    return conversation.bot_type.strip().upper() == NEXT_LESSON_BOT_TYPE


def metadata_is_complete(metadata: ConversationMetadata) -> bool:
    """The robot's own analysis is used only when both of its fields are set."""
    return (
        metadata.user_initiated_questions is not None
        and metadata.user_initiated_questions >= 0
        and metadata.session_emotion != Emotion.UNSPECIFIED
    )
