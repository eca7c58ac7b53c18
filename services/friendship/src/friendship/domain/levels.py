"""Friendship levels: the score decides the level (thresholds inclusive)."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Level(enum.Enum):
    STRANGER = "stranger"
    ACQUAINTANCE = "acquaintance"
    FRIEND = "friend"


@dataclass(frozen=True)
class LevelThresholds:
    acquaintance: float = 100.0
    friend: float = 300.0

    def __post_init__(self) -> None:
        if not 0 < self.acquaintance < self.friend:
            raise ValueError("thresholds must satisfy 0 < acquaintance < friend")


def level_for(score: float, thresholds: LevelThresholds) -> Level:
    if score >= thresholds.friend:
        return Level.FRIEND
    if score >= thresholds.acquaintance:
        return Level.ACQUAINTANCE
    return Level.STRANGER


def next_level_score(score: float, thresholds: LevelThresholds) -> float:
    """The score where the next level starts; 0 at the top level."""
    return next_level_start(level_for(score, thresholds), thresholds)


def next_level_start(level: Level, thresholds: LevelThresholds) -> float:
    """The score where the level after `level` starts; 0 at the top level."""
    if level is Level.STRANGER:
        return thresholds.acquaintance
    if level is Level.ACQUAINTANCE:
        return thresholds.friend
    return 0.0
