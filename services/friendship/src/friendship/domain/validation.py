"""Request validation: ids, counts, emotion. Returns field violations, never echoes values."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from friendship.domain.friendship import ApplyCommand
from friendship.domain.scoring import AnalysisInput, Emotion

ID_RULE = "1-128 characters of [A-Za-z0-9._:-]"
_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
MAX_SOURCE_LENGTH = 64


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class InvalidRequest(Exception):
    def __init__(self, violations: list[FieldViolation]) -> None:
        super().__init__(f"{len(violations)} invalid field(s)")
        self.violations = violations


def is_valid_id(value: str) -> bool:
    return _ID.fullmatch(value) is not None


def _check_id(field: str, value: str, *, optional: bool = False) -> list[FieldViolation]:
    if optional and value == "":
        return []
    if not value:
        return [FieldViolation(field, f"required: {ID_RULE}")]
    if not is_valid_id(value):
        return [FieldViolation(field, f"must be {ID_RULE}")]
    return []


def validate_user_id(user_id: str, field: str = "user_id") -> list[FieldViolation]:
    return _check_id(field, user_id)


def parse_apply(
    *,
    conversation_id: str,
    user_id: str,
    bot_id: str,
    agent_tag: str,
    total_turns: int,
    user_initiated_questions: int,
    emotion: int,
    new_memories_count: int,
    source: str,
) -> ApplyCommand:
    """Raw request values to an ApplyCommand, or InvalidRequest with every violation."""
    violations = [
        *_check_id("conversation_id", conversation_id),
        *_check_id("user_id", user_id),
        *_check_id("bot_id", bot_id),
        *_check_id("agent_tag", agent_tag, optional=True),
    ]
    counts = {
        "analysis.total_turns": total_turns,
        "analysis.user_initiated_questions": user_initiated_questions,
        "analysis.new_memories_count": new_memories_count,
    }
    for field, value in counts.items():
        if value < 0:
            violations.append(FieldViolation(field, "must be >= 0"))
    known = {member.value for member in Emotion}
    if emotion not in known:
        violations.append(FieldViolation("analysis.session_emotion", "unknown emotion"))
    if len(source) > MAX_SOURCE_LENGTH:
        violations.append(
            FieldViolation("analysis.source", f"at most {MAX_SOURCE_LENGTH} characters")
        )
    if violations:
        raise InvalidRequest(violations)
    return ApplyCommand(
        conversation_id=conversation_id,
        user_id=user_id,
        bot_id=bot_id,
        agent_tag=agent_tag,
        analysis=AnalysisInput(
            total_turns=total_turns,
            user_initiated_questions=user_initiated_questions,
            emotion=Emotion(emotion),
            new_memories_count=new_memories_count,
            source=source,
        ),
    )


_HASH = re.compile(r"^[0-9a-f]{64}$")


def validate_erasure_hashes(hashes: Sequence[str]) -> list[FieldViolation]:
    """sha256 hex of conversation ids (DeleteUserData); at most 10 violations reported."""
    return [
        FieldViolation(f"erased_conversation_hashes[{i}]", "must be a sha256 in lower-case hex")
        for i, value in enumerate(hashes)
        if _HASH.fullmatch(value) is None
    ][:10]
