"""The SQL adapter on real PostgreSQL: the accept, claim and completion as single statements
in units without a transaction, and what such a unit refuses or leaves behind."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg2.extensions
import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from ingest import handlers
from ingest.adapters.repository import SqlAlchemyUnitOfWork, turns_json, turns_to_json
from ingest.domain.model import Analysis, Instant, Turn
from ingest.domain.status import Status
from servicekit.db import create_db_engine
from tests.unit.ingest.fixtures import conversation

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def engine(migrated_db_url: str) -> Iterator[sa.Engine]:
    # One pooled connection: every unit below reuses the same one.
    engine = create_db_engine(
        migrated_db_url, application_name="repository-test", pool_size=1,
        pool_timeout_s=5, connect_timeout_s=2, statement_timeout_ms=5000,
    )  # fmt: skip
    yield engine
    engine.dispose()


def _rows(engine: sa.Engine, cid: str) -> tuple[int, int]:
    with engine.connect() as conn:
        conversations = conn.execute(
            sa.text("SELECT count(*) FROM ingest.conversations WHERE conversation_id = :c"),
            {"c": cid},
        ).scalar_one()
        outbox = conn.execute(
            sa.text("SELECT count(*) FROM ingest.outbox WHERE conversation_id = :c"), {"c": cid}
        ).scalar_one()
    return int(conversations), int(outbox)


def test_accept_stores_conversation_and_outbox_row_and_knows_a_duplicate(
    engine: sa.Engine,
) -> None:
    uow = functools.partial(SqlAlchemyUnitOfWork, engine)
    request = conversation(
        conversation_id="repo-1",
        turns=(Turn("user", "  Chào\u00a0bạn ", at=Instant(5, 7)), Turn("bot", "hi \U0001f44b")),
    )
    first = handlers.end_conversation(uow, request, max_turns=10, now=NOW)
    assert (first.duplicate, first.status) == (False, Status.PENDING)
    assert _rows(engine, "repo-1") == (1, 1)
    with engine.connect() as conn:
        raw, normalized, status, trace = conn.execute(
            sa.text("SELECT raw_log, normalized_log, status, trace_id FROM ingest.conversations"
                    " WHERE conversation_id = 'repo-1'")
        ).one()  # fmt: skip
    assert raw == turns_to_json(request.turns)
    assert normalized == [
        {"role": "user", "content": "Chào bạn", "at": {"seconds": 5, "nanos": 7}},
        {"role": "assistant", "content": "hi \U0001f44b", "at": None},
    ]
    assert (status, trace) == ("PENDING", "")

    again = handlers.end_conversation(uow, request, max_turns=10, now=NOW + timedelta(1))
    assert (again.duplicate, again.status, again.accepted_at) == (True, Status.PENDING, NOW)
    with pytest.raises(handlers.ContentConflict):
        handlers.end_conversation(
            uow, conversation(conversation_id="repo-1"), max_turns=10, now=NOW
        )
    assert _rows(engine, "repo-1") == (1, 1)


def test_an_already_normalized_log_fills_both_columns(engine: sa.Engine) -> None:
    uow = functools.partial(SqlAlchemyUnitOfWork, engine)
    turns = (Turn("user", "Chào bạn \U0001f44b", at=Instant(9)), Turn("assistant", "Hi."))
    handlers.end_conversation(uow, conversation(conversation_id="same-1", turns=turns),
                              max_turns=10, now=NOW)  # fmt: skip
    with engine.connect() as conn:
        raw, normalized = conn.execute(
            sa.text("SELECT raw_log, normalized_log FROM ingest.conversations"
                    " WHERE conversation_id = 'same-1'")
        ).one()  # fmt: skip
    assert raw == normalized == turns_to_json(turns)


def test_turns_json_is_the_json_of_turns_to_json() -> None:
    turns = (
        Turn("user", 'quote " backslash \\ newline \n tab \t nul-free \u2028 \U0001f468\u200d'),
        Turn("assistant", "", at=Instant(-62_135_596_800, 999_999_999)),
    )
    assert json.loads(turns_json(turns)) == turns_to_json(turns)
    assert turns_json(()) == "[]"


def test_the_accept_is_atomic_when_the_outbox_row_fails(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE ingest.outbox ADD CONSTRAINT refuse_boom"
                             " CHECK (conversation_id <> 'boom')"))  # fmt: skip
    uow = functools.partial(SqlAlchemyUnitOfWork, engine)
    with pytest.raises(sa_exc.IntegrityError):
        handlers.end_conversation(uow, conversation(conversation_id="boom"), max_turns=10,
                                  now=NOW)  # fmt: skip
    assert _rows(engine, "boom") == (0, 0)  # no conversation without its outbox row


def test_a_unit_without_a_transaction_sends_no_begin_and_refuses_multi_statement_writes(
    engine: sa.Engine,
) -> None:
    handlers.end_conversation(
        functools.partial(SqlAlchemyUnitOfWork, engine), conversation(conversation_id="tx-1"),
        max_turns=10, now=NOW,
    )  # fmt: skip
    with SqlAlchemyUnitOfWork(engine, transaction=False) as uow:
        state = uow.conversations.get_state("tx-1")
        assert state is not None
        driver = uow.conversations._conn.connection.driver_connection
        # No BEGIN went out: the read left no transaction open on the server.
        assert driver.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_IDLE
        with pytest.raises(RuntimeError):
            uow.conversations.save_state(state)
        with pytest.raises(RuntimeError):
            uow.conversations.get_state("tx-1", for_update=True)
        with pytest.raises(RuntimeError):
            uow.outbox.add("tx-1", NOW)
    # The pooled connection went back in transaction mode: a unit with a transaction still
    # rolls back unless committed.
    with SqlAlchemyUnitOfWork(engine) as uow:
        driver = uow.conversations._conn.connection.driver_connection
        assert driver.autocommit is False
        uow.outbox.add("tx-1", NOW)
        assert driver.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_INTRANS
    assert _rows(engine, "tx-1") == (1, 1)


def test_claim_and_complete_as_conditional_updates(engine: sa.Engine) -> None:
    uow = functools.partial(SqlAlchemyUnitOfWork, engine)
    handlers.end_conversation(uow, conversation(conversation_id="cl-1"), max_turns=10, now=NOW)
    claimed = handlers.claim_conversation(uow, "cl-1", 60, now=NOW)
    assert (claimed.claimed, claimed.status, claimed.attempts) == (True, Status.PROCESSING, 1)
    assert claimed.conversation is not None
    assert claimed.conversation.turns == (
        Turn("user", "Hello there"), Turn("assistant", "Hi! How are you?")
    )
    assert handlers.claim_conversation(uow, "cl-1", 0, now=NOW).attempts == 2  # redelivery
    with SqlAlchemyUnitOfWork(engine, transaction=False) as unit:
        state = unit.conversations.get_state("cl-1")
    assert state is not None and state.lease_expires_at == NOW + timedelta(seconds=300)

    seen: list[timedelta] = []
    analysis = Analysis(2, 1, 3, 0, "metadata")
    done = NOW + timedelta(seconds=2)
    assert handlers.complete_conversation(
        uow, "cl-1", Status.PROCESSED, 4.5, analysis, now=done, on_processed=seen.append
    ) == Status.PROCESSED
    assert seen == [timedelta(seconds=2)]
    with SqlAlchemyUnitOfWork(engine, transaction=False) as unit:
        state = unit.conversations.get_state("cl-1")
    assert state is not None
    assert (state.status, state.score_change, state.analysis, state.lease_expires_at,
            state.updated_at, state.attempts) == (
        Status.PROCESSED, 4.5, analysis, None, done, 2
    )  # fmt: skip

    # Terminal: a second completion, a claim and a late failure change nothing.
    assert handlers.complete_conversation(
        uow, "cl-1", Status.SKIPPED, 0.0, None, now=NOW, on_processed=seen.append
    ) == Status.PROCESSED
    late = handlers.claim_conversation(uow, "cl-1", 60, now=NOW)
    assert (late.claimed, late.status, late.attempts, late.conversation) == (
        False, Status.PROCESSED, 2, None
    )
    assert seen == [timedelta(seconds=2)]
    with pytest.raises(handlers.ConversationNotFound):
        handlers.claim_conversation(uow, "cl-unknown", 60, now=NOW)
    with pytest.raises(handlers.ConversationNotFound):
        handlers.complete_conversation(uow, "cl-unknown", Status.PROCESSED, 0.0, None, now=NOW)


def test_skipped_completion_clears_score_and_analysis(engine: sa.Engine) -> None:
    uow = functools.partial(SqlAlchemyUnitOfWork, engine)
    handlers.end_conversation(uow, conversation(conversation_id="sk-1"), max_turns=10, now=NOW)
    assert handlers.complete_conversation(
        uow, "sk-1", Status.SKIPPED, 3.0, Analysis(1, 0, 0, 0, "x"), now=NOW
    ) == Status.SKIPPED  # from PENDING (never claimed) too
    status = handlers.get_status(uow, "sk-1")
    assert (status.status, status.score_change, status.analysis) == (Status.SKIPPED, None, None)
