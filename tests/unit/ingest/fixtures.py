"""Small builders for ingest unit tests."""

from __future__ import annotations

import dataclasses
from typing import Any

from ingest.domain.model import ConversationInput, Instant, Metadata, Turn


def conversation(**overrides: Any) -> ConversationInput:
    base = ConversationInput(
        conversation_id="conv-1",
        user_id="user-1",
        bot_id="bot-1",
        bot_type="",
        agent_tag="",
        turns=(Turn("user", "Hello there"), Turn("assistant", "Hi! How are you?")),
        metadata=Metadata(),
        started_at=Instant(1_700_000_000),
        ended_at=Instant(1_700_000_600),
    )
    return dataclasses.replace(base, **overrides)
