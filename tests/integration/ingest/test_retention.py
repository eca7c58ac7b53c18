"""`ingest-retention` (a real process) on a database of its own: raw logs older than
RETENTION_RAW_LOG_DAYS are dropped in batches, normalized logs and statuses stay, and a
second run drops nothing."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from ingest.adapters.repository import SqlAlchemyUnitOfWork
from ingest.domain.model import ConversationInput, Metadata, Turn
from ingest.handlers import end_conversation
from tests.support.own_db import engine_for, own_database

RETENTION = str(Path(sys.executable).with_name("ingest-retention"))


@pytest.fixture(scope="module")
def db_url() -> Iterator[str]:
    with own_database("ingest_retention") as url:
        yield url


def _store(engine: sa.Engine, age_days: float) -> str:
    conversation_id = f"conv-{uuid.uuid4().hex[:12]}"
    request = ConversationInput(
        conversation_id=conversation_id,
        user_id="user-retention",
        bot_id="bot-1",
        bot_type="",
        agent_tag="",
        turns=(Turn("User", "  Hello   robot  "), Turn("bot", "Hi!")),
        metadata=Metadata(),
    )
    end_conversation(
        functools.partial(SqlAlchemyUnitOfWork, engine),
        request,
        max_turns=5000,
        now=datetime.now(UTC) - timedelta(days=age_days),
    )
    return conversation_id


def _run(db_url: str) -> dict[str, object]:
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "RETENTION_RAW_LOG_DAYS": "30",
        "RETENTION_BATCH_SIZE": "2",
    }
    done = subprocess.run([RETENTION], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_old_raw_logs_go_normalized_logs_stay_and_a_rerun_drops_nothing(db_url: str) -> None:
    engine = engine_for(db_url)
    try:
        old = [_store(engine, age) for age in (31, 45, 400)]
        recent = [_store(engine, age) for age in (0, 29)]

        first = _run(db_url)
        second = _run(db_url)

        assert first["raw_logs_dropped"] == 3 and first["older_than_days"] == 30
        assert second["raw_logs_dropped"] == 0
        with engine.connect() as conn:
            rows = {
                r.conversation_id: r
                for r in conn.execute(
                    sa.text(
                        "SELECT conversation_id, raw_log, normalized_log, status, "
                        "raw_log_dropped_at FROM ingest.conversations"
                    )
                )
            }
        for conversation_id in old:
            row = rows[conversation_id]
            assert row.raw_log is None and row.raw_log_dropped_at is not None
            assert row.status == "PENDING"
            assert [t["content"] for t in row.normalized_log] == ["Hello robot", "Hi!"]
        for conversation_id in recent:
            row = rows[conversation_id]
            assert [t["content"] for t in row.raw_log] == ["  Hello   robot  ", "Hi!"]
            assert row.raw_log_dropped_at is None
    finally:
        engine.dispose()


def test_a_retried_conversation_is_still_a_duplicate_after_its_raw_log_went(db_url: str) -> None:
    engine = engine_for(db_url)
    try:
        conversation_id = _store(engine, 60)
        _run(db_url)
        request = ConversationInput(
            conversation_id=conversation_id, user_id="user-retention", bot_id="bot-1",
            bot_type="", agent_tag="", metadata=Metadata(),
            turns=(Turn("User", "  Hello   robot  "), Turn("bot", "Hi!")),
        )  # fmt: skip
        result = end_conversation(
            functools.partial(SqlAlchemyUnitOfWork, engine), request, max_turns=5000,
            now=datetime.now(UTC),
        )
        assert result.duplicate
    finally:
        engine.dispose()


def test_a_bad_setting_is_one_clear_line_and_exit_2(db_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": db_url, "RETENTION_RAW_LOG_DAYS": "-1"}
    done = subprocess.run([RETENTION], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "retention_raw_log_days" in done.stderr and done.stdout == ""
