"""Build the ingest service's dependencies from Settings, and close them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from ingest.adapters.lease_sweeper import LeaseSweeper
from ingest.adapters.outbox_relay import OutboxRelay
from ingest.adapters.repository import SqlAlchemyUnitOfWork
from ingest.config import Settings
from ingest.handlers import UnitOfWork
from servicekit.db import BlockingRunner, engine_from_settings, runner_from_settings

# The relay holds at most one connection (one claimed batch at a time).
RELAY_POOL_SIZE = 1


@dataclass
class Deps:
    settings: Settings
    engine: Engine
    runner: BlockingRunner
    relay_engine: Engine | None
    relay: OutboxRelay | None

    def unit_of_work(self, *, transaction: bool = True) -> UnitOfWork:
        return SqlAlchemyUnitOfWork(self.engine, transaction=transaction)

    def wake_relay(self) -> None:
        if self.relay is not None:
            self.relay.wake()


def build(settings: Settings) -> Deps:
    """Engines and the relay; nothing connects until first use."""
    engine = engine_from_settings(settings, "ingest")
    runner = runner_from_settings(settings, "ingest-db")
    relay_engine: Engine | None = None
    relay: OutboxRelay | None = None
    if settings.relay_enabled:
        relay_engine = engine_from_settings(settings, "ingest-relay", RELAY_POOL_SIZE)
        relay = OutboxRelay(
            engine=relay_engine,
            amqp_url=settings.amqp_url,
            namespace=settings.amqp_namespace,
            amqp_timeout_s=settings.amqp_timeout_s,
            batch_size=settings.relay_batch_size,
            poll_interval_s=settings.relay_poll_interval_s,
            # Deadline of a relay DB call: past the statement timeout, never a hang.
            db_timeout_s=settings.db_statement_timeout_ms / 1000 + 5,
            sweeper=LeaseSweeper(
                relay_engine,
                pending_after_s=settings.relay_sweep_pending_after_s,
                batch_size=settings.relay_batch_size,
            ),
            sweep_interval_s=settings.relay_sweep_interval_s,
        )
    return Deps(settings, engine, runner, relay_engine, relay)


async def close(deps: Deps) -> None:
    if deps.relay is not None:
        await deps.relay.stop()
    deps.runner.shutdown()
    deps.engine.dispose()
    if deps.relay_engine is not None:
        deps.relay_engine.dispose()
