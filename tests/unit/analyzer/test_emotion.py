from __future__ import annotations

import pytest

from analyzer.domain.emotion import emotions_in, session_emotion
from analyzer.domain.model import Emotion, Role, Turn


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("That was fun!", Emotion.INTERESTING),
        ("This is not fun.", Emotion.BORING),
        ("It wasn't interesting", Emotion.BORING),
        ("I am happy", Emotion.HAPPY),
        ("I am not happy", Emotion.SAD),
        ("I don't like it", Emotion.BORING),
        ("It is not boring at all", Emotion.INTERESTING),
        ("I hate spiders", Emotion.ANGRY),
        ("I'm so sad", Emotion.SAD),
        ("This is boring", Emotion.BORING),
        ("Con vui lắm", Emotion.HAPPY),
        ("Con không vui", Emotion.SAD),
        ("Con chẳng thích", Emotion.BORING),
        ("Con không thích học toán", Emotion.BORING),
        ("Hay quá!", Emotion.INTERESTING),
        ("Chẳng thú vị gì cả", Emotion.BORING),
        ("Chán quá", Emotion.BORING),
        ("Không chán đâu", Emotion.INTERESTING),
        ("Con buồn", Emotion.SAD),
        ("Con tức lắm", Emotion.ANGRY),
    ],
)
def test_cues_with_and_without_negation(text: str, expected: Emotion) -> None:
    assert emotions_in(text) == [expected]


def test_negation_does_not_cross_a_clause() -> None:
    assert emotions_in("No, it is fun") == [Emotion.INTERESTING]
    assert emotions_in("Không, con vui mà") == [Emotion.HAPPY]


def test_negated_sad_or_angry_means_nothing() -> None:
    assert emotions_in("I am not sad") == []
    assert emotions_in("Con không buồn") == []


def test_set_phrases_are_not_cues() -> None:
    assert emotions_in("Con buồn ngủ quá") == []


def test_session_emotion_is_neutral_when_nothing_matches() -> None:
    turns = [Turn(Role.USER, "The bus is yellow."), Turn(Role.USER, "Con đi học.")]
    assert session_emotion(turns) == Emotion.NEUTRAL


def test_session_emotion_ignores_the_assistant() -> None:
    turns = [
        Turn(Role.ASSISTANT, "That is so fun and amazing and cool!"),
        Turn(Role.USER, "I am sad."),
    ]
    assert session_emotion(turns) == Emotion.SAD


def test_most_frequent_wins_and_a_tie_goes_to_the_latest() -> None:
    assert session_emotion(
        [Turn(Role.USER, "This is boring. So boring."), Turn(Role.USER, "That part was fun.")]
    ) == Emotion.BORING  # boring 2, interesting 1
    assert session_emotion(
        [Turn(Role.USER, "I am sad."), Turn(Role.USER, "Now I am happy.")]
    ) == Emotion.HAPPY
