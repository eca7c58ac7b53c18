"""Strict parsing of the LLM's JSON answers: anything unexpected is an InvalidAnswer."""

from __future__ import annotations

import json
from typing import Any

from analyzer.domain.model import Emotion
from analyzer.domain.prompts import EMOTION_NAMES

# A user turn with more questions than this is not a plausible answer.
MAX_QUESTIONS_PER_USER_TURN = 10


class InvalidAnswer(ValueError):
    """The answer is not the JSON object asked for, or out of range."""


def _object_with(content: str | None, key: str) -> Any:
    if not content:
        raise InvalidAnswer("empty answer")
    try:
        value = json.loads(content)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise InvalidAnswer("not JSON") from exc
    if not isinstance(value, dict) or set(value) != {key}:
        raise InvalidAnswer(f"not an object with exactly {key!r}")
    return value[key]


def parse_questions(content: str | None, user_turns: int) -> int:
    value = _object_with(content, "user_initiated_questions")
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidAnswer("questions is not an integer")
    if not 0 <= value <= max(user_turns, 1) * MAX_QUESTIONS_PER_USER_TURN:
        raise InvalidAnswer("questions out of range")
    return value


def parse_emotion(content: str | None) -> Emotion:
    value = _object_with(content, "emotion")
    if not isinstance(value, str) or value.strip().lower() not in EMOTION_NAMES:
        raise InvalidAnswer("emotion is not one of the contract's values")
    return EMOTION_NAMES[value.strip().lower()]
