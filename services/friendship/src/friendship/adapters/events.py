"""LevelChanged events as protobuf (spring.friendship.v1.LevelChanged)."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from friendship.domain.events import LevelChangeCause, LevelChanged
from friendship.domain.levels import Level
from spring.friendship.v1 import events_pb2, friendship_pb2

LEVEL_TO_PROTO = {
    Level.STRANGER: friendship_pb2.FRIENDSHIP_LEVEL_PHASE1_STRANGER,
    Level.ACQUAINTANCE: friendship_pb2.FRIENDSHIP_LEVEL_PHASE2_ACQUAINTANCE,
    Level.FRIEND: friendship_pb2.FRIENDSHIP_LEVEL_PHASE3_FRIEND,
}

_CAUSE_TO_PROTO = {
    LevelChangeCause.CONVERSATION: events_pb2.LEVEL_CHANGE_CAUSE_CONVERSATION,
    LevelChangeCause.RULES_RECOMPUTED: events_pb2.LEVEL_CHANGE_CAUSE_RULES_RECOMPUTED,
    LevelChangeCause.RULES_FORWARD: events_pb2.LEVEL_CHANGE_CAUSE_RULES_FORWARD,
}


def level_changed_message(event: LevelChanged) -> events_pb2.LevelChanged:
    occurred_at = Timestamp()
    occurred_at.FromDatetime(event.occurred_at)
    return events_pb2.LevelChanged(
        event_id=event.event_id,
        user_id=event.user_id,
        old_level=LEVEL_TO_PROTO[event.old_level],
        new_level=LEVEL_TO_PROTO[event.new_level],
        score=event.score,
        conversation_id=event.conversation_id,
        rule_version=event.rule_version,
        occurred_at=occurred_at,
        cause=_CAUSE_TO_PROTO[event.cause],
    )
