"""The score formula (MISSION.md), one row per case."""

from __future__ import annotations

import pytest

from friendship.domain.scoring import (
    AnalysisInput,
    Emotion,
    ScoreBreakdown,
    ScoreWeights,
    score_breakdown,
)

WEIGHTS = ScoreWeights()


@pytest.mark.parametrize(
    ("turns", "questions", "emotion", "memories", "expected"),
    [
        (0, 0, Emotion.UNSPECIFIED, 0, ScoreBreakdown(0, 0, 0, 0, 0)),
        (10, 0, Emotion.NEUTRAL, 0, ScoreBreakdown(5, 0, 0, 0, 5)),
        (7, 0, Emotion.UNSPECIFIED, 0, ScoreBreakdown(3.5, 0, 0, 0, 3.5)),
        (0, 4, Emotion.UNSPECIFIED, 0, ScoreBreakdown(0, 12, 0, 0, 12)),
        (0, 0, Emotion.INTERESTING, 0, ScoreBreakdown(0, 0, 15, 0, 15)),
        (0, 0, Emotion.HAPPY, 0, ScoreBreakdown(0, 0, 10, 0, 10)),
        (0, 0, Emotion.SAD, 0, ScoreBreakdown(0, 0, -5, 0, -5)),
        (0, 0, Emotion.ANGRY, 0, ScoreBreakdown(0, 0, -10, 0, -10)),
        (0, 0, Emotion.BORING, 0, ScoreBreakdown(0, 0, -15, 0, -15)),
        (0, 0, Emotion.UNSPECIFIED, 3, ScoreBreakdown(0, 0, 0, 15, 15)),
        (20, 2, Emotion.INTERESTING, 1, ScoreBreakdown(10, 6, 15, 5, 36)),
        (4, 0, Emotion.BORING, 0, ScoreBreakdown(2, 0, -15, 0, -13)),
    ],
)
def test_score_formula(
    turns: int, questions: int, emotion: Emotion, memories: int, expected: ScoreBreakdown
) -> None:
    analysis = AnalysisInput(
        total_turns=turns,
        user_initiated_questions=questions,
        emotion=emotion,
        new_memories_count=memories,
        source="metadata",
    )
    assert score_breakdown(analysis, WEIGHTS) == expected


def test_weights_are_arguments() -> None:
    weights = ScoreWeights(
        points_per_turn=1, points_per_question=2, points_per_memory=10,
        emotion_points={Emotion.HAPPY: 7},
    )
    happy = AnalysisInput(2, 1, Emotion.HAPPY, 1)
    sad = AnalysisInput(0, 0, Emotion.SAD, 0)
    assert score_breakdown(happy, weights).total == 2 + 2 + 7 + 10
    assert score_breakdown(sad, weights).emotion == 0  # not configured: 0 points


def test_emotion_mirrors_the_contract_enum() -> None:
    from spring.ingest.v1 import ingest_pb2

    for emotion in Emotion:
        assert ingest_pb2.Emotion.Value(f"EMOTION_{emotion.name}") == emotion.value
    assert len(ingest_pb2.Emotion.keys()) == len(Emotion)
