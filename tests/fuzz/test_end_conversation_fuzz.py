"""Property-based fuzzing of EndConversation over real gRPC, on a real ingest process.

Random and malformed requests (huge strings, control characters, unknown roles, long
logs, timestamps out of range, raw bytes that are not a valid message or carry invalid
UTF-8) get only CONTRACT.md's status codes; a rejected request leaves no row; an accepted
one leaves exactly its row and one outbox row; the service stays SERVING throughout.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spring.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from tests.support.auth import ROBOT_SCOPES, TEST_JWT_SECRET, bearer
from tests.support.env import AMQP_URL, new_namespace
from tests.support.figures import report
from tests.support.own_db import engine_for, own_database
from tests.support.stack import ServiceProcess, build_stack

pytestmark = pytest.mark.e2e
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "250"))
ALLOWED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ALREADY_EXISTS,
}
METHOD = "/spring.ingest.v1.IngestService/EndConversation"
SEEN: dict[str, int] = {}


class Ingest:
    def __init__(self, service: ServiceProcess, engine: sa.Engine) -> None:
        self.service = service
        self.engine = engine
        self.channel = grpc.insecure_channel(
            service.target, options=[("grpc.max_send_message_length", 16 * 1024 * 1024)]
        )
        self.stub = ingest_pb2_grpc.IngestServiceStub(self.channel)
        self.raw = self.channel.unary_unary(METHOD)  # bytes in, bytes out

    def rows(self, conversation_id: str) -> tuple[int, int]:
        with self.engine.connect() as conn:
            return (
                conn.execute(
                    sa.text("SELECT count(*) FROM ingest.conversations WHERE conversation_id = :c"),
                    {"c": conversation_id},
                ).scalar_one(),
                conn.execute(
                    sa.text("SELECT count(*) FROM ingest.outbox WHERE conversation_id = :c"),
                    {"c": conversation_id},
                ).scalar_one(),
            )

    def serving(self) -> bool:
        reply = health_pb2_grpc.HealthStub(self.channel).Check(
            health_pb2.HealthCheckRequest(), timeout=2
        )
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


@pytest.fixture(scope="module")
def ingest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ingest]:
    with own_database("fuzz") as url:
        stack = build_stack(
            database_url=url, amqp_url=AMQP_URL, namespace=new_namespace(),
            jwt_secret=TEST_JWT_SECRET, log_dir=Path(tmp_path_factory.mktemp("fuzz")),
            extra_env={"RELAY_ENABLED": "false"},  # nothing to publish to: its own database
        )  # fmt: skip
        stack.ingest.start()
        stack.ingest.wait_serving()
        engine = engine_for(url)
        client = Ingest(stack.ingest, engine)
        try:
            yield client
        finally:
            client.channel.close()
            engine.dispose()
            assert stack.ingest.stop() == 0
    report("fuzz", examples_per_property=EXAMPLES, codes=dict(sorted(SEEN.items())))


def record(code: grpc.StatusCode) -> None:
    SEEN[code.name] = SEEN.get(code.name, 0) + 1


# --- strategies ---------------------------------------------------------------------------------
nasty_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8", categories=["Cc", "Cf", "Zs", "Zl", "Zp"]),
            max_size=20),
    st.sampled_from(["", " ", "a" * 129, "a" * 128, "conv-1", "x y", "é", "\x00", "../../etc"]),
    st.builds(lambda n: "z" * n, st.integers(min_value=1000, max_value=300_000)),
)
ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def mostly(valid: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> (
    st.SearchStrategy[Any]
):
    """Valid 9 times in 10, so that many requests are accepted and the DB checks bite."""
    return st.integers(0, 9).flatmap(lambda i: bad if i == 0 else valid)


ids = mostly(st.from_regex(ID_RE, fullmatch=True), nasty_text)
roles = mostly(st.sampled_from(["user", "assistant", "bot", "robot", "agent", "User"]),
               nasty_text)  # fmt: skip
valid_seconds = st.integers(min_value=-62_135_596_800, max_value=253_402_300_799)
seconds = st.one_of(valid_seconds, valid_seconds, st.integers(-(2**63), 2**63 - 1))
nanos = st.one_of(st.integers(0, 999_999_999), st.integers(-(2**31), 2**31 - 1))


@st.composite
def timestamps(draw: st.DrawFn) -> Timestamp | None:
    if draw(st.integers(0, 3)) > 0:
        return None
    return Timestamp(seconds=draw(seconds), nanos=draw(nanos))


@st.composite
def turns(draw: st.DrawFn) -> ingest_pb2.Turn:
    turn = ingest_pb2.Turn(role=draw(roles), content=draw(nasty_text))
    at = draw(timestamps())
    if at is not None:
        turn.at.CopyFrom(at)
    return turn


@st.composite
def requests(draw: st.DrawFn) -> ingest_pb2.EndConversationRequest:
    log = draw(st.lists(turns(), max_size=8))
    if draw(st.integers(0, 9)) == 0:  # now and then a very long log, around the 5,000 limit
        # Short turns: a long log of huge turns would be gigabytes in this process.
        short = ingest_pb2.Turn(role=draw(roles), content=draw(st.text(max_size=8)))
        log = [short] * draw(st.sampled_from([4999, 5000, 5001, 20000]))
    request = ingest_pb2.EndConversationRequest(
        conversation_id=draw(ids), user_id=draw(ids), bot_id=draw(ids),
        bot_type=draw(mostly(st.sampled_from(["", "NEXT_LESSON"]), nasty_text)),
        agent_tag=draw(st.one_of(st.just(""), ids)), conversation_log=log,
    )  # fmt: skip
    if draw(st.booleans()):
        questions = draw(mostly(st.integers(0, 50), st.integers(-(2**31), 2**31 - 1)))
        request.metadata.user_initiated_questions = questions
        emotion = draw(mostly(st.integers(0, 6), st.integers(-(2**31), 2**31 - 1)))
        request.metadata.session_emotion = emotion
    for field in ("started_at", "ended_at"):
        value = draw(timestamps())
        if value is not None:
            getattr(request, field).CopyFrom(value)
    return request


def check(ingest: Ingest, conversation_id: str, code: grpc.StatusCode) -> None:
    record(code)
    assert code in ALLOWED, code
    # An id outside the rule can never be stored (nor passed to PostgreSQL: NUL).
    valid = ID_RE.fullmatch(conversation_id) is not None
    conversations, outbox = ingest.rows(conversation_id) if valid else (0, 0)
    if code == grpc.StatusCode.OK:
        assert (conversations, outbox) == (1, 1)
    elif code != grpc.StatusCode.ALREADY_EXISTS:
        assert outbox == conversations  # no partial row: either both (an earlier OK) or none


FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, derandomize=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.function_scoped_fixture],
)  # fmt: skip


@FUZZ
@given(request=requests())
def test_random_requests_get_only_contract_codes(
    ingest: Ingest, request: ingest_pb2.EndConversationRequest
) -> None:
    try:
        ingest.stub.EndConversation(request, metadata=bearer(ROBOT_SCOPES), timeout=10)
        code = grpc.StatusCode.OK
    except grpc.RpcError as err:
        assert isinstance(err, grpc.Call)
        code = err.code()
    check(ingest, request.conversation_id, code)


@FUZZ
@given(body=st.one_of(
    st.binary(max_size=300),
    # A valid-looking field 1 (conversation_id) holding bytes that are not UTF-8.
    st.binary(min_size=1, max_size=60).map(lambda b: b"\x0a" + bytes([len(b)]) + b),
    # Deeply nested length-delimited fields.
    st.integers(1, 200).map(lambda n: b"\x32\x02" * n),
))  # fmt: skip
def test_raw_bytes_get_only_contract_codes(ingest: Ingest, body: bytes) -> None:
    try:
        ingest.raw(body, metadata=bearer(ROBOT_SCOPES), timeout=10)
        code = grpc.StatusCode.OK
    except grpc.RpcError as err:
        assert isinstance(err, grpc.Call)
        code = err.code()
    conversation_id = ""
    with contextlib.suppress(Exception):  # undecodable: nothing can have been stored
        conversation_id = ingest_pb2.EndConversationRequest.FromString(body).conversation_id
    check(ingest, conversation_id, code)


def test_a_request_over_the_size_limit_is_resource_exhausted(ingest: Ingest) -> None:
    request = ingest_pb2.EndConversationRequest(
        conversation_id="fuzz-huge", user_id="u", bot_id="b",
        conversation_log=[ingest_pb2.Turn(role="user", content="x" * (5 * 1024 * 1024))],
    )  # fmt: skip
    with pytest.raises(grpc.RpcError) as caught:
        ingest.stub.EndConversation(request, metadata=bearer(ROBOT_SCOPES), timeout=10)
    assert isinstance(caught.value, grpc.Call)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert ingest.rows("fuzz-huge") == (0, 0)


def test_the_service_is_still_healthy_after_the_fuzzing(ingest: Ingest) -> None:
    assert ingest.serving()
    assert ingest.service.process is not None and ingest.service.process.poll() is None
    log = ingest.service.log_text()
    assert '"level": "error"' not in log, "the fuzzer made ingest log an error"
