"""Level-change events, written to the outbox in the transaction that changes the level."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from friendship.domain.levels import Level

ROUTING_KEY_LEVEL_CHANGED = "level.changed"


class LevelChangeCause(enum.Enum):
    CONVERSATION = "conversation"
    RULES_RECOMPUTED = "rules_recomputed"
    RULES_FORWARD = "rules_forward"


@dataclass(frozen=True)
class LevelChanged:
    event_id: str
    user_id: str
    old_level: Level
    new_level: Level
    score: float
    conversation_id: str  # empty for a rule change
    rule_version: str
    occurred_at: datetime
    cause: LevelChangeCause
