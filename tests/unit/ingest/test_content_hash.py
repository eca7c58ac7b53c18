from __future__ import annotations

import unicodedata

from ingest.domain.content_hash import content_hash
from ingest.domain.model import Instant, Metadata, Turn

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
