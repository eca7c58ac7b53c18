from __future__ import annotations

import hashlib
import json
import unicodedata
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.domain.content_hash import content_hash
from ingest.domain.model import ConversationInput, Instant, Metadata, Turn

from .fixtures import conversation


def test_same_content_same_hash() -> None:
    assert content_hash(conversation()) == content_hash(conversation())
    # Built from different (but equal) objects, e.g. via another transport.
    turns = tuple(Turn(str(t.role), "".join(t.content), t.at) for t in conversation().turns)
    assert content_hash(conversation(turns=turns)) == content_hash(conversation())


def test_hash_is_hex_sha256() -> None:
    value = content_hash(conversation())
    assert len(value) == 64
    int(value, 16)


def test_absent_and_empty_metadata_hash_the_same() -> None:
    assert content_hash(conversation(metadata=Metadata())) == content_hash(
        conversation(metadata=Metadata(None, 0))
    )


def test_every_part_of_the_content_changes_the_hash() -> None:
    base = content_hash(conversation())
    variants = [
        conversation(conversation_id="conv-2"),
        conversation(user_id="user-2"),
        conversation(bot_id="bot-2"),
        conversation(bot_type="NEXT_LESSON"),
        conversation(agent_tag="topic"),
        conversation(turns=(Turn("user", "Hello there"),)),
        conversation(turns=(Turn("user", "Hello  there"), Turn("assistant", "Hi! How are you?"))),
        conversation(turns=(Turn("bot", "Hello there"), Turn("assistant", "Hi! How are you?"))),
        conversation(
            turns=(
                Turn("user", "Hello there", at=Instant(1)),
                Turn("assistant", "Hi! How are you?"),
            )
        ),
        conversation(metadata=Metadata(user_initiated_questions=0)),
        conversation(metadata=Metadata(session_emotion=1)),
        conversation(started_at=None),
        conversation(ended_at=Instant(1_700_000_600, 1)),
    ]
    hashes = {content_hash(v) for v in variants}
    assert base not in hashes
    assert len(hashes) == len(variants)


def test_turn_boundaries_are_part_of_the_content() -> None:
    a = conversation(turns=(Turn("user", "ab"), Turn("user", "c")))
    b = conversation(turns=(Turn("user", "a"), Turn("user", "bc")))
    assert content_hash(a) != content_hash(b)


def test_raw_text_is_hashed_as_received() -> None:
    composed = conversation(turns=(Turn("user", "Việt"),))
    decomposed = conversation(turns=(Turn("user", unicodedata.normalize("NFD", "Việt")),))
    assert content_hash(composed) != content_hash(decomposed)


def test_emoji_and_vietnamese_hash_stably() -> None:
    request = conversation(turns=(Turn("user", "Chào 🐱"), Turn("bot", "Xin chào 👋")))
    assert content_hash(request) == content_hash(request)


# --- stored hashes never change: the hand-written turn lines equal json.dumps --------------------
def _reference_hash(request: ConversationInput) -> str:
    """content_hash as first written (json.dumps per part): hashes stored by earlier versions
    must keep matching, or a retried request would become a conflict."""

    def dumps(value: Any) -> bytes:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def instant(value: Instant | None) -> list[int] | None:
        return None if value is None else [value.seconds, value.nanos]

    digest = hashlib.sha256()
    digest.update(dumps([
        1, request.conversation_id, request.user_id, request.bot_id, request.bot_type,
        request.agent_tag, request.metadata.user_initiated_questions,
        request.metadata.session_emotion, instant(request.started_at), instant(request.ended_at),
        len(request.turns),
    ]))
    for turn in request.turns:
        digest.update(b"\n")
        digest.update(dumps([turn.role, turn.content, instant(turn.at)]))
    return digest.hexdigest()


def test_known_hashes_are_unchanged() -> None:
    assert content_hash(conversation()) == (
        "b1c467cf8334fc2507096f2d97681aa0bc9dd661d201b0e1f638575e8d7ae15d"
    )
    tricky = conversation(
        turns=(Turn("user", 'Chào "bạn" \\ 👋\n', at=Instant(5, 7)), Turn("bot", "x\u2028y")),
        metadata=Metadata(3, 2),
    )
    assert content_hash(tricky) == (
        "947e4a759c24586be5c8399fc88e492ec41e9d5ed0cb991523939934138c746f"
    )


_instants = st.none() | st.builds(
    Instant, st.integers(-62_135_596_800, 253_402_300_799), st.integers(0, 999_999_999)
)
_text = st.text(st.characters(codec="utf-8"), max_size=40)


@settings(max_examples=300, deadline=None)
@given(
    turns=st.lists(st.builds(Turn, _text, _text, _instants), max_size=6),
    metadata=st.builds(Metadata, st.none() | st.integers(0, 2**31 - 1), st.integers(0, 6)),
    started_at=_instants,
    ids=st.lists(_text, min_size=5, max_size=5),
)
def test_hash_equals_the_reference_serialization(
    turns: list[Turn], metadata: Metadata, started_at: Instant | None, ids: list[str]
) -> None:
    request = conversation(
        conversation_id=ids[0], user_id=ids[1], bot_id=ids[2], bot_type=ids[3], agent_tag=ids[4],
        turns=tuple(turns), metadata=metadata, started_at=started_at,
    )
    assert content_hash(request) == _reference_hash(request)
