"""What a third party sees of a conversation: a bounded excerpt, and the LLM prompts.

The full log is never formatted into one string. Each turn is clipped to
`max_turn_chars` (head and tail kept), at most `max_turns` turns are chosen, and their
clipped texts add up to at most `max_chars`: first the most recent context, then the
user's earlier questions (latest first), then earlier context while room is left.
The rendered prompt is therefore at most `max_chars` plus one short header line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from analyzer.domain.model import Emotion, Role, Turn
from analyzer.domain.questions import count_questions

# Share of the character budget kept for the most recent turns, whatever their role.
RECENT_SHARE = 0.6
_ELLIPSIS = " … "
# "assistant: " and the newline around each rendered turn.
_LINE_OVERHEAD = len(Role.ASSISTANT.value) + 3


@dataclass(frozen=True)
class PromptBudget:
    max_chars: int = 12000
    max_turns: int = 200
    max_turn_chars: int = 1000

    def __post_init__(self) -> None:
        if self.max_chars < 1 or self.max_turns < 1 or self.max_turn_chars < 20:
            raise ValueError("prompt budget too small")


@dataclass(frozen=True)
class Excerpt:
    turns: tuple[Turn, ...]  # clipped, in conversation order
    omitted: int  # turns of the conversation left out


def clip(content: str, max_chars: int) -> str:
    """At most max_chars: the head and the tail (questions often end a turn)."""
    if len(content) <= max_chars:
        return content
    keep = max_chars - len(_ELLIPSIS)
    head = keep // 2
    return content[:head] + _ELLIPSIS + content[len(content) - (keep - head) :]


def excerpt(turns: Sequence[Turn], budget: PromptBudget) -> Excerpt:
    chosen: dict[int, Turn] = {}
    used = 0

    def take(index: int, limit: int) -> bool:
        nonlocal used
        turn = turns[index]
        text = clip(turn.content, budget.max_turn_chars)
        cost = len(text) + _LINE_OVERHEAD
        if len(chosen) >= budget.max_turns or used + cost > limit:
            return False
        chosen[index] = Turn(turn.role, text)
        used += cost
        return True

    # 1. The most recent context, whatever the role, up to its share.
    first_recent = len(turns)
    for index in range(len(turns) - 1, -1, -1):
        if not take(index, int(budget.max_chars * RECENT_SHARE)):
            break
        first_recent = index
    # 2. Earlier user questions, latest first (a question that does not fit is skipped,
    #    a shorter earlier one may still fit).
    for index in range(first_recent - 1, -1, -1):
        if len(chosen) >= budget.max_turns:
            break
        turn = turns[index]
        if turn.role is not Role.USER:
            continue
        text = clip(turn.content, budget.max_turn_chars)
        # A turn that cannot fit is skipped before its questions are counted (the count is
        # the costly part on a long log; take() would refuse it anyway).
        if used + len(text) + _LINE_OVERHEAD <= budget.max_chars and count_questions(text):
            take(index, budget.max_chars)
    # 3. Earlier context, latest first, while room is left.
    for index in range(first_recent - 1, -1, -1):
        if index not in chosen and not take(index, budget.max_chars):
            break
    ordered = tuple(chosen[i] for i in sorted(chosen))
    return Excerpt(turns=ordered, omitted=len(turns) - len(ordered))


def render(part: Excerpt) -> str:
    """The conversation as the LLM reads it: one line per turn, bounded by the budget."""
    lines = [f"[{part.omitted} earlier turns omitted]"] if part.omitted else []
    lines.extend(f"{t.role.value}: {t.content}" for t in part.turns)
    return "\n".join(lines)


EMOTION_NAMES: dict[str, Emotion] = {
    e.name.lower(): e for e in Emotion if e is not Emotion.UNSPECIFIED
}

QUESTIONS_SYSTEM_PROMPT = (
    "You analyse a conversation between a companion robot (assistant) and a person (user), "
    "in English or Vietnamese. Count the questions the USER started: each question the "
    "user asked counts once; the assistant's questions never count. Some earlier turns "
    "may be omitted. Answer with a JSON object only, exactly: "
    '{"user_initiated_questions": <integer >= 0>}'
)

EMOTION_SYSTEM_PROMPT = (
    "You analyse a conversation between a companion robot (assistant) and a person (user), "
    "in English or Vietnamese. Classify the USER's overall emotion in this session as one "
    "of: " + ", ".join(EMOTION_NAMES) + ". Some earlier turns may be omitted. Answer with "
    'a JSON object only, exactly: {"emotion": "<one of those values>"}'
)
