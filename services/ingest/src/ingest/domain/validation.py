"""Request validation: a list of (field, description) violations, never the offending text."""

from __future__ import annotations

import re

from ingest.domain.model import ConversationInput, Instant
from ingest.domain.normalization import ASSISTANT_ROLES, USER_ROLES, clean_content

Violation = tuple[str, str]

_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_BOT_TYPE_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_ID_RULE = "must be 1-128 characters of A-Z a-z 0-9 . _ : -"
_BOT_TYPE_RULE = "must be empty or 1-64 characters of A-Z a-z 0-9 . _ : -"
KNOWN_ROLES = USER_ROLES | ASSISTANT_ROLES
KNOWN_EMOTIONS = frozenset(range(0, 7))  # spring.ingest.v1.Emotion
# 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z, as google.protobuf.Timestamp allows.
MIN_SECONDS = -62_135_596_800
MAX_SECONDS = 253_402_300_799
# A bound on the violations reported: they travel in a trailer, which clients cap at 8 KiB.
MAX_VIOLATIONS = 20


def id_violation(field: str, value: str) -> Violation | None:
    if not value:
        return (field, "is required")
    if not _ID_RE.fullmatch(value):
        return (field, _ID_RULE)
    return None


def instant_violation(field: str, value: Instant | None) -> Violation | None:
    if value is None:
        return None
    if not MIN_SECONDS <= value.seconds <= MAX_SECONDS:
        return (field, "seconds must lie between 0001-01-01 and 9999-12-31")
    if not 0 <= value.nanos <= 999_999_999:
        return (field, "nanos must lie in 0..999999999")
    return None


def _instant_key(value: Instant) -> tuple[int, int]:
    return (value.seconds, value.nanos)


def validate_conversation(request: ConversationInput, max_turns: int) -> list[Violation]:
    found: list[Violation | None] = [
        id_violation("conversation_id", request.conversation_id),
        id_violation("user_id", request.user_id),
        id_violation("bot_id", request.bot_id),
    ]
    if request.agent_tag and not _ID_RE.fullmatch(request.agent_tag):
        found.append(("agent_tag", "must be empty or " + _ID_RULE.removeprefix("must be ")))
    if request.bot_type and not _BOT_TYPE_RE.fullmatch(request.bot_type):
        found.append(("bot_type", _BOT_TYPE_RULE))

    turns = request.turns
    if not turns:
        found.append(("conversation_log", "is required: at least one turn"))
    elif len(turns) > max_turns:
        found.append(("conversation_log", f"at most {max_turns} turns are accepted"))
    else:
        any_content = False
        for index, turn in enumerate(turns):
            if turn.role.strip().lower() not in KNOWN_ROLES:
                found.append(
                    (f"conversation_log[{index}].role",
                     "must be one of user, assistant, bot, robot, agent")
                )
            if "\x00" in turn.content:
                found.append(
                    (f"conversation_log[{index}].content", "must not contain NUL characters")
                )
            found.append(instant_violation(f"conversation_log[{index}].at", turn.at))
            if not any_content and clean_content(turn.content):
                any_content = True
        if not any_content:
            found.append(("conversation_log", "needs at least one turn with non-empty content"))

    questions = request.metadata.user_initiated_questions
    if questions is not None and questions < 0:
        found.append(("metadata.user_initiated_questions", "must be >= 0"))
    if request.metadata.session_emotion not in KNOWN_EMOTIONS:
        found.append(("metadata.session_emotion", "is not a known Emotion value"))

    started = instant_violation("started_at", request.started_at)
    ended = instant_violation("ended_at", request.ended_at)
    found += [started, ended]
    if (
        started is None
        and ended is None
        and request.started_at is not None
        and request.ended_at is not None
        and _instant_key(request.ended_at) < _instant_key(request.started_at)
    ):
        found.append(("ended_at", "must not be before started_at"))

    return [v for v in found if v is not None][:MAX_VIOLATIONS]
