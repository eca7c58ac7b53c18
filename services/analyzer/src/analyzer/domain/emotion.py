"""Session emotion from the user's words: a small English + Vietnamese lexicon with negation."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from analyzer.domain.model import Emotion, Role, Turn
from analyzer.domain.text import sentences, words


@dataclass(frozen=True)
class Cue:
    phrase: tuple[str, ...]
    emotion: Emotion
    # What the cue means after a negator ("not fun" -> BORING); None: it means nothing.
    negated: Emotion | None


def _cues(emotion: Emotion, negated: Emotion | None, *phrases: str) -> list[Cue]:
    return [Cue(tuple(p.split()), emotion, negated) for p in phrases]


E = Emotion
LEXICON: tuple[Cue, ...] = tuple(
    # English
    _cues(E.INTERESTING, E.BORING, "interesting", "fun", "cool", "awesome", "amazing",
          "fascinating", "exciting", "wow", "curious", "love it", "love this")
    + _cues(E.HAPPY, E.SAD, "happy", "glad", "yay", "great", "nice", "haha", "hehe", "lol",
            "excited")
    + _cues(E.HAPPY, E.BORING, "i like", "i love", "like it", "like this", "love you",
            "like you", "i really like", "i really love")
    + _cues(E.SAD, None, "sad", "unhappy", "cry", "crying", "cried", "lonely", "upset",
            "miss my", "scared")
    + _cues(E.ANGRY, None, "angry", "mad", "hate", "annoying", "annoyed", "furious",
            "stupid", "shut up")
    + _cues(E.BORING, E.INTERESTING, "boring", "bored", "meh", "whatever")
    # Vietnamese
    + _cues(E.INTERESTING, E.BORING, "thú vị", "hay quá", "hay thế", "hay ghê", "hay lắm",
            "tuyệt", "tuyệt vời", "hấp dẫn", "ngầu", "thích quá")
    + _cues(E.HAPPY, E.SAD, "vui", "vui quá", "vui vẻ", "hạnh phúc", "sướng", "hihi")
    + _cues(E.HAPPY, E.BORING, "thích", "yêu")
    + _cues(E.SAD, None, "buồn", "khóc", "cô đơn", "tủi thân", "sợ")
    + _cues(E.ANGRY, None, "tức", "giận", "bực", "bực mình", "ghét", "cáu", "khó chịu")
    + _cues(E.BORING, E.INTERESTING, "chán", "nhàm", "nhàm chán", "buồn chán", "chán quá")
)  # fmt: skip

NEGATORS = frozenset(
    {
        "not", "never", "no", "don't", "doesn't", "didn't", "isn't", "wasn't", "aren't",
        "ain't", "won't", "can't", "couldn't", "wouldn't",
        "không", "chẳng", "chả", "chưa", "đâu", "hông",
    }
)  # fmt: skip
NEGATION_WINDOW = 3  # a negator at most this many words before the cue
# Words a cue word never means on its own ("buồn ngủ" is sleepy, not sad).
_NOT_CUES = frozenset({("buồn", "ngủ"), ("không", "sao")})

_BY_LENGTH = sorted(LEXICON, key=lambda c: -len(c.phrase))
# The cues that can start at a word, longest first (the order of _BY_LENGTH): a sentence is
# scanned once per word against a handful of cues, not the whole lexicon.
_BY_FIRST_WORD: dict[str, tuple[Cue, ...]] = {}
for _cue in _BY_LENGTH:
    _BY_FIRST_WORD[_cue.phrase[0]] = (*_BY_FIRST_WORD.get(_cue.phrase[0], ()), _cue)


def _matches(tokens: list[str]) -> list[Emotion]:
    """Emotions expressed in one sentence, in order, longest cue first, no overlaps."""
    found: list[Emotion] = []
    i = 0
    while i < len(tokens):
        cue = next(
            (
                c
                for c in _BY_FIRST_WORD.get(tokens[i], ())
                if tuple(tokens[i : i + len(c.phrase)]) == c.phrase
            ),
            None,
        )
        if cue is None or tuple(tokens[i : i + 2]) in _NOT_CUES:
            i += 1
            continue
        negated = any(t in NEGATORS for t in tokens[max(0, i - NEGATION_WINDOW) : i])
        emotion = cue.negated if negated else cue.emotion
        if emotion is not None:
            found.append(emotion)
        i += len(cue.phrase)
    return found


_CLAUSE_BREAK = re.compile(r"[,;:]")


def emotions_in(text: str) -> list[Emotion]:
    """Negation never reaches across a clause: "no, it is fun" is fun."""
    return [
        e
        for sentence in sentences(text)
        for clause in _CLAUSE_BREAK.split(sentence)
        for e in _matches(words(clause))
    ]


def session_emotion(turns: Iterable[Turn]) -> Emotion:
    """The most frequent emotion in the user's turns; a tie goes to the latest one.

    NEUTRAL when nothing in the lexicon matches.
    """
    seen = [e for t in turns if t.role is Role.USER for e in emotions_in(t.content)]
    if not seen:
        return Emotion.NEUTRAL
    counts: dict[Emotion, int] = {}
    last: dict[Emotion, int] = {}
    for position, emotion in enumerate(seen):
        counts[emotion] = counts.get(emotion, 0) + 1
        last[emotion] = position
    return max(counts, key=lambda e: (counts[e], last[e]))
