"""The RabbitMQ message ingest publishes: {"conversation_id": "..."} (ids, never logs)."""

from __future__ import annotations

import json
import re

_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class MalformedMessage(ValueError):
    """Not JSON, not an object, or no valid conversation_id. Goes to the dead letters."""


def parse_ended_message(body: bytes) -> str:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedMessage("body is not JSON") from exc
    if not isinstance(payload, dict):
        raise MalformedMessage("body is not a JSON object")
    conversation_id = payload.get("conversation_id")
    if not isinstance(conversation_id, str) or not _ID.match(conversation_id):
        raise MalformedMessage("no valid conversation_id")
    return conversation_id


def encode_ended_message(conversation_id: str) -> bytes:
    return json.dumps({"conversation_id": conversation_id}).encode()
