"""Helpers for tests: point discord.py at an emulator, run a client against it, and the pytest fixture logic."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, TypeVar

import yarl

from .core import Emulator

if TYPE_CHECKING:
    import discord

ClientT = TypeVar("ClientT", bound="discord.Client")


def point_discord_at(emu: Emulator) -> Callable[[], None]:
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
    client: ClientT, emu: Emulator, *, timeout: float = 10.0, guild_ready_timeout: float | None = 0.05
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


async def _wait_ready(client: discord.Client, task: asyncio.Task, timeout: float) -> None:
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
    """An emulator for one test; on exit it fails the test if the client hit a route the emulator lacks."""
    emu = Emulator(**kwargs)
    await emu.start()
    try:
        yield emu
    finally:
        await emu.stop()
    assert emu.unknown_routes == [], f"the client called routes the emulator does not implement: {emu.unknown_routes}"
