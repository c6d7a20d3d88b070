"""Helpers for tests: point discord.py at an emulator, run a client against it, and the pytest fixture logic."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

import yarl

from .core import Emulator

if TYPE_CHECKING:
    import discord

ClientT = TypeVar("ClientT", bound="discord.Client")
REPO_ROOT = Path(__file__).resolve().parents[1]


class Endpoints(Protocol):
    """What a client needs to reach an emulator: an in-process `Emulator` or a `Standalone` one."""

    rest_url: str
    gateway_url: str
    token: str


@dataclass
class Standalone:
    """The endpoints a `python -m emulator` process printed (name=value lines)."""

    rest_url: str
    gateway_url: str
    control_url: str
    token: str
    application_id: int
    extra: dict[str, str]

    @classmethod
    def from_lines(cls, lines: list[str]) -> Standalone:
        values = dict(line.split("=", 1) for line in lines if "=" in line)
        known = ("rest_url", "gateway_url", "control_url", "token", "application_id")
        return cls(
            rest_url=values["rest_url"], gateway_url=values["gateway_url"], control_url=values["control_url"],
            token=values["token"], application_id=int(values["application_id"]),
            extra={k: v for k, v in values.items() if k not in known},
        )


@contextlib.asynccontextmanager
async def standalone(*args: str, timeout: float = 10.0) -> AsyncIterator[Standalone]:  # noqa: ASYNC109 (a timeout argument is this helper's API)
    """Run `python -m emulator --port 0 *args` in a subprocess for the duration of the block."""
    root = REPO_ROOT
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "emulator", "--port", "0", *args, cwd=root, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        lines: list[str] = []
        assert proc.stdout is not None
        # The URLs come first, then one line per extra value; the token line is always printed.
        async with asyncio.timeout(timeout):
            while True:
                raw = await proc.stdout.readline()
                if not raw:
                    err = await proc.stderr.read() if proc.stderr else b""
                    raise RuntimeError(f"emulator exited early: {err.decode()[-2000:]}")
                lines.append(raw.decode().strip())
                if lines[-1].startswith("application_id=") and not any(a.startswith("--guild") for a in args):
                    break
                if lines[-1].startswith("channel_id="):
                    break
        yield Standalone.from_lines(lines)
    finally:
        if proc.returncode is None:
            proc.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), timeout=5)
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


def point_discord_at(emu: Endpoints) -> Callable[[], None]:
    """Send discord.py's REST (and interaction webhooks) and gateway to the emulator; returns an undo."""
    from discord.gateway import DiscordWebSocket
    from discord.http import Route

    old_base, old_gateway = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    Route.BASE = emu.rest_url
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(emu.gateway_url)

    def undo() -> None:
        Route.BASE = old_base
        DiscordWebSocket.DEFAULT_GATEWAY = old_gateway

    return undo


@contextlib.asynccontextmanager
async def run_client(
    client: ClientT, emu: Endpoints, *, timeout: float = 10.0, guild_ready_timeout: float | None = 0.05  # noqa: ASYNC109 (a timeout argument is this helper's API)
) -> AsyncIterator[ClientT]:
    """Start `client` against `emu`, wait until it is ready (setup_hook, so command sync, ran before), yield
    it, and close it afterwards. A client that dies while starting raises here instead of hanging.

    discord.py fires on_ready only `guild_ready_timeout` (2 s by default) after the last GUILD_CREATE; the
    emulator sends them all at once, so the wait is shortened unless `guild_ready_timeout=None`.
    """
    if guild_ready_timeout is not None:
        client._connection.guild_ready_timeout = guild_ready_timeout
    undo = point_discord_at(emu)
    task = asyncio.create_task(client.start(emu.token), name="discord-client")
    try:
        await _wait_ready(client, task, timeout)
        yield client
    finally:
        await client.close()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(task, timeout=5)
        undo()


async def _wait_ready(client: discord.Client, task: asyncio.Task, timeout: float) -> None:  # noqa: ASYNC109 (a timeout argument is this helper's API)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    # discord.py creates its ready event inside start(), so poll is_ready() while watching the task.
    while not client.is_ready():
        if task.done():
            task.result()  # re-raise what killed the client
            raise RuntimeError("the client stopped before becoming ready")
        if loop.time() > deadline:
            raise TimeoutError(f"client not ready after {timeout}s")
        await asyncio.wait({task}, timeout=0.01)


@contextlib.asynccontextmanager
async def emulator_session(**kwargs) -> AsyncIterator[Emulator]:
    """An emulator for one test; on exit it fails the test if the client hit a route the emulator lacks or
    sent a request the emulator could not make sense of."""
    emu = Emulator(**kwargs)
    await emu.start()
    try:
        yield emu
    finally:
        await emu.stop()
    assert emu.unknown_routes == [], f"the client called routes the emulator does not implement: {emu.unknown_routes}"
    assert emu.internal_errors == [], f"requests the emulator could not handle: {emu.internal_errors}"
