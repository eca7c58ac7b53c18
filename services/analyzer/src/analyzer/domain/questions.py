"""How many questions the user started (English and Vietnamese), counted locally."""

from __future__ import annotations

import re
from collections.abc import Iterable

from analyzer.domain.model import Role, Turn
from analyzer.domain.text import first_word, is_vietnamese, sentences

EN_QUESTION_STARTERS = frozenset(
    {
        "what", "why", "how", "when", "where", "who", "which",
        "can", "could", "do", "does", "did", "is", "are", "will", "would", "should",
        "what's", "how's", "where's", "who's", "when's", "why's",
        "can't", "couldn't", "don't", "doesn't", "didn't", "isn't", "aren't",
        "won't", "wouldn't", "shouldn't",
    }
)  # fmt: skip

# Vietnamese question markers, matched as whole words on NFC, case-folded text.
_VI_WORD_MARKERS = ("sao", "gì", "nào", "đâu", "bao nhiêu", "mấy", "ai", "hả")
_VI_MARKER = re.compile(r"(?<!\w)(?:" + "|".join(_VI_WORD_MARKERS) + r")(?!\w)")
# Sentence-final particles that may follow "không" / "chưa" in a question.
_VI_PARTICLES = r"(?:\s+(?:nhỉ|vậy|ạ|nè|thế|hả|à|ha|hở|nhé))*"
_VI_CO_KHONG = re.compile(r"(?<!\w)có(?!\w).*(?<!\w)không" + _VI_PARTICLES + r"\W*$")
_VI_CHUA_END = re.compile(r"(?<!\w)chưa" + _VI_PARTICLES + r"\W*$")
# Set phrases that carry a marker word but ask nothing.
_VI_NOT_QUESTIONS = re.compile(
    r"(?<!\w)(?:không có gì|không sao|chẳng sao|ngôi sao|vì sao trên|"
    r"(?:ai|gì|nào|đâu|mấy) cũng)(?!\w)"
)


# "không ... đâu" is an emphatic no ("not at all"), not "where".
_VI_EMPHATIC_DAU = re.compile(r"((?<!\w)(?:không|chẳng|chả)(?!\w).*?)(?<!\w)đâu(?!\w)")


def is_question(sentence: str) -> bool:
    """`sentence` is folded (see text.sentences)."""
    stripped = sentence.rstrip()
    if stripped.endswith(("?", "？")):
        return True
    first = first_word(stripped)
    if first in EN_QUESTION_STARTERS and not stripped.endswith(("!", "！")):
        # "What a lovely day!" is an exclamation, not a question.
        return True
    if not is_vietnamese(stripped):
        return False
    text = _VI_NOT_QUESTIONS.sub(" ", _VI_EMPHATIC_DAU.sub(r"\1", stripped))
    return bool(
        _VI_CO_KHONG.search(text)
        or _VI_CHUA_END.search(text)
        or _VI_MARKER.search(text)
    )


def count_questions(text: str) -> int:
    return sum(1 for s in sentences(text) if is_question(s))


def count_user_questions(turns: Iterable[Turn]) -> int:
    """Question sentences in user turns; each sentence counts once."""
    return sum(count_questions(t.content) for t in turns if t.role is Role.USER)
