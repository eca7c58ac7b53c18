"""Text helpers shared by the local analysis: NFC, case folding, sentences, words."""

from __future__ import annotations

import re
import unicodedata

_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "ʼ": "'", "`": "'"})
_SPACES = re.compile(r"\s+")
# A sentence runs up to its terminators (kept) or the end of a line.
_SENTENCE = re.compile(r"[^.!?？！。…\n]+(?:[.!?？！。…]+|$)", re.MULTILINE)
_WORD = re.compile(r"\w+(?:'\w+)?")
# Letters only Vietnamese uses (beyond plain ASCII); a sentence with one is Vietnamese.
_VIETNAMESE_LETTERS = frozenset(
    "àáạảãâầấậẩẫăằắặẳẵèéẹẻẽêềếệểễìíịỉĩòóọỏõôồốộổỗơờớợởỡùúụủũưừứựửữỳýỵỷỹđ"
)


def fold(text: str) -> str:
    """NFC, case-folded, straight apostrophes, single spaces."""
    text = unicodedata.normalize("NFC", text).translate(_APOSTROPHES)
    # casefold() would turn "đ" fine but keeps NFC; re-normalize after folding to be safe.
    return unicodedata.normalize("NFC", _SPACES.sub(" ", text.casefold())).strip()


def sentences(text: str) -> list[str]:
    """Folded sentences of a turn, each with its terminating punctuation."""
    folded = fold(text)
    return [s.strip() for s in _SENTENCE.findall(folded) if s.strip(" .!?？！。…")]


def words(sentence: str) -> list[str]:
    return _WORD.findall(sentence)


def first_word(sentence: str) -> str | None:
    """words(sentence)[0], or None: without splitting the whole sentence."""
    match = _WORD.search(sentence)
    return None if match is None else match.group()


def is_vietnamese(sentence: str) -> bool:
    return not _VIETNAMESE_LETTERS.isdisjoint(sentence)


def contains_phrase(tokens: list[str], phrase: tuple[str, ...]) -> bool:
    n = len(phrase)
    return any(tuple(tokens[i : i + n]) == phrase for i in range(len(tokens) - n + 1))
