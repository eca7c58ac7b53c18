"""Per-topic metrics (one topic = one agent_tag)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime


@dataclass(frozen=True)
class TopicState:
    user_id: str
    topic_id: str
    score: float = 0.0
    turns: int = 0
    agents_used: tuple[str, ...] = ()
    updated_at: datetime | None = None


def apply_to_topic(
    topic: TopicState, *, score_change: float, turns: int, bot_id: str, now: datetime
) -> TopicState:
    """Same score change as the user (floored at 0), turns add up, the bot joins agents_used."""
    return replace(
        topic,
        score=max(0.0, topic.score + score_change),
        turns=topic.turns + turns,
        agents_used=tuple(sorted({*topic.agents_used, bot_id})),
        updated_at=now,
    )
