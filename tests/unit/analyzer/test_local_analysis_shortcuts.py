"""The local analysis' shortcuts never change a result.

On a 1 MB conversation the local analysis cost ~1.2 s of CPU (the emotion scan tried the
whole lexicon at every word, every clause ran the sixteen fact patterns). The shortcuts
(cues indexed by first word, a keyword prefilter before the fact patterns, the first word
without splitting the sentence, a set test for Vietnamese letters, the excerpt's fit test
before counting questions) are checked here against the plain definitions, on text drawn
from the words the patterns and the lexicon look for.
"""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.domain import emotion, memories, prompts
from analyzer.domain.model import Emotion, Role, Turn
from analyzer.domain.questions import count_questions
from analyzer.domain.text import _VIETNAMESE_LETTERS, first_word, is_vietnamese, sentences, words

_WORDS = (
    "my name is called i'm i am tên con em tớ mình cháu tôi là 7 12 years year old tuổi năm nay "
    "favorite favourite color food is are món ăn con vật yêu thích nhất của love like really i "
    "have a an two dog cat live in nhà ở sống thích rất cũng yêu có một mèo cái bạn but because "
    "and và nhưng vì không chẳng chả don't not never no fun boring sad happy great vui buồn ngủ "
    "chán nhàm hay quá tuyệt vời thú vị what why how where who can do gì nào đâu sao bao nhiêu "
    "mấy ai hả chưa nhỉ vậy ạ the of with to it this that hello ok hanoi trains khó chịu bực "
    "mình shut up haha wow lol"
)
VOCABULARY = _WORDS.split()
SENTENCE_ENDS = ("", ".", "?", "!", ",", ";", ":", "…", "？", " and", " nhưng")
sentence_text = st.builds(
    lambda ws, end: " ".join(ws) + end,
    st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=14),
    st.sampled_from(SENTENCE_ENDS),
)
turn_text = st.lists(sentence_text, min_size=1, max_size=4).map(" ".join)
mixed_text = st.one_of(turn_text, st.text(max_size=60))


def fact_in_by_definition(clause: str) -> str | None:
    """_fact_in without the keyword prefilter: the first pattern that matches."""
    for pattern in memories.PATTERNS:
        match = pattern.regex.search(clause)
        if match is None:
            continue
        groups = match.groupdict()
        x = memories._clean(groups["x"], pattern.max_words)
        if not x or x in memories._NOT_OBJECTS or x.startswith(memories._NOT_OWNED_STARTS):
            return None
        what = memories._clean(groups.get("what") or "", 2)
        return pattern.template.format(x=x, what=what)
    return None


def matches_by_definition(tokens: list[str]) -> list[Emotion]:
    """emotion._matches trying every cue of the lexicon, longest first, at each word."""
    found: list[Emotion] = []
    i = 0
    while i < len(tokens):
        cue = next(
            (c for c in emotion._BY_LENGTH if tuple(tokens[i : i + len(c.phrase)]) == c.phrase),
            None,
        )
        if cue is None or tuple(tokens[i : i + 2]) in emotion._NOT_CUES:
            i += 1
            continue
        negated = any(
            t in emotion.NEGATORS for t in tokens[max(0, i - emotion.NEGATION_WINDOW) : i]
        )
        chosen = cue.negated if negated else cue.emotion
        if chosen is not None:
            found.append(chosen)
        i += len(cue.phrase)
    return found


def excerpt_by_definition(
    turns: Sequence[Turn], budget: prompts.PromptBudget
) -> prompts.Excerpt:
    """prompts.excerpt counting the questions of every earlier user turn, fitting or not."""
    chosen: dict[int, Turn] = {}
    used = 0

    def take(index: int, limit: int) -> bool:
        nonlocal used
        text = prompts.clip(turns[index].content, budget.max_turn_chars)
        cost = len(text) + prompts._LINE_OVERHEAD
        if len(chosen) >= budget.max_turns or used + cost > limit:
            return False
        chosen[index] = Turn(turns[index].role, text)
        used += cost
        return True

    first_recent = len(turns)
    for index in range(len(turns) - 1, -1, -1):
        if not take(index, int(budget.max_chars * prompts.RECENT_SHARE)):
            break
        first_recent = index
    for index in range(first_recent - 1, -1, -1):
        if len(chosen) >= budget.max_turns:
            break
        turn = turns[index]
        if turn.role is Role.USER and count_questions(
            prompts.clip(turn.content, budget.max_turn_chars)
        ):
            take(index, budget.max_chars)
    for index in range(first_recent - 1, -1, -1):
        if index not in chosen and not take(index, budget.max_chars):
            break
    ordered = tuple(chosen[i] for i in sorted(chosen))
    return prompts.Excerpt(turns=ordered, omitted=len(turns) - len(ordered))


def clauses_of(text: str) -> list[str]:
    return [c.strip() for s in sentences(text) for c in memories._CLAUSE_BREAK.split(s)]


@settings(max_examples=400, deadline=None)
@given(turn_text)
def test_the_keyword_prefilter_never_changes_a_fact(text: str) -> None:
    for clause in clauses_of(text):
        assert memories._fact_in(clause) == fact_in_by_definition(clause)


def test_every_pattern_needs_one_of_the_keywords() -> None:
    # One clause per pattern, each matched by it: the prefilter lets each one through.
    examples = [
        "my name is lan", "i am called lan", "tên con là lan", "i am 7 years old",
        "con 6 tuổi", "my favorite color is blue", "món ăn yêu thích của con là phở",
        "i love trains", "i like cats", "i have a dog", "i live in hue", "nhà con ở huế",
        "con sống ở huế", "con thích vẽ", "con yêu mẹ", "con có một con mèo",
    ]  # fmt: skip
    assert len(examples) == len(memories.PATTERNS)
    for pattern, clause in zip(memories.PATTERNS, examples, strict=True):
        assert pattern.regex.search(clause), clause
        assert any(keyword in clause for keyword in memories.KEYWORDS), clause
        assert memories._fact_in(clause) == fact_in_by_definition(clause) is not None


@settings(max_examples=400, deadline=None)
@given(turn_text)
def test_cues_by_first_word_find_what_the_whole_lexicon_finds(text: str) -> None:
    for sentence in sentences(text):
        for clause in emotion._CLAUSE_BREAK.split(sentence):
            tokens = words(clause)
            assert emotion._matches(tokens) == matches_by_definition(tokens)


@settings(max_examples=400, deadline=None)
@given(mixed_text)
def test_first_word_and_vietnamese_letters_by_definition(text: str) -> None:
    tokens = words(text)
    assert first_word(text) == (tokens[0] if tokens else None)
    assert is_vietnamese(text) == any(ch in _VIETNAMESE_LETTERS for ch in text)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), turn_text), min_size=1, max_size=30),
    st.integers(50, 3000),
    st.integers(1, 20),
    st.integers(20, 300),
)
def test_the_excerpt_skips_questions_that_cannot_fit_without_changing(
    raw: list[tuple[bool, str]], max_chars: int, max_turns: int, max_turn_chars: int
) -> None:
    turns = tuple(Turn(Role.USER if user else Role.ASSISTANT, text) for user, text in raw)
    budget = prompts.PromptBudget(max_chars, max_turns, max_turn_chars)
    assert prompts.excerpt(turns, budget) == excerpt_by_definition(turns, budget)
