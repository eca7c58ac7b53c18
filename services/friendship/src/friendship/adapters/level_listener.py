"""LISTEN friendship_level_changed on a dedicated connection; invalidate the GetLevel cache.

The triggers of migration 0004 send a user id (or "*": everything) after every committed
change of a status row or of the rule sets, whoever the writer. This listener applies them
to the process's LevelCache, on the event loop: a psycopg2 connection in asynchronous mode
(always autocommit), driven by loop.add_reader / add_writer, so no thread and no blocking
call. While it is not connected and LISTENing, the cache is not live (reads go to the
database); it reconnects with backoff.

A dead peer must be noticed, or missed notifications would leave stale entries: TCP
keepalives, plus a `SELECT 1` every `ping_interval_s` that must answer within
`ping_timeout_s`, else the connection counts as lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from collections.abc import Callable
from typing import Any, Protocol

import psycopg2  # type: ignore[import-untyped]
import psycopg2.extensions  # type: ignore[import-untyped]
from prometheus_client import Gauge
from sqlalchemy.engine import URL

CHANNEL = "friendship_level_changed"  # also in migrations/versions/0004
CLEAR_ALL = "*"

LISTENER_CONNECTED = Gauge(
    "friendship_level_cache_listener_connected",
    "1 while the GetLevel cache's invalidation listener is connected and LISTENing",
)

log = logging.getLogger("friendship.level_listener")


class Invalidated(Protocol):
    """What the listener drives (friendship.adapters.level_cache.LevelCache)."""

    def invalidate(self, key: str) -> None: ...

    def clear(self) -> None: ...

    def set_live(self, live: bool) -> None: ...


class ListenerLost(Exception):
    """The listening connection closed, failed or stopped answering."""


def connect_kwargs(
    url: URL, *, application_name: str, connect_timeout_s: int, statement_timeout_ms: int
) -> dict[str, Any]:
    """psycopg2.connect() arguments for `url` with servicekit's conventions (see
    servicekit.db.create_db_engine): connect and statement timeouts, keepalives, a name."""
    kwargs: dict[str, Any] = url.translate_connect_args(username="user", database="dbname")
    for key, value in url.query.items():
        kwargs[key] = value if isinstance(value, str) else value[-1]
    kwargs.update(
        connect_timeout=connect_timeout_s,
        application_name=application_name,
        options=f"-c statement_timeout={statement_timeout_ms}",
        keepalives=1,
        keepalives_idle=10,
        keepalives_interval=5,
        keepalives_count=3,
    )
    return kwargs


class LevelChangeListener:
    def __init__(
        self,
        cache: Invalidated,
        connect_args: dict[str, Any],
        *,
        connect_timeout_s: float,
        ping_interval_s: float,
        ping_timeout_s: float,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 5.0,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._cache = cache
        self._connect_args = connect_args
        self._connect_timeout_s = connect_timeout_s
        self._ping_interval_s = ping_interval_s
        self._ping_timeout_s = ping_timeout_s
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._jitter = jitter
        self._task: asyncio.Task[None] | None = None
        self._conn: Any = None
        self._watched_fd: int | None = None
        self._connected = False
        self._reported_down = False
        self.connects = 0  # successful LISTENs so far (tests, diagnostics)
        self.failed_connects = 0

    @property
    def connected(self) -> bool:
        return self._connected

    def start(self) -> None:
        """In the server's event loop."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="friendship-level-listener")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._set_down(None)

    # --- the loop ----------------------------------------------------------------------------
    async def _run(self) -> None:
        delay = self._backoff_initial_s
        while True:
            try:
                try:
                    await self._connect()
                except Exception:
                    self.failed_connects += 1
                    raise
                self._set_up()
                delay = self._backoff_initial_s
                await self._serve()
            except asyncio.CancelledError:
                self._close()
                raise
            except Exception as exc:  # any failure: down, then retry
                self._close()
                self._set_down(exc)
            await asyncio.sleep(delay * (0.5 + self._jitter() / 2))
            delay = min(delay * 2, self._backoff_max_s)

    def _set_up(self) -> None:
        self._cache.set_live(True)
        self._connected = True
        self.connects += 1
        LISTENER_CONNECTED.set(1)
        if self._reported_down:
            log.info("level cache listener reconnected; cache in use again")
        self._reported_down = False

    def _set_down(self, exc: BaseException | None) -> None:
        was_connected = self._connected
        self._connected = False
        self._cache.set_live(False)
        LISTENER_CONNECTED.set(0)
        if exc is not None and (was_connected or not self._reported_down):
            log.warning(
                "level cache listener down; GetLevel reads the database until it reconnects",
                extra={"error": type(exc).__name__},
            )
            self._reported_down = True

    def _watch(self, callback: Callable[[], None]) -> None:
        self._watched_fd = self._conn.fileno()
        asyncio.get_running_loop().add_reader(self._watched_fd, callback)

    def _unwatch(self) -> None:
        fd, self._watched_fd = self._watched_fd, None
        if fd is not None:
            asyncio.get_running_loop().remove_reader(fd)

    def _close(self) -> None:
        # The loop must forget the socket before it is closed (its number gets reused).
        self._unwatch()
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    async def _connect(self) -> None:
        args = dict(self._connect_args)
        host = args.get("host")
        if host and "hostaddr" not in args and not str(host).startswith("/") and "," not in host:
            # libpq resolves names with a blocking call: resolve here, off the loop's thread.
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, args.get("port") or 5432, type=socket.SOCK_STREAM
            )
            args["hostaddr"] = infos[0][4][0]
        self._conn = psycopg2.connect(**args, async_=True)
        await self._wait(self._conn, self._connect_timeout_s)
        await self._execute(f'LISTEN "{CHANNEL}"', self._connect_timeout_s)

    async def _serve(self) -> None:
        """Until the connection is lost: notifications as they come, a ping when idle."""
        conn = self._conn
        lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def readable() -> None:
            try:
                conn.poll()
                if conn.closed:
                    raise ListenerLost("connection closed")
            except Exception as exc:  # handed to _serve
                self._unwatch()
                if not lost.done():
                    lost.set_exception(exc)
                return
            self._drain()

        self._drain()
        self._watch(readable)
        try:
            while True:
                done, _ = await asyncio.wait({lost}, timeout=self._ping_interval_s)
                if done:
                    lost.result()  # raises
                # The ping drives the connection itself until its answer; then back to waiting.
                self._unwatch()
                await self._execute("SELECT 1", self._ping_timeout_s)
                self._drain()
                self._watch(readable)
        finally:
            if lost.done():
                lost.exception()  # retrieved (it may be why we are leaving)

    def _drain(self) -> None:
        notifies = self._conn.notifies
        while notifies:
            payload = notifies.pop(0).payload
            if payload == CLEAR_ALL:
                self._cache.clear()
            else:
                self._cache.invalidate(payload)

    async def _execute(self, sql: str, timeout_s: float) -> None:
        cursor = self._conn.cursor()
        try:
            cursor.execute(sql)
            await self._wait(self._conn, timeout_s)
        finally:
            with contextlib.suppress(Exception):
                cursor.close()

    async def _wait(self, conn: Any, timeout_s: float) -> None:
        """Drive an asynchronous psycopg2 connection until its current operation is done."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    state = conn.poll()
                    if state == psycopg2.extensions.POLL_OK:
                        return
                    ready: asyncio.Future[None] = loop.create_future()
                    fd = conn.fileno()
                    if state == psycopg2.extensions.POLL_READ:
                        loop.add_reader(fd, _resolve, ready)
                        try:
                            await ready
                        finally:
                            loop.remove_reader(fd)
                    elif state == psycopg2.extensions.POLL_WRITE:
                        loop.add_writer(fd, _resolve, ready)
                        try:
                            await ready
                        finally:
                            loop.remove_writer(fd)
                    else:  # pragma: no cover - psycopg2 documents only the three states
                        raise ListenerLost(f"unexpected poll state {state}")
        except TimeoutError as exc:
            raise ListenerLost("no answer in time") from exc


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
