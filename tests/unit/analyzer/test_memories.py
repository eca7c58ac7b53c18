from __future__ import annotations

import unicodedata

from analyzer.domain.memories import extract_facts, fact_hash
from analyzer.domain.model import Role, Turn


def facts_of(*user_lines: str) -> list[str]:
    return [f.text for f in extract_facts([Turn(Role.USER, line) for line in user_lines])]


def test_english_self_disclosures() -> None:
    assert facts_of(
        "My name is Minh and I am 7 years old.",
        "I like dinosaurs and trains!",
        "I love my grandma so much.",
        "I have a dog called Max.",
        "I live in Hanoi.",
        "My favorite color is blue.",
    ) == [
        "name: minh",
        "age: 7",
        "likes dinosaurs and trains",
        "loves my grandma",
        "has a dog called max",
        "lives in hanoi",
        "favorite color: blue",
    ]


def test_vietnamese_self_disclosures() -> None:
    assert facts_of(
        "Tên con là Lan ạ. Con 6 tuổi.",
        "Con tên là Lan.",
        "Con thích ăn kem lắm.",
        "Em thích vẽ tranh nhưng em sợ chó.",
        "Nhà con ở Đà Nẵng.",
        "Con có một con mèo tên là Mun.",
    ) == [
        "name: lan",
        "age: 6",
        "thích ăn kem",
        "thích vẽ tranh",
        "nhà ở đà nẵng",
        "có một con mèo tên là mun",
    ]


def test_normalization_makes_the_same_fact_from_different_spellings() -> None:
    a = extract_facts([Turn(Role.USER, "I like   CATS!!")])
    b = extract_facts([Turn(Role.USER, "i like cats.")])
    c = extract_facts([Turn(Role.USER, unicodedata.normalize("NFD", "Con thích MÈO"))])
    d = extract_facts([Turn(Role.USER, "con thích mèo ạ")])
    assert a == b and len(a) == 1 and a[0].fact_hash == fact_hash("likes cats")
    assert c == d and c[0].text == "thích mèo"


def test_a_fact_said_twice_is_extracted_once() -> None:
    assert facts_of("I like cats.", "Yes, I like cats!") == ["likes cats"]


def test_negations_questions_and_empty_objects_are_not_facts() -> None:
    assert facts_of(
        "I don't like broccoli.",
        "Con không thích cá.",
        "Con có thích mèo không?",
        "Do you like cats?",
        "I have a question.",
        "I like it.",
        "Con có thể hát.",
    ) == []


def test_assistant_turns_disclose_nothing_about_the_person() -> None:
    turns = [Turn(Role.ASSISTANT, "My name is Robo. I like batteries."), Turn(Role.USER, "Hi")]
    assert extract_facts(turns) == ()


def test_facts_are_short() -> None:
    (fact,) = facts_of("I like playing football with my friends in the park after school")
    assert fact == "likes playing football with my friends"
    assert len(fact.split()) <= 7
