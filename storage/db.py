"""Engine, sessions and schema upgrades for SQLite (aiosqlite) and PostgreSQL (asyncpg)."""

from __future__ import annotations

import asyncio
import contextlib
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

# What opening a database may raise that a user can fix (a server down, a folder that cannot be created,
# a locked or foreign file): the CLI prints describe_error() on one line.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (OSError, exc.SQLAlchemyError)


def describe_error(error: BaseException) -> str:
    """One line saying what went wrong, without SQLAlchemy's background links and the SQL."""
    if isinstance(error, exc.DBAPIError) and error.orig is not None:
        error = error.orig
    if isinstance(error, OSError) and error.strerror:
        where = f" ({error.filename})" if error.filename else ""
        return f"{error.strerror}{where}"
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _prepare_sqlite_path(url: str) -> None:
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() == "sqlite" and database and database != ":memory:":
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def create_engine(url: str, *, echo: bool = False, busy_timeout_ms: int = 5000) -> AsyncEngine:
    """An async engine; on SQLite every connection runs in WAL mode with foreign keys enforced."""
    _prepare_sqlite_path(url)
    engine = create_async_engine(url, echo=echo)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

    return engine


class _TaskReentrantLock:
    """An asyncio lock that the task holding it may take again (a write transaction opened inside
    another of the same task must not wait for itself)."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        task = asyncio.current_task()
        if task is not None and self._owner is task:
            yield
            return
        async with self._lock:
            self._owner = task
            try:
                yield
            finally:
                self._owner = None


class SerialWriteSessions(async_sessionmaker[AsyncSession]):
    """SQLite takes one writer at a time, and writers that find the lock taken sleep in SQLite's busy
    handler (1 to 100 ms naps): under load they wake in no order, and a click waits seconds. So on
    SQLite a process runs its write transactions (``begin()``) one after another, first come first
    served, waiting on the event loop; reads (plain sessions) stay concurrent in WAL mode."""

    def __init__(self, engine: AsyncEngine, **kwargs: Any) -> None:
        super().__init__(engine, **kwargs)
        self._writer = _TaskReentrantLock()

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncSession]:  # type: ignore[override]
        async with self._writer.hold(), super().begin() as session:
            yield session


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    if engine.dialect.name == "sqlite":
        return SerialWriteSessions(engine, expire_on_commit=False)
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
