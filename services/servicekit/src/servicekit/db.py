"""PostgreSQL plumbing: engines with timeouts, database creation, migrations, blocking calls."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import ConnectionPoolEntry, QueuePool

if TYPE_CHECKING:
    from servicekit.settings import BaseServiceSettings

log = logging.getLogger(__name__)
T = TypeVar("T")


def sqlalchemy_url(url: str) -> URL:
    """DATABASE_URL with the psycopg2 driver made explicit.

    SQLAlchemy 2.1 maps a bare `postgresql://` to psycopg 3, which is not installed
    (the design card's driver is psycopg2).
    """
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed


# Labelled by pool name (the engine's application_name: "ingest", "ingest-relay", ...).
DB_POOL_IN_USE = Gauge("db_pool_in_use", "Connections checked out of the pool", ["pool"])
DB_POOL_WAITS = Counter(
    "db_pool_waits_total", "Checkouts that found every connection busy and waited", ["pool"]
)
DB_POOL_WAIT_SECONDS = Histogram(
    "db_pool_wait_seconds",
    "Time a checkout waited for a busy pool",
    ["pool"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10),
)
DB_POOL_TIMEOUTS = Counter(
    "db_pool_timeouts_total", "Checkouts that gave up after DB_POOL_TIMEOUT_S", ["pool"]
)


class MeteredQueuePool(QueuePool):
    """A QueuePool that counts the checkouts which had to wait for a connection."""

    pool_name = "db"

    def _do_get(self) -> ConnectionPoolEntry:
        # Every connection out and no overflow left: this checkout queues (approximate
        # under races, exact enough for a rate).
        if self.checkedout() < self.size() + max(self._max_overflow, 0):
            return super()._do_get()
        DB_POOL_WAITS.labels(self.pool_name).inc()
        started = time.perf_counter()
        try:
            return super()._do_get()
        except sa_exc.TimeoutError:
            DB_POOL_TIMEOUTS.labels(self.pool_name).inc()
            raise
        finally:
            DB_POOL_WAIT_SECONDS.labels(self.pool_name).observe(time.perf_counter() - started)


def _metered_pool_class(name: str) -> type[MeteredQueuePool]:
    # A class per name: Engine.dispose() recreates the pool from its class.
    return type("MeteredQueuePool", (MeteredQueuePool,), {"pool_name": name})


_ENGINES_BY_POOL: dict[str, weakref.WeakSet[Engine]] = {}


def _count_in_use(engine: Engine, name: str) -> None:
    """db_pool_in_use{pool=name} reads the pools' own count at scrape time.

    (Counting checkout/checkin events drifts: a checkout whose pre-ping fails is checked in
    without a checkout event.) Engines of one name in one process add up.
    """
    engines = _ENGINES_BY_POOL.get(name)
    if engines is None:
        engines = _ENGINES_BY_POOL[name] = weakref.WeakSet()
        live = engines
        DB_POOL_IN_USE.labels(name).set_function(
            lambda: sum(_checked_out(e) for e in list(live))
        )
        DB_POOL_WAITS.labels(name)  # exported at 0 from the start
    engines.add(engine)


def _checked_out(engine: Engine) -> int:
    pool = engine.pool
    return pool.checkedout() if isinstance(pool, QueuePool) else 0


class DatabaseUnavailable(Exception):
    """The database did not answer in time or refused us; callers answer UNAVAILABLE."""


def create_db_engine(
    url: str,
    *,
    application_name: str,
    pool_size: int,
    pool_timeout_s: float,
    connect_timeout_s: int,
    statement_timeout_ms: int,
    ping_after_idle_s: float = 1.0,
) -> Engine:
    """An engine whose every wait is bounded: connect, pool checkout, statement, idle tx.

    A pooled connection is pinged before use only if it sat idle longer than
    `ping_after_idle_s` (0: before every use); see ping_idle_connections.
    """
    options = (
        f"-c statement_timeout={statement_timeout_ms}"
        f" -c lock_timeout={statement_timeout_ms}"
        f" -c idle_in_transaction_session_timeout={max(statement_timeout_ms * 4, 10000)}"
    )
    engine = sa.create_engine(
        sqlalchemy_url(url),
        poolclass=_metered_pool_class(application_name),
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=pool_timeout_s,
        # LIFO: the busy few connections stay hot; the others age, get pinged when next used
        # and recycled after pool_recycle.
        pool_use_lifo=True,
        pool_recycle=1800,
        connect_args={
            "connect_timeout": connect_timeout_s,
            "application_name": application_name,
            "options": options,
            # Notice a dead peer instead of waiting on a half-open socket forever.
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
        },
    )
    ping_idle_connections(engine, ping_after_idle_s)
    _count_in_use(engine, application_name)
    return engine


def ping_idle_connections(engine: Engine, after_idle_s: float) -> None:
    """Ping a pooled connection at checkout only if it was idle longer than `after_idle_s`.

    SQLAlchemy's pool_pre_ping costs a round trip on every checkout: a third of a one-statement
    unit of work (make bench). A connection used within the last second is taken as alive; if
    the server went away meanwhile, the statement fails with a disconnect, SQLAlchemy
    invalidates the whole pool, and the caller gets UNAVAILABLE once (callers retry: the robot,
    the analyzer's retry queue). A connection idle for longer, where a restart, failover or an
    idle cut by a proxy is likely, is pinged and replaced if dead, as with pool_pre_ping.
    """

    @sa.event.listens_for(engine.pool, "checkin")
    def _idle_since(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @sa.event.listens_for(engine.pool, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < after_idle_s:
            return  # new, or used a moment ago
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            if not engine.dialect.is_disconnect(exc, dbapi_connection, None):
                raise
            alive = False
        if not alive:
            # The pool discards this connection and checks out (or opens) another.
            raise sa_exc.DisconnectionError("pooled connection was dead")


def engine_from_settings(
    settings: BaseServiceSettings, application_name: str, pool_size: int | None = None
) -> Engine:
    """create_db_engine with the service's DB_* settings (pool_size defaults to DB_POOL_SIZE)."""
    return create_db_engine(
        settings.database_url,
        application_name=application_name,
        pool_size=settings.db_pool_size if pool_size is None else pool_size,
        pool_timeout_s=settings.db_pool_timeout_s,
        connect_timeout_s=settings.db_connect_timeout_s,
        statement_timeout_ms=settings.db_statement_timeout_ms,
        ping_after_idle_s=settings.db_ping_after_idle_s,
    )


def ensure_database(url: str, connect_timeout_s: int = 5) -> None:
    """Create the database named in `url` if it does not exist (CONTRACT.md local default)."""
    target = sqlalchemy_url(url)
    name = target.database
    if not name:
        raise ValueError("DATABASE_URL names no database")
    admin = sa.create_engine(
        target.set(database="postgres"),
        isolation_level="AUTOCOMMIT",
        poolclass=sa.pool.NullPool,
        connect_args={"connect_timeout": connect_timeout_s},
    )
    try:
        with admin.connect() as conn:
            exists = conn.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            ).scalar()
            if not exists:
                try:
                    conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
                    log.info("database created", extra={"database": name})
                except sa_exc.ProgrammingError as exc:
                    # Another service created it at the same moment.
                    if "already exists" not in str(exc):
                        raise
    finally:
        admin.dispose()


def migrate(url: str, script_location: str, schema: str) -> None:
    """Create the database and schema if missing, then upgrade to head.

    Each service keeps its own alembic version table inside its own schema.
    """
    from alembic import command
    from alembic.config import Config

    ensure_database(url)
    engine = sa.create_engine(sqlalchemy_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            # Two services migrating at once must not race on the same schema.
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:s))"), {"s": schema})
            config = Config()
            config.set_main_option("script_location", script_location)
            config.attributes["connection"] = conn
            config.attributes["schema"] = schema
            command.upgrade(config, "head")
    finally:
        engine.dispose()


