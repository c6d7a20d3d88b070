"""Real bot processes (`oabot run`, as an operator starts them) sharing one PostgreSQL database and one
emulator: the harness of the shard and scheduler fault tests.

Needs a server: OABOT_TEST_POSTGRES_URL=postgresql+asyncpg://user@host:port (.ci/run starts one); every
cluster gets a database of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from storage import db

ROOT = Path(__file__).resolve().parents[2]
SERVER = os.environ.get("OABOT_TEST_POSTGRES_URL")
needs_postgres = pytest.mark.skipif(
    SERVER is None, reason="no PostgreSQL server given in OABOT_TEST_POSTGRES_URL (.ci/run starts one)")


@contextlib.asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """The URL of a new, empty database on the test server, dropped afterwards."""
    assert SERVER is not None
    name = f"oabot_faults_{uuid.uuid4().hex[:12]}"
    admin = db.create_engine(str(make_url(SERVER).set(database="postgres")))
    async with admin.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(SERVER).set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        await admin.dispose()


def config_text(emu: Any, database_url: str, *, shard_ids: list[int], shard_count: int, extra: str = "") -> str:
    """A process's config.toml: its shards of the emulator, the shared database, JSON logs at DEBUG (the
    scheduler logs each run there)."""
    return (
        f'[discord]\napi_base_url = "{emu.rest_url}"\ngateway_url = "{emu.gateway_url}"\n'
        f"shard_count = {shard_count}\nshard_ids = {shard_ids}\n"
        f'[database]\nurl = "{database_url}"\n[chat]\nenabled = false\n'
        '[logging]\nlevel = "DEBUG"\nformat = "json"\n' + extra)


@dataclass
class BotProcess:
    """One `oabot run` process; its log is JSON lines in a file."""

    name: str
    process: asyncio.subprocess.Process
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> list[dict[str, Any]]:
        entries = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                entries.append(json.loads(line))
        return entries

    def messages(self, prefix: str) -> list[tuple[datetime, str]]:
        return [(datetime.fromisoformat(e["time"]), e["message"]) for e in self.log()
                if e.get("message", "").startswith(prefix)]

    def problems(self) -> list[str]:
        """Errors and tracebacks in the log (a killed process's own end is not one)."""
        return [e["message"] + e.get("exception", "") for e in self.log()
                if e.get("level") in ("ERROR", "CRITICAL") or "exception" in e]

    async def stop(self) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(self.process.wait(), timeout=60)
        return self.process.returncode  # type: ignore[return-value]

    def kill(self) -> None:
        self.process.kill()


async def start_bot_process(name: str, workdir: Path, config: str, token: str) -> BotProcess:
    home = workdir / name
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(config)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OABOT_")}
    env["DISCORD_TOKEN"] = token
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    log_path = home / "bot.log"
    with log_path.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "import sys; from bot.cli import main; sys.exit(main())", "run", "--config",
            str(home / "config.toml"), cwd=home, env=env, stdout=log_file, stderr=log_file)
    return BotProcess(name, process, log_path)


def ready_shards(emu: Any) -> set[tuple[int, int]]:
    """The (shard, count) pairs with a connected gateway session."""
    return {session.shard for session in emu.gateway.ready_sessions}


def lease_rows(rows: Any) -> dict[str, tuple[str, datetime]]:
    return {name: (holder, expires_at) for name, holder, expires_at in rows}


def holder_pid(holder: str) -> int:
    """The process id inside a lease holder name (host:pid:token[:label])."""
    return int(holder.split(":")[1])
