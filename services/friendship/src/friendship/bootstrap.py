"""Build the service's dependencies from settings, and close them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from friendship.adapters.outbox_relay import OutboxRelay
from friendship.adapters.repository import SqlAlchemyUnitOfWork
from friendship.config import Settings
from friendship.handlers import FriendshipHandlers
from servicekit.db import BlockingRunner, engine_from_settings, runner_from_settings

# The relay holds at most one connection (one claimed batch at a time).
RELAY_POOL_SIZE = 1


@dataclass
class RelayWaker:
    """Wakes the relay after a commit that wrote events; called from DB worker threads."""

    relay: OutboxRelay | None = None
    loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)

    def __call__(self) -> None:
        if self.relay is not None and self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.relay.wake)


@dataclass
class Deps:
    engine: Engine
    runner: BlockingRunner
    handlers: FriendshipHandlers
    relay_engine: Engine | None = None
    relay: OutboxRelay | None = None
    waker: RelayWaker = field(default_factory=RelayWaker)

    async def check_database(self) -> None:
        """SELECT 1 within the call deadline; raises servicekit DatabaseUnavailable."""
        await self.runner(_select_one, self.engine)

    def start_relay(self) -> None:
        """In the server's event loop: publish level events from now on."""
        if self.relay is not None:
            self.waker.loop = asyncio.get_running_loop()
            self.relay.start()

    async def stop_relay(self) -> None:
        if self.relay is not None:
            await self.relay.stop()

    def close(self) -> None:
        self.runner.shutdown()
        self.engine.dispose()
        if self.relay_engine is not None:
            self.relay_engine.dispose()


def _select_one(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))


def build(settings: Settings) -> Deps:
    engine = engine_from_settings(settings, "friendship")
    runner = runner_from_settings(settings, "friendship-db")
    waker = RelayWaker()
    handlers = FriendshipHandlers(
        lambda: SqlAlchemyUnitOfWork(engine),
        default_rules=settings.initial_rules(),
        on_events=waker,
    )
    relay_engine: Engine | None = None
    if settings.friendship_relay_enabled:
        relay_engine = engine_from_settings(settings, "friendship-relay", RELAY_POOL_SIZE)
        waker.relay = OutboxRelay(
            engine=relay_engine,
            amqp_url=settings.amqp_url,
            namespace=settings.amqp_namespace,
            amqp_timeout_s=settings.amqp_timeout_s,
            batch_size=settings.friendship_relay_batch_size,
            poll_interval_s=settings.friendship_relay_poll_interval_s,
        )
    return Deps(
        engine=engine,
        runner=runner,
        handlers=handlers,
        relay_engine=relay_engine,
        relay=waker.relay,
        waker=waker,
    )
