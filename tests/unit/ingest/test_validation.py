from __future__ import annotations

import pytest

from ingest.domain.model import Instant, Metadata, Turn
from ingest.domain.validation import MAX_SECONDS, MIN_SECONDS, validate_conversation

from .fixtures import conversation

MAX_TURNS = 5000


def fields(**overrides: object) -> list[str]:
    return [field for field, _ in validate_conversation(conversation(**overrides), MAX_TURNS)]


def test_a_valid_conversation_has_no_violations() -> None:
    assert validate_conversation(conversation(), MAX_TURNS) == []


@pytest.mark.parametrize("field", ["conversation_id", "user_id", "bot_id"])
@pytest.mark.parametrize("value", ["", "has space", "a/b", "x" * 129, "é", "id\n"])
def test_required_ids_follow_the_id_rule(field: str, value: str) -> None:
    assert fields(**{field: value}) == [field]


@pytest.mark.parametrize("value", ["a", "A.b_c:d-9", "x" * 128])
def test_ids_at_the_edges_of_the_rule_are_accepted(value: str) -> None:
    assert fields(conversation_id=value, user_id=value, bot_id=value, agent_tag=value) == []


def test_agent_tag_may_be_empty_or_follow_the_id_rule() -> None:
    assert fields(agent_tag="") == []
    assert fields(agent_tag="topic:animals") == []
    assert fields(agent_tag="bad tag") == ["agent_tag"]
    assert fields(agent_tag="x" * 129) == ["agent_tag"]


def test_bot_type_may_be_empty_or_up_to_64_characters() -> None:
    assert fields(bot_type="") == []
    assert fields(bot_type="NEXT_LESSON") == []
    assert fields(bot_type="x" * 64) == []
    assert fields(bot_type="x" * 65) == ["bot_type"]
    assert fields(bot_type="NEXT LESSON") == ["bot_type"]


def test_the_log_is_required() -> None:
    assert fields(turns=()) == ["conversation_log"]


def test_more_than_max_turns_is_one_violation_on_the_log() -> None:
    turns = tuple(Turn("user", "hi") for _ in range(MAX_TURNS + 1))
    assert fields(turns=turns) == ["conversation_log"]
    assert fields(turns=turns[:MAX_TURNS]) == []


@pytest.mark.parametrize("role", ["user", "assistant", "bot", "robot", "agent", " User ", "BOT"])
def test_known_roles_in_any_case_and_padding(role: str) -> None:
    assert fields(turns=(Turn(role, "hello"),)) == []


def test_an_unknown_role_is_reported_at_its_index() -> None:
    turns = (Turn("user", "a"), Turn("assistant", "b"), Turn("narrator", "c"), Turn("", "d"))
    assert fields(turns=turns) == ["conversation_log[2].role", "conversation_log[3].role"]


def test_at_least_one_turn_must_have_content_after_normalization() -> None:
    turns = (Turn("user", "  \n\t "), Turn("assistant", "\x07\x1b"), Turn("user", ""))
    assert fields(turns=turns) == ["conversation_log"]
    assert fields(turns=(*turns, Turn("assistant", " ok "))) == []


def test_nul_characters_in_content_are_refused() -> None:
    assert fields(turns=(Turn("user", "a\x00b"),)) == ["conversation_log[0].content"]


def test_user_initiated_questions_must_not_be_negative() -> None:
    assert fields(metadata=Metadata(user_initiated_questions=0)) == []
    assert fields(metadata=Metadata(user_initiated_questions=-1)) == [
        "metadata.user_initiated_questions"
    ]


@pytest.mark.parametrize("emotion", range(7))
def test_known_emotions_are_accepted(emotion: int) -> None:
    assert fields(metadata=Metadata(session_emotion=emotion)) == []


@pytest.mark.parametrize("emotion", [-1, 7, 99])
def test_unknown_emotions_are_refused(emotion: int) -> None:
    assert fields(metadata=Metadata(session_emotion=emotion)) == ["metadata.session_emotion"]


def test_timestamps_must_be_in_range() -> None:
    assert fields(started_at=Instant(MIN_SECONDS), ended_at=Instant(MAX_SECONDS)) == []
    assert fields(started_at=Instant(MIN_SECONDS - 1)) == ["started_at"]
    assert fields(ended_at=Instant(MAX_SECONDS + 1)) == ["ended_at"]
    assert fields(ended_at=Instant(1_700_000_600, nanos=-1)) == ["ended_at"]
    assert fields(ended_at=Instant(1_700_000_600, nanos=1_000_000_000)) == ["ended_at"]
    assert fields(ended_at=Instant(1_700_000_600, nanos=999_999_999)) == []
    bad_turn = (Turn("user", "hi", at=Instant(MAX_SECONDS + 1)),)
    assert fields(turns=bad_turn) == ["conversation_log[0].at"]


def test_ended_must_not_be_before_started() -> None:
    assert fields(started_at=Instant(100), ended_at=Instant(99)) == ["ended_at"]
    assert fields(started_at=Instant(100, 5), ended_at=Instant(100, 4)) == ["ended_at"]
    assert fields(started_at=Instant(100), ended_at=Instant(100)) == []
    assert fields(started_at=None, ended_at=Instant(1)) == []
    assert fields(started_at=Instant(1), ended_at=None) == []


def test_violations_never_quote_the_offending_text() -> None:
    secret = "my-secret-words"
    request = conversation(
        conversation_id=f"{secret} !",
        turns=(Turn(f"{secret}?", f"{secret}\x00"),),
        bot_type=f"{secret} ",
    )
    violations = validate_conversation(request, MAX_TURNS)
    assert violations
    assert all(secret not in field + description for field, description in violations)


def test_every_violation_is_reported_but_bounded() -> None:
    turns = tuple(Turn("narrator", "x") for _ in range(100))
    violations = validate_conversation(conversation(conversation_id="", turns=turns), MAX_TURNS)
    assert violations[0] == ("conversation_id", "is required")
    assert len(violations) == 20
