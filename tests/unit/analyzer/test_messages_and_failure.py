from __future__ import annotations

import pytest

from analyzer.domain.failure import DeadLetter, RetryLater, RetryPolicy, decide, delay_for
from analyzer.domain.messages import MalformedMessage, encode_ended_message, parse_ended_message
from analyzer.domain.model import Role
from analyzer.domain.normalization import RawTurn, UnknownRole, normalize_turns
from analyzer.handlers import failure_reason


def test_message_round_trip() -> None:
    assert parse_ended_message(encode_ended_message("conv-1:a.b_c")) == "conv-1:a.b_c"


@pytest.mark.parametrize(
    "body",
    [b"", b"nope", b"42", b'{"id": "x"}', b'{"conversation_id": 7}', b'{"conversation_id": "a b"}',
     b'{"conversation_id": "' + b"x" * 129 + b'"}'],
)  # fmt: skip
def test_malformed_bodies(body: bytes) -> None:
    with pytest.raises(MalformedMessage):
        parse_ended_message(body)


def test_default_policy_retries_four_times_then_dead_letters() -> None:
    policy = RetryPolicy()
    assert [decide(n, policy) for n in range(1, 6)] == [
        RetryLater(10), RetryLater(60), RetryLater(180), RetryLater(600), DeadLetter(),
    ]  # fmt: skip


def test_delays_past_the_list_repeat_the_last() -> None:
    assert [delay_for(n, (1, 5)) for n in (0, 1, 2, 3, 9)] == [1, 1, 5, 5, 5]


def test_bad_policies_are_refused() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(delays_s=())


def test_failure_reasons_never_carry_exception_text() -> None:
    secret = ValueError("My name is Lan and I live at 12 Hang Bac")
    assert failure_reason(secret) == "unexpected ValueError"
    assert failure_reason(TimeoutError()) == "deadline exceeded"


def test_normalization_maps_roles_drops_empties_and_merges_fragments() -> None:
    turns = normalize_turns(
        [RawTurn("bot", "Hi!"), RawTurn("Robot", "  How   are you? "), RawTurn("user", "   "),
         RawTurn("USER", "Good"), RawTurn("user", "thanks"), RawTurn("agent", "Great")]
    )  # fmt: skip
    assert [(t.role, t.content) for t in turns] == [
        (Role.ASSISTANT, "Hi! How are you?"),
        (Role.USER, "Good thanks"),
        (Role.ASSISTANT, "Great"),
    ]


def test_unknown_roles_are_reported_by_index() -> None:
    with pytest.raises(UnknownRole) as info:
        normalize_turns([RawTurn("user", "hi"), RawTurn("narrator", "...")])
    assert info.value.index == 1
