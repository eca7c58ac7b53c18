"""The GetLevel cache against a real PostgreSQL: every writer invalidates it (another server
with its own cache and listener, plain SQL, a rule-set activation), and while its listener is
cut or silent the servers read through to the database and stay right.

The servers here keep entries for an hour (TTL): only a notification can explain an update.
Waits poll with a deadline; no sleep is an assertion.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import grpc
import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY
from sqlalchemy.engine import Engine, make_url

from friendship.adapters.repository import SqlAlchemyUnitOfWork
from friendship.domain.levels import LevelThresholds
from friendship.domain.rules import RuleMode, RuleSet
from friendship.domain.scoring import ScoreWeights
from friendship.entrypoints.grpc_server import RunningServer, start_server
from friendship.entrypoints.migrate import run as migrate
from friendship.handlers import FriendshipHandlers
from servicekit.db import create_db_engine, sqlalchemy_url
from spring.friendship.v1 import (
    friendship_internal_pb2,
    friendship_internal_pb2_grpc,
    friendship_pb2,
    friendship_pb2_grpc,
)
from spring.ingest.v1 import ingest_pb2
from tests.contract.friendship.harness import server_settings
from tests.support.auth import INTERNAL_SCOPES, READER_SCOPES, bearer
from tests.support.env import TEST_DATABASE_URL, free_port, new_id
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration

T = TypeVar("T")
DEADLINE_S = 10.0
CACHED = {"friendship_level_cache_ttl_s": 3600.0}


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def eventually(
    read: Callable[[], Awaitable[T]], ok: Callable[[T], bool], what: str
) -> T:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        value = await read()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: still {value!r} after {DEADLINE_S}s")
        await asyncio.sleep(0.02)


async def until(condition: Callable[[], bool], what: str) -> None:
    async def read() -> bool:
        return condition()

    await eventually(read, bool, what)


class Client:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.public = friendship_pb2_grpc.FriendshipServiceStub(channel)
        self.internal = friendship_internal_pb2_grpc.FriendshipInternalServiceStub(channel)

    async def level(self, user_id: str) -> friendship_pb2.GetLevelResponse:
        return await self.public.GetLevel(
            friendship_pb2.GetLevelRequest(user_id=user_id), metadata=bearer(READER_SCOPES),
            timeout=10,
        )

    async def score(self, user_id: str) -> float:
        return (await self.level(user_id)).score

    async def apply(self, user_id: str, turns: int) -> float:
        reply = await self.internal.ApplyConversation(
            friendship_internal_pb2.ApplyConversationRequest(
                conversation_id=new_id("conv"), user_id=user_id, bot_id="bot-1",
                agent_tag="math", analysis=ingest_pb2.Analysis(total_turns=turns),
            ),
            metadata=bearer(INTERNAL_SCOPES), timeout=10,
        )
        return reply.score


@contextlib.asynccontextmanager
async def serving(**overrides: Any) -> AsyncIterator[tuple[RunningServer, Client]]:
    running = await start_server(server_settings(**{**CACHED, **overrides}))
    try:
        listener = running.deps.level_listener
        assert listener is not None
        await until(lambda: listener.connected, "listener connected")
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            yield running, Client(channel)
    finally:
        await running.stop(0.5)


@pytest.fixture(scope="module")
def sql(friendship_database: None) -> Iterator[Engine]:
    engine = sa.create_engine(sqlalchemy_url(TEST_DATABASE_URL), pool_size=2)
    yield engine
    engine.dispose()


def set_score(sql: Engine, user_id: str, score: float, level: str = "stranger") -> None:
    """Another writer: plain SQL, outside any friendship server."""
    with sql.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO friendship.friendship_status (user_id, level, score)"
                " VALUES (:u, :l, :s)"
                " ON CONFLICT (user_id) DO UPDATE SET score = EXCLUDED.score,"
                " level = EXCLUDED.level"
            ),
            {"u": user_id, "s": score, "l": level},
        )


async def cached(client: Client, user_id: str) -> float:
    """Read twice; the second read must be a hit. Returns the score."""
    await client.level(user_id)
    hits = metric("friendship_level_cache_hits_total")
    score = await client.score(user_id)
    assert metric("friendship_level_cache_hits_total") == hits + 1, "second read not a hit"
    return score


async def test_a_write_through_one_server_is_seen_by_another(friendship_database: None) -> None:
    user = new_id("cache")
    async with serving() as (_, a), serving() as (_, b):
        assert await cached(a, user) == 0
        assert await cached(b, user) == 0
        score = await a.apply(user, 40)
        assert score == 20
        # Read-your-writes on the server that wrote: right away, no waiting.
        assert await a.score(user) == 20
        # The other server, with its own cache, hears of it through NOTIFY.
        await eventually(lambda: b.score(user), lambda s: s == 20, "server b's score")
        assert await cached(b, user) == 20


async def test_a_status_row_changed_by_sql_invalidates(
    friendship_database: None, sql: Engine
) -> None:
    user = new_id("cache")
    async with serving() as (_, client):
        set_score(sql, user, 10)
        await eventually(lambda: client.score(user), lambda s: s == 10, "score after insert")
        assert await cached(client, user) == 10
        set_score(sql, user, 150, "acquaintance")
        reply = await eventually(
            lambda: client.level(user), lambda r: r.score == 150, "score after update"
        )
        assert reply.next_level_score == 300  # the row's level decides next_level_score
        with sql.begin() as conn:
            conn.execute(
                sa.text("DELETE FROM friendship.friendship_status WHERE user_id = :u"),
                {"u": user},
            )
        await eventually(lambda: client.score(user), lambda s: s == 0, "score after delete")


async def test_erasure_through_one_server_is_seen_by_another(friendship_database: None) -> None:
    user = new_id("cache")
    async with serving() as (_, a), serving() as (_, b):
        await a.apply(user, 40)
        await eventually(lambda: b.score(user), lambda s: s == 20, "score before erasure")
        await cached(b, user)
        await a.internal.DeleteUserData(
            friendship_internal_pb2.DeleteUserDataRequest(user_id=user),
            metadata=bearer(INTERNAL_SCOPES), timeout=10,
        )
        assert await a.score(user) == 0
        await eventually(lambda: b.score(user), lambda s: s == 0, "score after erasure")


async def test_rule_set_activation_clears_every_entry(fresh_database_url: str) -> None:
    migrate(fresh_database_url)
    user = new_id("cache")
    async with serving(database_url=fresh_database_url) as (_, client):
        assert (await client.level(user)).next_level_score == 100
        await cached(client, user)
        # The operator command, in a process (here: an engine) of its own.
        engine = create_db_engine(
            fresh_database_url, application_name="friendship-admin", pool_size=1,
            pool_timeout_s=5, connect_timeout_s=2, statement_timeout_ms=10_000,
        )
        try:
            admin = FriendshipHandlers(
                lambda: SqlAlchemyUnitOfWork(engine),
                default_rules=RuleSet("v1", ScoreWeights(), LevelThresholds()),
            )
            rules = RuleSet("v2", ScoreWeights(), LevelThresholds(acquaintance=50, friend=90))
            await asyncio.to_thread(admin.apply_rules, rules, RuleMode.FORWARD)
        finally:
            engine.dispose()
        await eventually(
            lambda: client.level(user), lambda r: r.next_level_score == 50,
            "next_level_score of an unknown user after the rule change",
        )


async def test_listener_cut_reads_go_to_the_database_then_the_cache_resumes(
    friendship_database: None, sql: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="friendship.level_listener")
    url = make_url(TEST_DATABASE_URL)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432, free_port()).start()
    listen_url = url.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
    user = new_id("cache")
    try:
        async with serving(
            friendship_listen_database_url=listen_url,
            friendship_level_cache_ping_interval_s=0.5,
        ) as (running, client):
            listener = running.deps.level_listener
            assert listener is not None
            set_score(sql, user, 1)
            await eventually(lambda: client.score(user), lambda s: s == 1, "first score")
            await cached(client, user)

            proxy.set_mode("refuse")  # the listener's connection is cut; the pool is not
            await until(lambda: not listener.connected, "listener noticed the cut")
            assert metric("friendship_level_cache_listener_connected") == 0
            assert not running.deps.level_cache.live
            assert len(running.deps.level_cache) == 0

            # No notification can arrive now: every read goes to the database, however many
            # reconnects fail meanwhile.
            await until(lambda: listener.failed_connects >= 2, "reconnects attempted")
            hits = metric("friendship_level_cache_hits_total")
            bypassed = metric("friendship_level_cache_bypassed_total")
            set_score(sql, user, 2)
            assert await client.score(user) == 2  # at once: no stale answer
            set_score(sql, user, 3)
            assert await client.score(user) == 3
            assert metric("friendship_level_cache_hits_total") == hits
            assert metric("friendship_level_cache_bypassed_total") == bypassed + 2

            connects = listener.connects
            proxy.set_mode("forward")
            await until(lambda: listener.connected, "listener reconnected")
            assert listener.connects == connects + 1
            assert metric("friendship_level_cache_listener_connected") == 1
            assert await cached(client, user) == 3
            # One line per transition, not per failed attempt.
            lines = [r for r in caplog.records if r.name == "friendship.level_listener"]
            assert [(r.levelname, r.getMessage().split(";")[0]) for r in lines] == [
                ("WARNING", "level cache listener down"),
                ("INFO", "level cache listener reconnected"),
            ]
            set_score(sql, user, 4)  # notifications flow again
            await eventually(lambda: client.score(user), lambda s: s == 4, "score after update")
    finally:
        proxy.close()


class StallingProxy:
    """Forwards TCP until `stall()`: from then on nothing passes either way, and nothing is
    closed (a peer that went silent: no RST, no FIN)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._flowing: asyncio.Event | None = None

    def start(self) -> StallingProxy:
        self._thread.start()
        self._run(self._listen())
        return self

    def stall(self) -> None:
        self._run(self._set_flowing(False))

    def resume(self) -> None:
        self._run(self._set_flowing(True))

    def close(self) -> None:
        self._run(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def _run(self, coro: Any) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(5)

    async def _listen(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _set_flowing(self, flowing: bool) -> None:
        assert self._flowing is not None
        if flowing:
            self._flowing.set()
        else:
            self._flowing.clear()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        flowing = self._flowing
        assert flowing is not None
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    await flowing.wait()
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def test_a_silent_listener_connection_is_noticed_by_its_ping(
    friendship_database: None, sql: Engine
) -> None:
    url = make_url(TEST_DATABASE_URL)
    proxy = StallingProxy((url.host or "127.0.0.1", url.port or 5432)).start()
    listen_url = url.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
    user = new_id("cache")
    try:
        async with serving(
            friendship_listen_database_url=listen_url,
            friendship_level_cache_ping_interval_s=0.3,
        ) as (running, client):
            listener = running.deps.level_listener
            assert listener is not None
            await cached(client, user)
            proxy.stall()  # notifications would now be held back: the ping must notice
            await until(lambda: not listener.connected, "listener noticed the silence")
            set_score(sql, user, 7)
            assert await client.score(user) == 7  # read through
            proxy.resume()
            await until(lambda: listener.connected, "listener reconnected")
            assert await cached(client, user) == 7
    finally:
        proxy.close()
