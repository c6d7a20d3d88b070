"""A private PostgreSQL server for a test that stops and starts it (the shared test server must stay up).

Debian's binaries (/usr/lib/postgresql/*/bin, as .ci/postgres uses them) or those on PATH; run as the
`postgres` user when the test runs as root (initdb refuses root). ``server_binaries()`` is None where
there are none: such tests skip, except in CI (OABOT_TEST_POSTGRES_URL set), where they must run.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.faults.shard_cluster import SERVER


def server_binaries() -> Path | None:
    """The folder holding initdb and pg_ctl, or None."""
    def version(folder: Path) -> int:
        return int(folder.parent.name) if folder.parent.name.isdigit() else 0

    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).parent)
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    return None


def require_server_binaries() -> Path:
    """The binaries, else a skip (a failure where a PostgreSQL server is expected: CI)."""
    binaries = server_binaries()
    if binaries is None:
        why = "no PostgreSQL server binaries (initdb, pg_ctl) to start a private server"
        if SERVER is not None:
            pytest.fail(f"{why}, but OABOT_TEST_POSTGRES_URL is set: this test must run here")
        pytest.skip(why)
    return binaries


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostgresServer:
    """A server in ``folder`` (initialised by ``init()``): ``start()``, ``stop()`` (a fast shutdown ends every
    session, as when an operator restarts the server) and ``start()`` again on the same port."""

    def __init__(self, binaries: Path, folder: Path) -> None:
        self.binaries, self.folder = binaries, folder
        self.data = folder / "data"
        self.port = _free_port()
        self.running = False

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://oabot@127.0.0.1:{self.port}/postgres"

    async def _run(self, *command: str) -> None:
        line = shlex.join(command)
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
            command = ("su", "postgres", "-s", "/bin/sh", "-c", line)
        process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE,
                                                       stderr=asyncio.subprocess.STDOUT)
        output, _ = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"{line} failed ({process.returncode}): {output.decode(errors='replace')[-2000:]}")

    async def init(self) -> None:
        await self._run(str(self.binaries / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "oabot")

    async def start(self) -> None:
        options = f"-k {self.folder} -p {self.port} -c listen_addresses=127.0.0.1 -c fsync=off"
        await self._run(str(self.binaries / "pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "server.log"),
                        "-w", "-o", options, "start")
        self.running = True

    async def stop(self, mode: str = "fast") -> None:
        await self._run(str(self.binaries / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")
        self.running = False


@asynccontextmanager
async def private_server() -> AsyncIterator[PostgresServer]:
    """A started server of its own, removed afterwards. Its folder is outside pytest's tmp_path, which the
    postgres user cannot enter."""
    server = PostgresServer(require_server_binaries(), Path(tempfile.mkdtemp(prefix="oabot-pg-outage.")))
    try:
        await server.init()
        await server.start()
        yield server
    finally:
        if server.running:
            await server.stop("immediate")
        shutil.rmtree(server.folder, ignore_errors=True)
