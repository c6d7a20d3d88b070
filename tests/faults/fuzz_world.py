"""The world of the fuzz tests: the emulator and the real bot on an event loop in a thread, so Hypothesis
drives them from ordinary (synchronous) tests; hostile texts; and what every example must show: the bot
answered (no missed interaction), logged no error (no unhandled exception), and every message it sent or
edited carries allowed_mentions that ping nobody.

Each world runs on SQLite, and on a fresh PostgreSQL database when OABOT_TEST_POSTGRES_URL gives a server
(``DATABASES``, the params of a module-scoped ``world`` fixture). FAULTS_FUZZ_SCALE multiplies every
example count (default 1, sized for a 2-core machine), e.g. FAULTS_FUZZ_SCALE=20 for a long run.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from bot.app import OABot
from emulator import Emulator
from emulator.testing import run_client
from tests.cogs.labelling.posts.conftest import posts_settings
from tests.faults.shard_cluster import fresh_database, needs_postgres

DATABASES = ["sqlite", pytest.param("postgresql", marks=needs_postgres)]
SCALE = max(1, int(os.environ.get("FAULTS_FUZZ_SCALE", "1")))


def fuzz_settings(examples: int) -> settings:
    return settings(max_examples=examples * SCALE, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


class World:
    """The emulator and the real bot on an event loop in a thread."""

    def __init__(self, tmp_path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.errors: list[str] = []
        self.tmp_path = tmp_path

    def run(self, coro, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def start(self, channels: tuple[str, ...], database_url: str) -> None:
        self.emu = Emulator()
        await self.emu.start()
        self.guild = await self.emu.create_guild("Fuzz", channels=["general", "tasks", *channels])
        self.role = await self.emu.create_role(self.guild, "helpers", mentionable=True)
        self.mod = await self.emu.create_user("mod", guild=self.guild, moderator=True)
        self.member = await self.emu.create_user("member", guild=self.guild)
        self.mallory = await self.emu.create_user("mallory", guild=self.guild)
        settings = posts_settings(self.tmp_path)
        self.bot = OABot(settings.model_copy(update={"database": settings.database.model_copy(
            update={"url": database_url})}))
        self.client = run_client(self.bot, self.emu, timeout=60)
        await self.client.__aenter__()
        # Everyone exists in the database (first contact), so a refusal has nothing to create.
        for user in (self.mod, self.member, self.mallory):
            await (await user.slash("profile")).wait_response(timeout=10)

    async def stop(self) -> None:
        await self.client.__aexit__(None, None, None)
        await self.emu.stop()

    @property
    def sessions(self) -> Any:
        return self.bot.services.sessions


class ErrorLog(logging.Handler):
    def __init__(self, world: World) -> None:
        super().__init__(logging.ERROR)
        self.world = world

    def emit(self, record: logging.LogRecord) -> None:
        self.world.errors.append(record.getMessage()[:500])


def running_world(tmp_path, database: str, *, channels: tuple[str, ...] = (),
                  prepare: Callable[[World], Awaitable[None]] | None = None) -> Iterator[World]:
    """For a module-scoped fixture: a started world on ``database`` ("sqlite" or "postgresql"; ``prepare``
    runs on its loop), stopped afterwards."""
    world = World(tmp_path)
    world.database = database
    handler = ErrorLog(world)
    logging.getLogger().addHandler(handler)
    server_database = fresh_database() if database == "postgresql" else None
    try:
        url = (world.run(server_database.__aenter__()) if server_database is not None
               else f"sqlite+aiosqlite:///{tmp_path}/bot.db")
        world.run(world.start(channels, url))
        if prepare is not None:
            world.run(prepare(world), timeout=120)
        yield world
        world.run(world.stop())
    finally:
        if server_database is not None:
            world.run(server_database.__aexit__(None, None, None))
        logging.getLogger().removeHandler(handler)
        world.loop.call_soon_threadsafe(world.loop.stop)
        world.thread.join(10)


def hostile_texts(world: World) -> st.SearchStrategy[str]:
    tricky = [
        "@everyone", "@here", f"<@{world.member.id}>", f"<@!{world.mod.id}>", f"<@&{world.role.id}>",
        f"<@&{world.guild.id}>", "**bold** __under__ ~~gone~~ `code` ```py\nx\n``` ||spoiler|| # Title\n> quote",
        "\u200b" * 40, "\u202eoverride", "\x00\x01\x07\x1b[31mred\x7f", "\r\n\t" * 20, "a" * 10_000,
        "<#1> <:emoji:1> <t:0:R> [link](https://example.com/@everyone)", "", " ", "ünïcödé 👍🏽 中文",
        # Numbers where an id may be read: beyond 32 bits (our row ids), beyond 64 bits, negative.
        "2147483648", "#99999999999", "18446744073709551616", "-1",
    ]
    pieces = st.one_of(st.sampled_from(tricky), st.text(max_size=60))
    return st.lists(pieces, min_size=1, max_size=4).map("".join)


def mentions_allowed(call_body: Any) -> list[Any]:
    """Payloads with text the bot sent that would ping someone (allowed_mentions missing or allowing it)."""
    found = []

    def walk(node: Any, allowed: Any) -> None:
        if isinstance(node, dict):
            allowed = node.get("allowed_mentions", allowed)
            if ("content" in node or "embeds" in node) and (
                    allowed is None or allowed.get("parse") or allowed.get("users") or allowed.get("roles")
                    or allowed.get("replied_user")):
                if any(token in json.dumps(node) for token in ("@everyone", "@here", "<@")):
                    found.append(node)
            for value in node.values():
                walk(value, allowed)
        elif isinstance(node, list):
            for value in node:
                walk(value, allowed)

    walk(call_body, None)
    return found


async def answered(world: World, interaction: Any) -> Any:
    response = await interaction.wait_response(timeout=15)
    if response.kind == "deferred":
        await interaction.wait_message(timeout=30)
    assert 10062 not in interaction.errors and 40060 not in interaction.errors
    return response


def check_world(world: World, calls_before: int) -> None:
    world.run(world.bot.get_cog("Posts").wait_for_edits())
    assert world.errors == [], world.errors
    pinging = [p for call in list(world.emu.calls)[calls_before:] for p in mentions_allowed(call.body)]
    assert pinging == [], pinging[:2]