def run_alembic_env(target_metadata: sa.MetaData | None) -> None:
    """The body of every service's migrations/env.py (online mode only)."""
    from alembic import context

    config = context.config
    connection = config.attributes["connection"]
    schema = config.attributes["schema"]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table_schema=schema,
        include_schemas=True,
    )
    with context.begin_transaction():
        context.run_migrations()


_UNAVAILABLE_ERRORS = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)


class BlockingRunner:
    """Runs blocking DB work off the event loop, in threads no more numerous than the pool.

    Every call has a deadline: a hung statement or an unreachable server turns into
    DatabaseUnavailable instead of a hang, and the thread is freed by the statement or
    connect timeout of the engine.
    """

    def __init__(self, workers: int, timeout_s: float, name: str = "db") -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._timeout_s = timeout_s

    async def __call__(self, fn: Callable[..., T], *args: Any, timeout_s: float | None = None) -> T:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, functools.partial(fn, *args))
        try:
            return await asyncio.wait_for(future, timeout_s or self._timeout_s)
        except TimeoutError as exc:
            raise DatabaseUnavailable("database call timed out") from exc
        except _UNAVAILABLE_ERRORS as exc:
            cause = getattr(exc, "orig", None) or exc
            raise DatabaseUnavailable(f"database error: {type(cause).__name__}") from exc

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


def runner_from_settings(settings: BaseServiceSettings, name: str) -> BlockingRunner:
    """As many threads as pooled connections (DB_POOL_SIZE), each call within
    DB_CALL_TIMEOUT_S: a DB call never queues for a connection behind the thread pool, and
    never holds a thread without one."""
    return BlockingRunner(settings.db_pool_size, settings.db_call_timeout_s, name=name)


def check_pool_fits(pool_size: int, concurrency: int, what: str) -> None:
    """Refuse at start-up a pool smaller than the concurrency that draws on it."""
    if pool_size < concurrency:
        raise ValueError(
            f"DB_POOL_SIZE={pool_size} is smaller than {what}={concurrency}: "
            "work would queue for connections; raise the pool or lower the concurrency"
        )
