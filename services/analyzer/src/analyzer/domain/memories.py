"""Local extraction of the person's self-disclosures ("my name is", "con thích", ...).

Facts are the person's own words: they are stored, never logged.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from analyzer.domain.model import Fact, Role, Turn
from analyzer.domain.questions import is_question
from analyzer.domain.text import sentences

MAX_FACT_WORDS = 6
MAX_NAME_WORDS = 3

_VI_ME = r"(?:con|em|tớ|mình|cháu|tôi)"
_VI_OWNED = (
    r"(?:một|hai|ba|bốn|năm|sáu|bảy|tám|chín|mười|\d+|con|cái|chiếc|quyển|cuốn|bạn|"
    r"anh|chị|em|nhiều|người|bé)"
)


@dataclass(frozen=True)
class _Pattern:
    regex: re.Pattern[str]
    template: str  # formatted with the named groups
    max_words: int = MAX_FACT_WORDS


def _p(regex: str, template: str, max_words: int = MAX_FACT_WORDS) -> _Pattern:
    return _Pattern(re.compile(r"(?<!\w)" + regex), template, max_words)


# Order matters: the first pattern that matches a clause wins.
PATTERNS: tuple[_Pattern, ...] = (
    _p(r"my name is (?P<x>.+)", "name: {x}", MAX_NAME_WORDS),
    _p(r"(?:i'm|i am) called (?P<x>.+)", "name: {x}", MAX_NAME_WORDS),
    _p(r"(?:tên " + _VI_ME + r" là|" + _VI_ME + r" tên là) (?P<x>.+)", "name: {x}",
       MAX_NAME_WORDS),
    _p(r"(?:i'm|i am) (?P<x>\d{1,3}) years? old", "age: {x}"),
    _p(_VI_ME + r" (?:năm nay )?(?P<x>\d{1,3}) tuổi", "age: {x}"),
    _p(r"my (?:favou?rite) (?P<what>\w+(?: \w+)?) (?:is|are) (?P<x>.+)", "favorite {what}: {x}"),
    _p(r"(?P<what>món ăn|món|con vật|màu|môn học|môn|trò chơi|bài hát) yêu thích (?:nhất )?"
       r"của " + _VI_ME + r" là (?P<x>.+)", "{what} yêu thích: {x}"),
    _p(r"i (?:really )?love (?P<x>.+)", "loves {x}"),
    _p(r"i (?:really )?like (?P<x>.+)", "likes {x}"),
    _p(r"i have (?P<x>(?:an?|two|three|four|\d+) .+)", "has {x}"),
    _p(r"i live in (?P<x>.+)", "lives in {x}"),
    _p(r"nhà " + _VI_ME + r" ở (?P<x>.+)", "nhà ở {x}"),
    _p(_VI_ME + r" (?:sống|ở) ở (?P<x>.+)", "sống ở {x}"),
    _p(_VI_ME + r" (?:rất |cũng )?thích (?P<x>.+)", "thích {x}"),
    _p(_VI_ME + r" (?:rất |cũng )?yêu (?P<x>.+)", "yêu {x}"),
    _p(_VI_ME + r" có (?P<x>" + _VI_OWNED + r" .+)", "có {x}"),
)  # fmt: skip

# Every pattern above needs one of these in the (folded) clause to match: a clause with none
# of them (most clauses) skips the sixteen searches. tests/unit/analyzer/test_memories.py
# checks each pattern's keyword and that the result never changes.
KEYWORDS: tuple[str, ...] = (
    "my name is", "called", "tên", "year", "tuổi", "favo", "yêu", "love", "like",
    "i have", "i live in", "nhà", "ở", "thích", "có",
)  # fmt: skip

# A clause ends at punctuation or at a conjunction that starts a new self-statement.
_CLAUSE_BREAK = re.compile(
    r"[,;:]|\s(?:and|but|because|so)\s(?=(?:i|i'm|my)\s)"
    r"|\s(?:và|nhưng|vì|mà|còn)\s(?=(?:con|em|tớ|mình|cháu|tôi|nhà|tên)\s)"
)
# Inside a clause, the object stops at these.
_OBJECT_END = re.compile(
    r"\s(?:but|because|since|when|nhưng|vì|bởi vì|tại vì|tại|khi|lúc)\s.*$"
)
_TRAILING = frozenset(
    {"ạ", "à", "nhé", "nha", "lắm", "quá", "nữa", "á", "luôn", "đó", "ấy", "nè",
     "too", "really", "much", "lot", "very", "so", "please"}
)  # fmt: skip
# A cut at MAX_FACT_WORDS must not end on a connecting word (a lone one may be a name).
_CONNECTORS = frozenset(
    {"a", "in", "on", "at", "with", "of", "the", "and", "or", "to", "for", "an", "my",
     "ở", "với", "và", "của", "cho", "hoặc", "là", "những", "các"}
)  # fmt: skip
_NOT_OBJECTS = frozenset(
    {"it", "this", "that", "you", "them", "him", "her", "to", "nó", "cái này", "cái đó", "bạn"}
)
_NOT_OWNED_STARTS = ("a question", "an idea", "a problem", "a lot", "a bit", "a good time",
                     "a great time", "a look", "a doubt")  # fmt: skip
_PUNCTUATION = re.compile(r"[^\w\s'-]")


def _clean(value: str, max_words: int) -> str:
    value = _OBJECT_END.sub("", value)
    tokens = _PUNCTUATION.sub(" ", value).split()[:max_words]
    while tokens and (
        tokens[-1] in _TRAILING or (len(tokens) > 1 and tokens[-1] in _CONNECTORS)
    ):
        tokens.pop()
    return " ".join(tokens)


def fact_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _fact_in(clause: str) -> str | None:
    if not any(keyword in clause for keyword in KEYWORDS):
        return None
    for pattern in PATTERNS:
        match = pattern.regex.search(clause)
        if match is None:
            continue
        groups = match.groupdict()
        x = _clean(groups["x"], pattern.max_words)
        if not x or x in _NOT_OBJECTS or x.startswith(_NOT_OWNED_STARTS):
            return None
        what = _clean(groups.get("what") or "", 2)
        return pattern.template.format(x=x, what=what)
    return None


def extract_facts(turns: Iterable[Turn]) -> tuple[Fact, ...]:
    """Normalized self-disclosures in the user's statements (questions disclose nothing).

    Each distinct fact once, in the order it was first said.
    """
    facts: dict[str, Fact] = {}
    for turn in turns:
        if turn.role is not Role.USER:
            continue
        for sentence in sentences(turn.content):
            if is_question(sentence):
                continue
            for clause in _CLAUSE_BREAK.split(sentence):
                text = _fact_in(clause.strip())
                if text and text not in facts:
                    facts[text] = Fact(text=text, fact_hash=fact_hash(text))
    return tuple(facts.values())
