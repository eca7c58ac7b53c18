"""History paging (pure): request parsing, the opaque token, keyset pages under inserts."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from friendship.domain.friendship import ApplyCommand
from friendship.domain.history import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    HistoryCursor,
    decode_page_token,
    encode_page_token,
    parse_history_request,
)
from friendship.domain.levels import LevelThresholds
from friendship.domain.rules import RuleSet
from friendship.domain.scoring import AnalysisInput, Emotion, ScoreWeights
from friendship.domain.validation import InvalidRequest
from friendship.handlers import FriendshipHandlers
from tests.unit.friendship.fakes import FakeUnitOfWork, Tables

T0 = datetime(2025, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


def test_page_size_default_max_and_negative() -> None:
    assert parse_history_request("u1", 0, "").page_size == DEFAULT_PAGE_SIZE
    assert parse_history_request("u1", 7, "").page_size == 7
    assert parse_history_request("u1", 10_000, "").page_size == MAX_PAGE_SIZE
    with pytest.raises(InvalidRequest) as caught:
        parse_history_request("bad id!", -1, "")
    assert {v.field for v in caught.value.violations} == {"user_id", "page_size"}


def test_token_round_trips_to_the_microsecond() -> None:
    cursor = HistoryCursor(T0, "conv-9")
    token = encode_page_token("u1", cursor)
    assert decode_page_token("u1", token) == cursor
    assert parse_history_request("u1", 5, token).after == cursor


OTHER_USERS_TOKEN = encode_page_token("u2", HistoryCursor(T0, "c"))


@pytest.mark.parametrize("token", ["garbage", "e30", "!!!", OTHER_USERS_TOKEN])
def test_foreign_or_malformed_tokens_are_invalid(token: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_history_request("u1", 5, token)
    assert [v.field for v in caught.value.violations] == ["page_token"]


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def make() -> tuple[FriendshipHandlers, Clock]:
    clock = Clock()
    tables = Tables()
    handlers = FriendshipHandlers(
        lambda: FakeUnitOfWork(tables),
        default_rules=RuleSet("v1", ScoreWeights(), LevelThresholds()),
        clock=clock,
    )
    return handlers, clock


def apply(handlers: FriendshipHandlers, conversation_id: str, turns: int) -> None:
    handlers.apply_conversation(
        ApplyCommand(conversation_id, "u1", "bot", "", AnalysisInput(turns, 1, Emotion.HAPPY, 1))
    )


def test_pages_are_newest_first_and_stable_under_concurrent_inserts() -> None:
    handlers, _ = make()
    for i in range(5):
        apply(handlers, f"c{i}", 10)
    first = handlers.get_score_history(parse_history_request("u1", 2, ""))
    assert [e.conversation_id for e in first.entries] == ["c4", "c3"]
    apply(handlers, "c-new", 10)  # arrives between two page requests
    second = handlers.get_score_history(parse_history_request("u1", 2, first.next_page_token))
    assert [e.conversation_id for e in second.entries] == ["c2", "c1"]
    last = handlers.get_score_history(parse_history_request("u1", 2, second.next_page_token))
    assert [e.conversation_id for e in last.entries] == ["c0"]
    assert last.next_page_token == ""


def test_same_instant_entries_page_by_conversation_id() -> None:
    handlers, clock = make()
    for cid in ("a", "b", "c"):
        clock.now = T0  # every apply gets T0 + 1 s
        apply(handlers, cid, 2)
    seen: list[str] = []
    token = ""
    while True:
        page = handlers.get_score_history(parse_history_request("u1", 1, token))
        seen += [e.conversation_id for e in page.entries]
        token = page.next_page_token
        if not token:
            break
    assert seen == ["c", "b", "a"]


def test_every_entry_explains_its_part_of_the_score() -> None:
    handlers, _ = make()
    for i, turns in enumerate([40, 300, 2, 0]):
        apply(handlers, f"c{i}", turns)
    entries = handlers.get_score_history(parse_history_request("u1", 0, "")).entries
    view = handlers.get_level("u1")
    assert sum(e.applied_delta for e in entries) == pytest.approx(view.score)
    for newer, older in itertools.pairwise(entries):
        assert newer.score_before == older.score_after
    for e in entries:
        b = e.breakdown
        assert b.base + b.engagement + b.emotion + b.memory == pytest.approx(b.total)
