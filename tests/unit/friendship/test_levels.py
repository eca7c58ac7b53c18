"""Level thresholds: acquaintance from 100 inclusive, friend from 300 inclusive."""

from __future__ import annotations

import pytest

from friendship.domain.levels import Level, LevelThresholds, level_for, next_level_score

THRESHOLDS = LevelThresholds(acquaintance=100, friend=300)


@pytest.mark.parametrize(
    ("score", "level"),
    [
        (0, Level.STRANGER),
        (99.999, Level.STRANGER),
        (100, Level.ACQUAINTANCE),
        (100.001, Level.ACQUAINTANCE),
        (299.999, Level.ACQUAINTANCE),
        (300, Level.FRIEND),
        (300.001, Level.FRIEND),
        (10_000, Level.FRIEND),
    ],
)
def test_level_at_each_threshold(score: float, level: Level) -> None:
    assert level_for(score, THRESHOLDS) is level


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        (0, 100),
        (99.999, 100),
        (100, 300),
        (299.999, 300),
        (300, 0),
        (5_000, 0),
    ],
)
def test_next_level_score(score: float, expected: float) -> None:
    assert next_level_score(score, THRESHOLDS) == expected


def test_thresholds_are_configurable() -> None:
    custom = LevelThresholds(acquaintance=10, friend=20)
    assert level_for(10, custom) is Level.ACQUAINTANCE
    assert next_level_score(0, custom) == 10


@pytest.mark.parametrize(("acquaintance", "friend"), [(0, 300), (300, 300), (400, 300), (-1, 5)])
def test_thresholds_must_be_ordered(acquaintance: float, friend: float) -> None:
    with pytest.raises(ValueError):
        LevelThresholds(acquaintance=acquaintance, friend=friend)
