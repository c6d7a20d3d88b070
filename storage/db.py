"""Engine, sessions and schema upgrades for SQLite (aiosqlite) and PostgreSQL (asyncpg)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, exc, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.util import await_only

# How long a request waits for the database (a lock another program holds, a server restarting) before
# it fails with DatabaseUnavailable: [database] busy_timeout_seconds.
DEFAULT_BUSY_TIMEOUT = 30.0


class DatabaseUnavailable(Exception):
    """The database did not answer in time: locked by another program, or its server down."""


# What opening a database may raise that a user can fix (a server down, a folder that cannot be created,
# a locked or foreign file): the CLI prints describe_error() on one line.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (OSError, exc.SQLAlchemyError, DatabaseUnavailable)


def describe_error(error: BaseException) -> str:
    """One line saying what went wrong, without SQLAlchemy's background links and the SQL."""
    if isinstance(error, exc.DBAPIError) and error.orig is not None:
        error = error.orig
    if isinstance(error, OSError) and error.strerror:
        where = f" ({error.filename})" if error.filename else ""
        return f"{error.strerror}{where}"
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def is_unavailable(error: BaseException) -> bool:
    """Whether ``error`` means the database was out of reach for a while (not a bug, not bad input): a
    lock that outlasted the busy timeout, a server that went away (the transaction was rolled back) or
    did not come back in time, or one of two deadlocked transactions. The same work may succeed later."""
    if isinstance(error, DatabaseUnavailable | exc.TimeoutError | exc.DisconnectionError):
        return True
    if not isinstance(error, exc.DBAPIError):
        return False
    # PostgreSQL's codes: connection lost (08...), server shutting down or starting up (57P...), deadlock.
    sqlstate = getattr(error.orig, "sqlstate", None) or ""
    return (error.connection_invalidated or sqlstate.startswith(("08", "57P")) or sqlstate == "40P01"
            or any(sign in str(error.orig) for sign in ("database is locked", "database table is locked")))


def _prepare_sqlite_path(url: str) -> None:
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() == "sqlite" and database and database != ":memory:":
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def create_engine(url: str, *, echo: bool = False, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> AsyncEngine:
    """An async engine. On SQLite every connection runs in WAL mode with foreign keys enforced, and a
    writer waits up to ``busy_timeout`` seconds for a lock another program holds. On PostgreSQL a pooled
    connection is checked before use (a restarted server ended it) and a new one waits up to
    ``busy_timeout`` seconds for the server to accept it."""
    _prepare_sqlite_path(url)
    backend = make_url(url).get_backend_name()
    engine = create_async_engine(url, echo=echo, pool_pre_ping=backend == "postgresql")
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

    elif engine.dialect.name == "postgresql":
        _wait_for_server(engine, busy_timeout)
    return engine


def _wait_for_server(engine: AsyncEngine, seconds: float) -> None:
    """Once the server has been reached, new connections wait for it when it refuses them (stopped, or
    starting up after a restart) rather than failing the request at once. Before that, a server that is
    not there fails at once: a wrong address or port is reported without a wait."""
    import asyncpg

    refused = (OSError, asyncpg.CannotConnectNowError, asyncpg.ConnectionDoesNotExistError)
    reached = False

    @event.listens_for(engine.sync_engine, "do_connect")
    def _connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        nonlocal reached
        deadline = time.monotonic() + seconds
        pause = 0.1
        while True:
            left = deadline - time.monotonic()
            try:
                # A server that does not answer at all (no refusal) must not hold the request longer either.
                connection = dialect.connect(*cargs, **{"timeout": max(left, 1.0), **cparams})
                reached = True
                return connection
            except refused as error:
                if not reached:
                    raise
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DatabaseUnavailable(f"the database server did not answer for {seconds:g} s: "
                                              f"{describe_error(error)}") from error
                # Connections are made inside SQLAlchemy's greenlet: this sleeps on the event loop.
                await_only(asyncio.sleep(min(pause, left)))
                pause = min(pause * 2, 1.0)


class _TaskReentrantLock:
    """An asyncio lock that the task holding it may take again (a write transaction opened inside
    another of the same task must not wait for itself)."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None
        # When a write last succeeded (or the idle lock was taken): writers queueing without progress for
        # the busy timeout mean a stuck database, not a busy one.
        self._progress = time.monotonic()
        self._waiting = 0

    @contextlib.asynccontextmanager
    async def hold(self, wait: float) -> AsyncIterator[None]:
        """Raises DatabaseUnavailable when no write succeeded for ``wait`` seconds while writers queue: the
        database is stuck (a lock another program holds). A long queue that moves is only busy, and its
        writers keep their turn (a waiter that gave up and came back would go to the end of it)."""
        task = asyncio.current_task()
        if task is not None and self._owner is task:
            yield
            return
        if not self._lock.locked() and self._waiting == 0:
            # A free lock, the common case: taken at once, without a task to watch the wait. Its stall clock
            # starts now.
            self._progress = time.monotonic()
            await self._lock.acquire()
        else:
            await self._wait_for_turn(wait)
        self._owner = task
        try:
            yield
            self._progress = time.monotonic()
        finally:
            self._owner = None
            self._lock.release()

    async def _wait_for_turn(self, wait: float) -> None:
        self._waiting += 1
        acquiring = asyncio.ensure_future(self._lock.acquire())
        try:
            while True:
                stalled = time.monotonic() - self._progress
                if stalled >= wait and not acquiring.done():
                    raise DatabaseUnavailable(f"no write succeeded for {wait:g} s")
                done, _ = await asyncio.wait({acquiring}, timeout=max(wait - stalled, 0.05))
                if done:
                    break
        except BaseException:
            if acquiring.done() and not acquiring.cancelled() and acquiring.exception() is None:
                self._lock.release()
            else:
                acquiring.cancel()
            raise
        finally:
            self._waiting -= 1


class SerialWriteSessions(async_sessionmaker[AsyncSession]):
    """SQLite takes one writer at a time, and writers that find the lock taken sleep in SQLite's busy
    handler (1 to 100 ms naps): under load they wake in no order, and a click waits seconds. So on
    SQLite a process runs its write transactions (``begin()``) one after another, first come first
    served, waiting on the event loop; reads (plain sessions) stay concurrent in WAL mode.

    While another program holds the lock, the writers queue here: each waits at most ``busy_timeout``
    for its turn, then at most as long again in SQLite's busy handler."""

    def __init__(self, engine: AsyncEngine, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT, **kwargs: Any) -> None:
        super().__init__(engine, **kwargs)
        self._writer = _TaskReentrantLock()
        self._wait = busy_timeout

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncSession]:  # type: ignore[override]
        async with self._writer.hold(self._wait), super().begin() as session:
            yield session


