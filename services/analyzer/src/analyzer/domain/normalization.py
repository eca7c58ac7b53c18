"""Turns as a caller sends them -> the normalized turns the analysis counts.

Conversations claimed from ingest are normalized there already; this serves
AnalyzeConversation, which receives turns as sent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from analyzer.domain.model import Role, Turn

ROLE_ALIASES = {
    "user": Role.USER,
    "assistant": Role.ASSISTANT,
    "bot": Role.ASSISTANT,
    "robot": Role.ASSISTANT,
    "agent": Role.ASSISTANT,
}
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class RawTurn:
    role: str
    content: str


class UnknownRole(ValueError):
    def __init__(self, index: int) -> None:
        super().__init__(f"turn {index}: unknown role")
        self.index = index


def parse_role(role: str) -> Role | None:
    return ROLE_ALIASES.get(role.strip().lower())


def normalize_turns(raw: Iterable[RawTurn]) -> tuple[Turn, ...]:
    """Known roles, collapsed whitespace, no empty turns, consecutive fragments merged."""
    turns: list[Turn] = []
    for index, item in enumerate(raw):
        role = parse_role(item.role)
        if role is None:
            raise UnknownRole(index)
        content = _SPACES.sub(" ", item.content).strip()
        if not content:
            continue
        if turns and turns[-1].role is role:
            turns[-1] = Turn(role, f"{turns[-1].content} {content}")
        else:
            turns.append(Turn(role, content))
    return tuple(turns)
