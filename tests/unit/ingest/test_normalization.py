from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.domain.model import Instant, Turn
from ingest.domain.normalization import (
    _DROPPED_CONTROLS,
    clean_content,
    normalize_role,
    normalize_turns,
)


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        ("user", "user"),
        (" USER ", "user"),
        ("assistant", "assistant"),
        ("bot", "assistant"),
        ("Robot", "assistant"),
        ("\tagent\n", "assistant"),
    ],
)
def test_role_aliases(role: str, expected: str) -> None:
    assert normalize_role(role) == expected


def test_unknown_role_raises() -> None:
    with pytest.raises(ValueError):
        normalize_role("narrator")


def test_english_whitespace_is_collapsed_and_trimmed() -> None:
    assert clean_content("  Hello,\n\n  how   are\tyou?  ") == "Hello, how are you?"


def test_control_characters_are_removed() -> None:
    assert clean_content("a\x07b\x1b[0mc\x7f") == "ab[0mc"
    assert clean_content("line\r\nnext") == "line next"


def test_vietnamese_composed_and_decomposed_become_the_same_text() -> None:
    composed = "Tiếng Việt thật là đẹp"
    decomposed = unicodedata.normalize("NFD", composed)
    assert decomposed != composed
    assert clean_content(decomposed) == composed
    assert clean_content(composed) == composed
    turns = normalize_turns([Turn("user", decomposed)])
    assert turns[0].content == composed


def test_emoji_survive_including_joined_sequences() -> None:
    family = "👨‍👩‍👧"  # joined with U+200D
    text = f"  I love  cats 🐱 and my {family}!  "
    assert clean_content(text) == f"I love cats 🐱 and my {family}!"
    assert "\u200d" in clean_content(family)


def test_unicode_whitespace_collapses_too() -> None:
    assert clean_content("a\u00a0\u2003 b\u2028c") == "a b c"


def test_empty_turns_are_dropped() -> None:
    turns = normalize_turns(
        [Turn("user", "hi"), Turn("assistant", "   "), Turn("assistant", "\x07"),
         Turn("user", "")]
    )
    assert turns == (Turn("user", "hi"),)


def test_consecutive_fragments_of_one_role_are_merged_keeping_the_first_at() -> None:
    raw = [
        Turn("user", "Chào", at=Instant(10)),
        Turn("USER", "  bạn ", at=Instant(11)),
        Turn("bot", "Hello 👋", at=Instant(12)),
        Turn("robot", "how are you?", at=Instant(13)),
        Turn("agent", " ", at=Instant(14)),
        Turn("user", "fine", at=None),
    ]
    assert normalize_turns(raw) == (
        Turn("user", "Chào bạn", at=Instant(10)),
        Turn("assistant", "Hello 👋 how are you?", at=Instant(12)),
        Turn("user", "fine", at=None),
    )


def test_fragments_separated_only_by_empty_turns_are_merged() -> None:
    raw = [Turn("user", "one"), Turn("assistant", ""), Turn("user", "two")]
    assert normalize_turns(raw) == (Turn("user", "one two"),)


def test_merged_vietnamese_fragments_are_nfc() -> None:
    raw = [Turn("user", unicodedata.normalize("NFD", "Xin chào")),
           Turn("user", unicodedata.normalize("NFD", "các bạn"))]
    (turn,) = normalize_turns(raw)
    assert turn.content == "Xin chào các bạn"
    assert unicodedata.is_normalized("NFC", turn.content)


def test_every_control_character_is_dropped_or_spaced_exactly_as_the_rule_says() -> None:
    # Rule: Unicode category Cc goes, except whitespace, which collapses to a space.
    for code in range(0x110000):
        char = chr(code)
        if unicodedata.category(char) != "Cc":
            continue
        cleaned = clean_content(f"a{char}b")
        assert cleaned == ("a b" if char.isspace() else "ab"), hex(code)


# --- the fast path (isprintable + split/join) against the previous regex implementation -----
_OLD_WHITESPACE = re.compile(r"\s+")


def _old_clean_content(content: str) -> str:
    """clean_content as it was before the fast path (reference)."""
    content = _DROPPED_CONTROLS.sub("", content)
    content = _OLD_WHITESPACE.sub(" ", content).strip()
    return unicodedata.normalize("NFC", content)


def test_split_uses_the_same_whitespace_as_the_regex_for_every_code_point() -> None:
    whitespace = re.compile(r"\s")
    for code in range(0x110000):
        char = chr(code)
        assert char.isspace() == bool(whitespace.fullmatch(char)), hex(code)
        assert f"a{char}b".split() == (["a", "b"] if char.isspace() else [f"a{char}b"]), hex(code)


def test_no_control_character_and_no_whitespace_but_the_space_is_printable() -> None:
    for code in range(0x110000):
        char = chr(code)
        if unicodedata.category(char) == "Cc" or (char.isspace() and char != " "):
            assert not char.isprintable(), hex(code)


def test_clean_text_comes_back_as_the_same_object_and_its_turn_is_reused() -> None:
    text = "Already clean, one space between words. Chào bạn 👋"
    assert clean_content(text) is text
    turn = Turn("user", text, at=Instant(3))
    assert normalize_turns([turn])[0] is turn
    assert normalize_turns([Turn("USER", text)])[0] == Turn("user", text)


_TRICKY = (
    "\x00\x07\t\n\r\x0b\x0c\x1b\x1c\x1d\x1e\x1f\x7f\x85\x9f\u00a0\u1680\u2000\u2007\u200b"
    "\u200d\u2028\u2029\u202f\u205f\u3000\ufeff e\u0301 \u1ec7\U0001f468\u200d\U0001f469"
    "\U0001f44b\U0001f3fd"
)


@settings(max_examples=500, deadline=None)
@given(
    st.text(
        alphabet=st.one_of(st.sampled_from(_TRICKY), st.characters(codec=None)),
        max_size=80,
    )
)
def test_clean_content_equals_the_previous_implementation(text: str) -> None:
    assert clean_content(text) == _old_clean_content(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "plain printable text",
        "\u00a0lead and trail\u3000",
        "a\x1cb\x1dc\x1ed\x1fe",
        "tab\tand\nnewline\x85next",
        "bell\x07 and del\x7f and c1\x9f",
        "family \U0001f468\u200d\U0001f469\u200d\U0001f467 joined",
        "Vie\u0302\u0323t decomposed",
        "\u2028\u2029",
        "double  space",
        " leading",
        "trailing ",
        "  ",
        "a\u00a0 b",
    ],
)
def test_clean_content_equals_the_previous_implementation_on_known_cases(text: str) -> None:
    assert clean_content(text) == _old_clean_content(text)