def session_factory(engine: AsyncEngine, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT
                    ) -> async_sessionmaker[AsyncSession]:
    if engine.dialect.name == "sqlite":
        return SerialWriteSessions(engine, busy_timeout=busy_timeout, expire_on_commit=False)
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config() -> Config:
    """Alembic's configuration from the installed `migrations` package; no alembic.ini needed."""
    config = Config()
    config.set_main_option("script_location", str(resources.files("migrations")))
    return config


def _run(connection: Connection, action: str, revision: str | None) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    if action == "upgrade":
        command.upgrade(config, revision or "head")
    elif action == "downgrade":
        command.downgrade(config, revision or "-1")
    else:
        raise ValueError(action)


# Any constant both processes agree on: the advisory lock that serialises schema upgrades.
_MIGRATION_LOCK_KEY = 0x0AB07001


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    async with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            # Several bot processes (shards) may start together on one database: the first upgrades, the
            # others wait for its commit and find nothing left to do.
            await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
        await connection.run_sync(_run, "upgrade", revision)


async def downgrade(engine: AsyncEngine, revision: str = "-1") -> None:
    async with engine.begin() as connection:
        await connection.run_sync(_run, "downgrade", revision)


def write_revision(connection: Connection, message: str) -> None:
    """Autogenerate a revision file into the source tree's migrations/versions (developers only)."""
    config = alembic_config()
    config.attributes["connection"] = connection
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    # Numbered revisions read in order in a directory listing.
    existing = list(ScriptDirectory.from_config(config).walk_revisions())
    command.revision(config, message=message, autogenerate=True, rev_id=f"{len(existing) + 1:04d}")


def _revisions(connection: Connection) -> tuple[str | None, str | None]:
    current = MigrationContext.configure(connection).get_current_revision()
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    return current, head


async def current_revision(engine: AsyncEngine) -> tuple[str | None, str | None]:
    """(the database's revision, the newest revision this code knows)."""
    async with engine.connect() as connection:
        return await connection.run_sync(_revisions)


def run_sync(coro: Any) -> Any:
    return asyncio.run(coro)
