"""The score formula (MISSION.md): base + engagement + emotion + memory."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

# Stored with every ledger row: which formula produced it.
RULE_VERSION = "v1"


class Emotion(enum.IntEnum):
    """Mirrors CONTRACT.md `Emotion` (same names and numbers)."""

    UNSPECIFIED = 0
    INTERESTING = 1
    HAPPY = 2
    NEUTRAL = 3
    SAD = 4
    ANGRY = 5
    BORING = 6


DEFAULT_EMOTION_POINTS: Mapping[Emotion, float] = {
    Emotion.UNSPECIFIED: 0.0,
    Emotion.INTERESTING: 15.0,
    Emotion.HAPPY: 10.0,
    Emotion.NEUTRAL: 0.0,
    Emotion.SAD: -5.0,
    Emotion.ANGRY: -10.0,
    Emotion.BORING: -15.0,
}


@dataclass(frozen=True)
class ScoreWeights:
    points_per_turn: float = 0.5
    points_per_question: float = 3.0
    points_per_memory: float = 5.0
    emotion_points: Mapping[Emotion, float] = field(
        default_factory=lambda: dict(DEFAULT_EMOTION_POINTS)
    )

    def points_for(self, emotion: Emotion) -> float:
        """Emotions without configured points count 0."""
        return float(self.emotion_points.get(emotion, 0.0))


@dataclass(frozen=True)
class AnalysisInput:
    total_turns: int
    user_initiated_questions: int
    emotion: Emotion
    new_memories_count: int
    source: str = ""


@dataclass(frozen=True)
class ScoreBreakdown:
    base: float
    engagement: float
    emotion: float
    memory: float
    total: float


def score_breakdown(analysis: AnalysisInput, weights: ScoreWeights) -> ScoreBreakdown:
    base = analysis.total_turns * weights.points_per_turn
    engagement = analysis.user_initiated_questions * weights.points_per_question
    emotion = weights.points_for(analysis.emotion)
    memory = analysis.new_memories_count * weights.points_per_memory
    return ScoreBreakdown(
        base=base,
        engagement=engagement,
        emotion=emotion,
        memory=memory,
        total=base + engagement + emotion + memory,
    )
