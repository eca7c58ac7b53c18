"""Score history paging: page sizes, an opaque keyset token on (applied_at, conversation_id)."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime

from friendship.domain.validation import FieldViolation, InvalidRequest, validate_user_id

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


@dataclass(frozen=True)
class HistoryCursor:
    """The last entry of a page: the next page holds entries strictly older than it."""

    applied_at: datetime
    conversation_id: str


@dataclass(frozen=True)
class HistoryQuery:
    user_id: str
    page_size: int
    after: HistoryCursor | None


def encode_page_token(user_id: str, cursor: HistoryCursor) -> str:
    raw = json.dumps(
        {"u": user_id, "t": cursor.applied_at.isoformat(), "c": cursor.conversation_id},
        separators=(",", ":"),
    ).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(user_id: str, token: str) -> HistoryCursor:
    """ValueError when the token is not one of ours or belongs to another user."""
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(data, dict) or data.get("u") != user_id:
            raise ValueError("token of another request")
        applied_at = datetime.fromisoformat(str(data["t"]))
        conversation_id = data["c"]
    except (binascii.Error, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError("malformed token") from exc
    if applied_at.tzinfo is None or not isinstance(conversation_id, str):
        raise ValueError("malformed token")
    return HistoryCursor(applied_at=applied_at, conversation_id=conversation_id)


def parse_history_request(user_id: str, page_size: int, page_token: str) -> HistoryQuery:
    """Raises InvalidRequest with every violation. 0 = default size; above the max = the max."""
    violations = list(validate_user_id(user_id))
    if page_size < 0:
        violations.append(FieldViolation("page_size", "must be >= 0"))
    after: HistoryCursor | None = None
    if page_token and not violations:
        try:
            after = decode_page_token(user_id, page_token)
        except ValueError:
            violations.append(
                FieldViolation("page_token", "not a token from a previous page of this user")
            )
    if violations:
        raise InvalidRequest(violations)
    size = DEFAULT_PAGE_SIZE if page_size == 0 else min(page_size, MAX_PAGE_SIZE)
    return HistoryQuery(user_id=user_id, page_size=size, after=after)
