"""Build the service's dependencies from settings, and close them."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from friendship.adapters.repository import SqlAlchemyUnitOfWork
from friendship.config import Settings
from friendship.handlers import FriendshipHandlers
from servicekit.db import BlockingRunner, check_pool_fits, create_db_engine


@dataclass
class Deps:
    engine: Engine
    runner: BlockingRunner
    handlers: FriendshipHandlers

    async def check_database(self) -> None:
        """SELECT 1 within the call deadline; raises servicekit DatabaseUnavailable."""
        await self.runner(_select_one, self.engine)

    def close(self) -> None:
        self.runner.shutdown()
        self.engine.dispose()


def _select_one(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))


def build(settings: Settings) -> Deps:
    engine = create_db_engine(
        settings.database_url,
        application_name="friendship",
        pool_size=settings.db_pool_size,
        pool_timeout_s=settings.db_pool_timeout_s,
        connect_timeout_s=settings.db_connect_timeout_s,
        statement_timeout_ms=settings.db_statement_timeout_ms,
    )
    # One DB thread per pooled connection: a call never waits for a connection inside its thread.
    workers = settings.db_pool_size
    check_pool_fits(settings.db_pool_size, workers, "DB worker threads")
    runner = BlockingRunner(
        workers=workers, timeout_s=settings.db_call_timeout_s, name="friendship-db"
    )
    handlers = FriendshipHandlers(
        lambda: SqlAlchemyUnitOfWork(engine),
        weights=settings.weights(),
        thresholds=settings.thresholds(),
    )
    return Deps(engine=engine, runner=runner, handlers=handlers)
