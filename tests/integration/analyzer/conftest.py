from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from analyzer.adapters.repository import SqlAlchemyAnalyzerRepository
from servicekit.db import BlockingRunner, create_db_engine, migrate
from tests.support.env import TEST_DATABASE_URL


@pytest.fixture(scope="session")
def analyzer_database() -> None:
    migrate(TEST_DATABASE_URL, "analyzer:migrations", "analyzer")


@pytest.fixture(scope="session")
async def repository(analyzer_database: None) -> AsyncIterator[SqlAlchemyAnalyzerRepository]:
    engine = create_db_engine(
        TEST_DATABASE_URL,
        application_name="analyzer-tests",
        pool_size=4,
        pool_timeout_s=5,
        connect_timeout_s=2,
        statement_timeout_ms=5000,
    )
    run = BlockingRunner(4, 5.0)
    yield SqlAlchemyAnalyzerRepository(engine, run)
    run.shutdown()
    engine.dispose()
