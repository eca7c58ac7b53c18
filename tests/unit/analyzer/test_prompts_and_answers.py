"""Bounded prompts, strict LLM answers, the circuit breaker, retry-after parsing."""

from __future__ import annotations

import pytest

from analyzer.adapters.provider_calls import backoff_s, retry_after_s
from analyzer.domain.breaker import BreakerState, CircuitBreaker
from analyzer.domain.llm_answers import InvalidAnswer, parse_emotion, parse_questions
from analyzer.domain.model import Emotion, Role, Turn
from analyzer.domain.prompts import PromptBudget, clip, excerpt, render

BUDGET = PromptBudget(max_chars=12000, max_turns=200, max_turn_chars=1000)


def long_conversation(turns: int, turn_chars: int = 400) -> tuple[Turn, ...]:
    filler = "blah " * (turn_chars // 5)
    out = []
    for i in range(turns):
        if i % 2:
            out.append(Turn(Role.ASSISTANT, f"Robot line {i}. {filler}"))
        elif i % 50 == 0:
            out.append(Turn(Role.USER, f"{filler} Why is the sky blue number {i}?"))
        else:
            out.append(Turn(Role.USER, f"I say {i}. {filler}"))
    return tuple(out)


def test_a_5000_turn_conversation_gives_a_bounded_prompt() -> None:
    turns = long_conversation(5000)
    full_chars = sum(len(t.content) for t in turns)
    part = excerpt(turns, BUDGET)
    prompt = render(part)
    largest_piece = max(len(t.content) for t in part.turns)
    # The figure reported: the largest string built is the prompt itself.
    assert len(prompt) <= BUDGET.max_chars + 40, len(prompt)
    assert largest_piece <= BUDGET.max_turn_chars
    assert full_chars > 100 * len(prompt)  # ~2 MB of conversation, ~12 kB of prompt
    assert len(part.turns) <= BUDGET.max_turns
    assert part.omitted == 5000 - len(part.turns)
    assert prompt.startswith(f"[{part.omitted} earlier turns omitted]")
    # The most recent turn is there, and so are earlier user questions.
    assert part.turns[-1] == turns[-1]
    assert "number 4950?" in prompt
    assert sum("Why is the sky blue" in t.content for t in part.turns) >= 10


def test_one_giant_turn_is_clipped_head_and_tail() -> None:
    giant = "a" * 3_000_000 + " Do you like cats?"
    part = excerpt((Turn(Role.USER, giant),), BUDGET)
    assert len(part.turns[0].content) == BUDGET.max_turn_chars
    assert part.turns[0].content.endswith("Do you like cats?")
    assert part.turns[0].content.startswith("aaaa")


def test_a_short_conversation_is_sent_whole() -> None:
    turns = (Turn(Role.ASSISTANT, "Hello!"), Turn(Role.USER, "Hi, what is your name?"))
    assert render(excerpt(turns, BUDGET)) == "assistant: Hello!\nuser: Hi, what is your name?"


def test_clip_keeps_short_text() -> None:
    assert clip("short", 100) == "short"
    assert len(clip("x" * 500, 100)) == 100


@pytest.mark.parametrize(
    ("content", "expected"),
    [('{"user_initiated_questions": 3}', 3), ('{"user_initiated_questions": 0}', 0)],
)
def test_valid_question_answers(content: str, expected: int) -> None:
    assert parse_questions(content, user_turns=5) == expected


@pytest.mark.parametrize(
    "content",
    [
        None,
        "",
        "three",
        "Sure! {questions: 3}",
        "[3]",
        '{"user_initiated_questions": -1}',
        '{"user_initiated_questions": 51}',  # more than 10 per user turn
        '{"user_initiated_questions": 2.5}',
        '{"user_initiated_questions": "2"}',
        '{"user_initiated_questions": true}',
        '{"user_initiated_questions": 2, "extra": 1}',
        '{"questions": 2}',
    ],
)
def test_invalid_question_answers(content: str | None) -> None:
    with pytest.raises(InvalidAnswer):
        parse_questions(content, user_turns=5)


def test_emotion_answers() -> None:
    assert parse_emotion('{"emotion": "interesting"}') is Emotion.INTERESTING
    assert parse_emotion('{"emotion": "Boring"}') is Emotion.BORING
    for bad in ('{"emotion": "unspecified"}', '{"emotion": "excited"}', '{"emotion": 3}',
                '{"emotion": "sad", "why": "x"}', "sad"):  # fmt: skip
        with pytest.raises(InvalidAnswer):
            parse_emotion(bad)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_consecutive_failures_and_probes_after_the_cooldown() -> None:
    clock = Clock()
    breaker = CircuitBreaker(3, 10.0, clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    breaker.record_success()  # a success resets the count
    for _ in range(3):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    clock.now = 9.9
    assert not breaker.allow()
    clock.now = 10.0
    assert breaker.allow()  # the probe
    assert breaker.state is BreakerState.HALF_OPEN
    assert not breaker.allow()  # one probe at a time
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    clock.now = 20.0
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED and breaker.allow()


def test_retry_after_headers() -> None:
    assert retry_after_s({"retry-after": "2"}) == 2.0
    assert retry_after_s({"retry-after": "0.25"}) == 0.25
    assert retry_after_s({"retry-after-ms": "150", "retry-after": "9"}) == pytest.approx(0.15)
    assert retry_after_s({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert retry_after_s({"retry-after": "soon"}) is None
    assert retry_after_s({}) is None
    assert [backoff_s(n) for n in range(6)] == [0.5, 1, 2, 4, 8, 8]
