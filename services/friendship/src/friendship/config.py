"""Friendship settings (environment variables). Built in main(), never at import."""

from __future__ import annotations

from pydantic import Field, model_validator

from friendship.domain.levels import LevelThresholds
from friendship.domain.scoring import Emotion, ScoreWeights
from servicekit.settings import BaseServiceSettings

_EMOTION_BOUND = 15.0


class Settings(BaseServiceSettings):
    grpc_port: int = 50053
    metrics_port: int = 9103

    friendship_acquaintance_threshold: float = Field(default=100.0, gt=0)
    friendship_friend_threshold: float = Field(default=300.0, gt=0)

    score_points_per_turn: float = Field(default=0.5, ge=0)
    score_points_per_question: float = Field(default=3.0, ge=0)
    score_points_per_memory: float = Field(default=5.0, ge=0)

    emotion_points_interesting: float = Field(default=15.0, ge=-_EMOTION_BOUND, le=_EMOTION_BOUND)
    emotion_points_happy: float = Field(default=10.0, ge=-_EMOTION_BOUND, le=_EMOTION_BOUND)
    emotion_points_neutral: float = Field(default=0.0, ge=-_EMOTION_BOUND, le=_EMOTION_BOUND)
    emotion_points_sad: float = Field(default=-5.0, ge=-_EMOTION_BOUND, le=_EMOTION_BOUND)
    emotion_points_angry: float = Field(default=-10.0, ge=-_EMOTION_BOUND, le=_EMOTION_BOUND)
    emotion_points_boring: float = Field(default=-15.0, ge=-_EMOTION_BOUND, le=_EMOTION_BOUND)

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> Settings:
        if not 0 < self.friendship_acquaintance_threshold < self.friendship_friend_threshold:
            raise ValueError(
                "FRIENDSHIP_ACQUAINTANCE_THRESHOLD must be > 0 and below"
                " FRIENDSHIP_FRIEND_THRESHOLD"
            )
        return self

    def thresholds(self) -> LevelThresholds:
        return LevelThresholds(
            acquaintance=self.friendship_acquaintance_threshold,
            friend=self.friendship_friend_threshold,
        )

    def weights(self) -> ScoreWeights:
        return ScoreWeights(
            points_per_turn=self.score_points_per_turn,
            points_per_question=self.score_points_per_question,
            points_per_memory=self.score_points_per_memory,
            emotion_points={
                Emotion.UNSPECIFIED: 0.0,
                Emotion.INTERESTING: self.emotion_points_interesting,
                Emotion.HAPPY: self.emotion_points_happy,
                Emotion.NEUTRAL: self.emotion_points_neutral,
                Emotion.SAD: self.emotion_points_sad,
                Emotion.ANGRY: self.emotion_points_angry,
                Emotion.BORING: self.emotion_points_boring,
            },
        )
