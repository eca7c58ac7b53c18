"""The local analysis: what the robot told us, or what we find ourselves (EN + VI)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from analyzer.domain.emotion import session_emotion
from analyzer.domain.memories import extract_facts
from analyzer.domain.model import (
    Analysis,
    AnalysisSource,
    ConversationMetadata,
    Emotion,
    Fact,
    Turn,
    metadata_is_complete,
)
from analyzer.domain.questions import count_user_questions


@dataclass(frozen=True)
class QuestionsAndEmotion:
    user_initiated_questions: int
    session_emotion: Emotion
    source: AnalysisSource


def questions_and_emotion(
    turns: Sequence[Turn], metadata: ConversationMetadata
) -> QuestionsAndEmotion:
    """The robot's metadata when complete, else the local count and emotion."""
    if metadata_is_complete(metadata):
        assert metadata.user_initiated_questions is not None
        return QuestionsAndEmotion(
            metadata.user_initiated_questions, metadata.session_emotion, AnalysisSource.METADATA
        )
    return QuestionsAndEmotion(
        count_user_questions(turns), session_emotion(turns), AnalysisSource.LOCAL
    )


def analyze_locally(
    turns: Sequence[Turn], metadata: ConversationMetadata, new_memories_count: int
) -> Analysis:
    qe = questions_and_emotion(turns, metadata)
    return Analysis(
        total_turns=len(turns),
        user_initiated_questions=qe.user_initiated_questions,
        session_emotion=qe.session_emotion,
        new_memories_count=new_memories_count,
        source=qe.source,
    )


def preview(
    turns: Sequence[Turn], metadata: ConversationMetadata
) -> tuple[Analysis, tuple[Fact, ...]]:
    """Analysis without any store: every extracted fact counts as new."""
    facts = extract_facts(turns)
    return analyze_locally(turns, metadata, len(facts)), facts
