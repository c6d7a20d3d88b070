"""Fixtures shared by the whole test tree."""

from __future__ import annotations

import contextlib

import pytest

from bot.app import OABot
from bot.config import Settings
from emulator.pytest_plugin import emulator  # noqa: F401  (fixture)
from emulator.testing import run_client
from storage import db


@pytest.fixture
async def sessions(tmp_path):
    """A session factory on a fresh, fully migrated SQLite file."""
    engine = db.create_engine(f"sqlite+aiosqlite:///{tmp_path}/test.db")
    await db.upgrade(engine)
    yield db.session_factory(engine)
    await engine.dispose()


@pytest.fixture
def start_bot(emulator):  # noqa: F811
    """`async with start_bot(settings) as bot:` runs the real bot against the emulator."""

    @contextlib.asynccontextmanager
    async def start(settings: Settings):
        bot = OABot(settings)
        async with run_client(bot, emulator, timeout=60):
            yield bot

    return start
