"""The chat completion body read by the Groq adapter: the content, or ValueError (INVALID)."""

from __future__ import annotations

import json

import pytest

from analyzer.adapters.groq_llm import completion_content


def body(choices: object) -> bytes:
    completion = {"id": "chatcmpl-1", "object": "chat.completion", "choices": choices}
    return json.dumps(completion).encode()


def test_the_first_choice_content_is_read() -> None:
    answer = '{"user_initiated_questions": 2}'
    assert completion_content(body([{"index": 0, "message": {"content": answer}}])) == answer


def test_no_choice_and_no_content_read_as_none() -> None:
    assert completion_content(body([])) is None
    assert completion_content(body([{"message": {"role": "assistant", "content": None}}])) is None
    assert completion_content(body([{"finish_reason": "length"}])) is None


@pytest.mark.parametrize(
    "raw",
    [
        b"{not even JSON",
        b"\xff\xfe",
        b"[]",
        b'"text"',
        b'{"choices": null}',
        b'{"choices": {"0": {}}}',
        json.dumps({"choices": [{"message": {"content": 3}}]}).encode(),
    ],
)
def test_a_body_that_is_not_a_chat_completion_is_a_value_error(raw: bytes) -> None:
    with pytest.raises(ValueError):
        completion_content(raw)
