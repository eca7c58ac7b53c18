"""Validation of ApplyConversation and GetLevel input."""

from __future__ import annotations

from typing import Any

import pytest

from friendship.domain.scoring import Emotion
from friendship.domain.validation import InvalidRequest, parse_apply, validate_user_id

VALID: dict[str, Any] = {
    "conversation_id": "conv:2025-05-01.abc_1",
    "user_id": "user-1",
    "bot_id": "bot.a",
    "agent_tag": "",
    "total_turns": 3,
    "user_initiated_questions": 1,
    "emotion": 1,
    "new_memories_count": 0,
    "source": "llm",
}


def violated_fields(**changes: Any) -> set[str]:
    with pytest.raises(InvalidRequest) as info:
        parse_apply(**{**VALID, **changes})
    return {v.field for v in info.value.violations}


def test_valid_request_parses() -> None:
    command = parse_apply(**VALID)
    assert command.analysis.emotion is Emotion.INTERESTING
    assert command.agent_tag == ""


@pytest.mark.parametrize("value", ["", "a" * 129, "has space", "slash/no", "é", "x\n"])
@pytest.mark.parametrize("field", ["conversation_id", "user_id", "bot_id"])
def test_bad_ids(field: str, value: str) -> None:
    assert violated_fields(**{field: value}) == {field}


def test_id_of_128_chars_is_fine() -> None:
    parse_apply(**{**VALID, "user_id": "u" * 128})


def test_agent_tag_may_be_empty_but_not_malformed() -> None:
    parse_apply(**{**VALID, "agent_tag": "math.v2"})
    assert violated_fields(agent_tag="bad tag") == {"agent_tag"}


@pytest.mark.parametrize(
    "field", ["total_turns", "user_initiated_questions", "new_memories_count"]
)
def test_negative_counts(field: str) -> None:
    assert violated_fields(**{field: -1}) == {f"analysis.{field}"}


@pytest.mark.parametrize("emotion", [-1, 7, 99])
def test_unknown_emotion(emotion: int) -> None:
    assert violated_fields(emotion=emotion) == {"analysis.session_emotion"}


def test_unspecified_emotion_is_accepted() -> None:
    assert parse_apply(**{**VALID, "emotion": 0}).analysis.emotion is Emotion.UNSPECIFIED


def test_every_violation_is_reported() -> None:
    assert violated_fields(user_id="", bot_id="", total_turns=-2) == {
        "user_id", "bot_id", "analysis.total_turns"
    }


def test_user_id_rule() -> None:
    assert validate_user_id("user-1") == []
    assert [v.field for v in validate_user_id("")] == ["user_id"]
    assert [v.field for v in validate_user_id("no way")] == ["user_id"]
