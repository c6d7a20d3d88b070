"""Fixtures for the cogs' end-to-end tests: the real bot against the Discord emulator, and a dump of
the database to prove that a refused call changed nothing."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from sqlalchemy import select

from bot.app import OABot
from bot.config import Settings
from emulator.pytest_plugin import emulator  # noqa: F401  (fixture)
from emulator.testing import run_client
from storage.models import Base


@pytest.fixture
def start_bot(emulator):  # noqa: F811
    """`async with start_bot(settings) as bot:` runs the real bot against the emulator."""

    @contextlib.asynccontextmanager
    async def start(settings: Settings):
        bot = OABot(settings)
        async with run_client(bot, emulator, timeout=60):
            yield bot

    return start


async def database_dump(sessions: Any, *, skip: tuple[str, ...] = ("audit_log",)) -> dict[str, list[tuple]]:
    """Every row of every table (``skip`` left out), in primary-key order."""
    dump = {}
    async with sessions() as session:
        for table in Base.metadata.sorted_tables:
            if table.name in skip:
                continue
            rows = await session.execute(select(table).order_by(*table.primary_key.columns))
            dump[table.name] = [tuple(row) for row in rows]
    return dump
