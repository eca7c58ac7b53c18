"""Settings: defaults from the brief, thresholds ordered, emotion points bounded."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from friendship.config import Settings
from friendship.domain.scoring import Emotion

SECRET = "unit-test-secret"


def test_defaults() -> None:
    settings = Settings(auth_jwt_secret=SECRET)
    assert (settings.grpc_port, settings.metrics_port) == (50053, 9103)
    thresholds = settings.thresholds()
    assert (thresholds.acquaintance, thresholds.friend) == (100, 300)
    weights = settings.weights()
    assert (weights.points_per_turn, weights.points_per_question, weights.points_per_memory) == (
        0.5, 3, 5
    )
    assert weights.points_for(Emotion.INTERESTING) == 15
    assert weights.points_for(Emotion.BORING) == -15
    assert weights.points_for(Emotion.UNSPECIFIED) == 0


@pytest.mark.parametrize(("acquaintance", "friend"), [(300, 100), (200, 200), (0, 300)])
def test_thresholds_must_be_ordered(acquaintance: float, friend: float) -> None:
    with pytest.raises(ValidationError):
        Settings(
            auth_jwt_secret=SECRET,
            friendship_acquaintance_threshold=acquaintance,
            friendship_friend_threshold=friend,
        )


def test_emotion_points_are_bounded() -> None:
    with pytest.raises(ValidationError):
        Settings(auth_jwt_secret=SECRET, emotion_points_happy=16)
    settings = Settings(auth_jwt_secret=SECRET, emotion_points_sad=-15)
    assert settings.weights().points_for(Emotion.SAD) == -15


def test_auth_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTH_JWT_SECRET", raising=False)
    monkeypatch.delenv("AUTH_JWT_PUBLIC_KEY", raising=False)
    with pytest.raises(ValidationError):
        Settings()
