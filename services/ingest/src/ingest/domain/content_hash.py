"""A content hash over the request as received: same content, same hash, however it arrived."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ingest.domain.model import ConversationInput, Instant

_VERSION = 1


def _instant(value: Instant | None) -> list[int] | None:
    return None if value is None else [value.seconds, value.nanos]


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def content_hash(request: ConversationInput) -> str:
    """sha256 (hex) over a canonical serialization: ids, bot_type, agent_tag, raw turns
    (exactly as received, before normalization), metadata and timestamps.

    Each part is a JSON line fed to the hash in turn, so the log is never copied whole.
    An absent metadata message and an empty one hash the same (the wire cannot tell
    them apart through every transport).
    """
    digest = hashlib.sha256()
    header = [
        _VERSION,
        request.conversation_id,
        request.user_id,
        request.bot_id,
        request.bot_type,
        request.agent_tag,
        request.metadata.user_initiated_questions,
        request.metadata.session_emotion,
        _instant(request.started_at),
        _instant(request.ended_at),
        len(request.turns),
    ]
    digest.update(_dumps(header))
    for turn in request.turns:
        digest.update(b"\n")
        digest.update(_dumps([turn.role, turn.content, _instant(turn.at)]))
    return digest.hexdigest()
