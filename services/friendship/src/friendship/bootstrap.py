"""Build the service's dependencies from settings, and close them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from friendship.adapters.level_cache import LevelCache
from friendship.adapters.level_listener import LevelChangeListener, connect_kwargs
from friendship.adapters.outbox_relay import OutboxRelay
from friendship.adapters.repository import (
    SqlAlchemyReadOnlyUnitOfWork,
    SqlAlchemyUnitOfWork,
    autocommit_engine,
)
from friendship.config import Settings
from friendship.handlers import FriendshipHandlers, LevelView
from servicekit.db import (
    BlockingRunner,
    engine_from_settings,
    runner_from_settings,
    sqlalchemy_url,
)

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
class LocalInvalidator:
    """After a local commit changed a user (or the rule sets): the GetLevel cache forgets it
    before the caller is answered. Called from DB worker threads: the invalidation is queued
    on the event loop ahead of the worker's result, so it runs before the RPC resumes."""

    cache: LevelCache[LevelView]
    loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)

    def user_changed(self, user_id: str) -> None:
        self._on_loop(self.cache.invalidate, user_id)

    def rules_changed(self) -> None:
        self._on_loop(self.cache.clear)

    def _on_loop(self, fn: Callable[..., None], *args: str) -> None:
        loop = self.loop
        if loop is None or loop.is_closed():
            return  # no listener running: the cache is not live
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            fn(*args)
        else:
            loop.call_soon_threadsafe(fn, *args)


@dataclass
class Deps:
    engine: Engine
    runner: BlockingRunner
    handlers: FriendshipHandlers
    level_cache: LevelCache[LevelView]
    level_listener: LevelChangeListener | None = None
    invalidator: LocalInvalidator | None = None
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

    def start_level_listener(self) -> None:
        """In the server's event loop: the GetLevel cache answers once it is LISTENing."""
        if self.level_listener is not None and self.invalidator is not None:
            self.invalidator.loop = asyncio.get_running_loop()
            self.level_listener.start()

    async def stop_level_listener(self) -> None:
        if self.level_listener is not None:
            await self.level_listener.stop()

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
    read_engine = autocommit_engine(engine)
    runner = runner_from_settings(settings, "friendship-db")
    waker = RelayWaker()
    level_cache: LevelCache[LevelView] = LevelCache(
        settings.friendship_level_cache_size, settings.friendship_level_cache_ttl_s
    )
    level_listener: LevelChangeListener | None = None
    invalidator: LocalInvalidator | None = None
    if level_cache.enabled:
        invalidator = LocalInvalidator(level_cache)
        listen_url = settings.friendship_listen_database_url or settings.database_url
        level_listener = LevelChangeListener(
            level_cache,
            connect_kwargs(
                sqlalchemy_url(listen_url),
                application_name="friendship-listener",
                connect_timeout_s=settings.db_connect_timeout_s,
                statement_timeout_ms=settings.db_statement_timeout_ms,
            ),
            connect_timeout_s=settings.db_connect_timeout_s,
            ping_interval_s=settings.friendship_level_cache_ping_interval_s,
            ping_timeout_s=settings.friendship_level_cache_ping_interval_s,
        )
    handlers = FriendshipHandlers(
        lambda: SqlAlchemyUnitOfWork(engine),
        default_rules=settings.initial_rules(),
        on_events=waker,
        read_uow_factory=lambda: SqlAlchemyReadOnlyUnitOfWork(read_engine),
        on_user_changed=invalidator.user_changed if invalidator else lambda user_id: None,
        on_rules_changed=invalidator.rules_changed if invalidator else lambda: None,
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
        level_cache=level_cache,
        level_listener=level_listener,
        invalidator=invalidator,
        relay_engine=relay_engine,
        relay=waker.relay,
        waker=waker,
    )
