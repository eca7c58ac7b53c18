from __future__ import annotations

import pytest

from analyzer.domain.emotion import session_emotion
from analyzer.domain.local_analysis import analyze_locally, preview
from analyzer.domain.memories import extract_facts
from analyzer.domain.model import (
    AnalysisSource,
    ConversationMetadata,
    Emotion,
    Role,
    Turn,
    metadata_is_complete,
)
from analyzer.domain.questions import count_user_questions
from tests.unit.analyzer.dialogues import DIALOGUES, Dialogue

TURNS = (
    Turn(Role.USER, "Why is the sky blue? This is so fun!"),
    Turn(Role.ASSISTANT, "Because of how light scatters."),
    Turn(Role.USER, "My name is An."),
)


@pytest.mark.parametrize(
    ("metadata", "complete"),
    [
        (ConversationMetadata(), False),
        (ConversationMetadata(user_initiated_questions=2), False),
        (ConversationMetadata(session_emotion=Emotion.HAPPY), False),
        (ConversationMetadata(user_initiated_questions=0, session_emotion=Emotion.BORING), True),
        (ConversationMetadata(user_initiated_questions=4, session_emotion=Emotion.NEUTRAL), True),
    ],
)
def test_metadata_is_complete_only_with_both_fields(
    metadata: ConversationMetadata, complete: bool
) -> None:
    assert metadata_is_complete(metadata) is complete


def test_complete_metadata_is_used_as_is() -> None:
    metadata = ConversationMetadata(user_initiated_questions=0, session_emotion=Emotion.SAD)
    analysis = analyze_locally(TURNS, metadata, new_memories_count=1)
    assert analysis.source == AnalysisSource.METADATA
    assert (analysis.user_initiated_questions, analysis.session_emotion) == (0, Emotion.SAD)
    assert analysis.total_turns == 3
    assert analysis.new_memories_count == 1


def test_incomplete_metadata_falls_back_to_local_analysis() -> None:
    analysis = analyze_locally(TURNS, ConversationMetadata(user_initiated_questions=9), 0)
    assert analysis.source == AnalysisSource.LOCAL
    assert analysis.user_initiated_questions == 1
    assert analysis.session_emotion == Emotion.INTERESTING
    assert analysis.total_turns == 3


def test_preview_counts_every_extracted_fact_as_new() -> None:
    analysis, facts = preview(TURNS, ConversationMetadata())
    assert [f.text for f in facts] == ["name: an"]
    assert analysis.new_memories_count == 1


@pytest.mark.parametrize("dialogue", DIALOGUES, ids=lambda d: d.name)
def test_dialogue_fixtures(dialogue: Dialogue) -> None:
    assert count_user_questions(dialogue.turns) == dialogue.questions
    assert session_emotion(dialogue.turns) == dialogue.emotion
    assert tuple(f.text for f in extract_facts(dialogue.turns)) == dialogue.facts
    analysis, _ = preview(dialogue.turns, ConversationMetadata())
    assert analysis.total_turns == len(dialogue.turns)
    assert analysis.new_memories_count == len(dialogue.facts)
