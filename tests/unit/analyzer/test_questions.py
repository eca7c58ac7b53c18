from __future__ import annotations

import unicodedata

import pytest

from analyzer.domain.model import Role, Turn
from analyzer.domain.questions import count_questions, count_user_questions


@pytest.mark.parametrize(
    "text",
    [
        "What is a volcano?",
        "why is the sky blue",
        "How do birds fly",
        "When is my birthday",
        "Where do penguins live",
        "Who made you",
        "Which one is bigger",
        "Can you sing",
        "Could we play later",
        "Do you like cats",
        "Does it hurt",
        "Did you see that",
        "Is it raining",
        "Are you a robot",
        "Will it snow tomorrow",
        "Would you help me",
        "Should I brush my teeth",
        "Isn't that funny",
        "It's yours?",
        "Really？",
    ],
)
def test_english_questions_count_once(text: str) -> None:
    assert count_questions(text) == 1


@pytest.mark.parametrize(
    "text",
    [
        "Con có thích chó không",
        "Bạn có đi học không ạ",
        "Con ăn cơm chưa",
        "Bạn làm bài tập xong chưa nhỉ",
        "Sao trời lại mưa",
        "Đây là con gì",
        "Con muốn cái nào",
        "Bạn ở đâu",
        "Cái này bao nhiêu tiền",
        "Mấy giờ rồi",
        "Bạn mấy tuổi",
        "Ai là bạn thân của con",
        "Con đi được không?",
        "Mai mình đi sở thú à?",
        "Thật hả",
    ],
)
def test_vietnamese_questions_count_once(text: str) -> None:
    assert count_questions(text) == 1


@pytest.mark.parametrize(
    "text",
    [
        "I like cats.",
        "My name is Tom.",
        "What a lovely day!",
        "The dog is sleeping",
        "Con thích chó.",
        "Con chưa ăn cơm.",
        "Không có gì đâu.",
        "Con không đi đâu cả.",
        "Không sao đâu.",
        "Ai cũng thích kem.",
        "Con có một con mèo.",
        "Ngôi sao sáng quá.",
        "I like AI.",
    ],
)
def test_statements_are_not_questions(text: str) -> None:
    assert count_questions(text) == 0


def test_each_question_sentence_counts_once_even_with_several_markers() -> None:
    # "?", a wh-word and a Vietnamese marker in one sentence: still one question.
    assert count_questions("What is that??") == 1
    assert count_questions("Sao con có mấy cái kẹo thôi vậy?") == 1
    assert count_questions("Why? How? I like it. Is it big") == 3


def test_case_insensitive_and_vietnamese_compared_after_nfc() -> None:
    decomposed = unicodedata.normalize("NFD", "BẠN Ở ĐÂU")
    assert decomposed != unicodedata.normalize("NFC", decomposed)
    assert count_questions(decomposed) == 1
    assert count_questions("WHAT IS THAT") == 1
    assert count_questions(unicodedata.normalize("NFD", "Con ăn cơm CHƯA")) == 1


def test_only_user_turns_count() -> None:
    turns = [
        Turn(Role.ASSISTANT, "What is your name? Do you like dogs? Con có thích mèo không?"),
        Turn(Role.USER, "My name is Lan. Do you like dogs?"),
        Turn(Role.ASSISTANT, "Yes! Why do you ask?"),
        Turn(Role.USER, "Con ăn cơm chưa"),
    ]
    assert count_user_questions(turns) == 2
