"""Pytest fixtures for any test folder: `pytest_plugins = ["emulator.pytest_plugin"]` in its conftest.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from .core import Emulator
from .testing import emulator_session


@pytest_asyncio.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """A running emulator; teardown fails the test if any unknown route was hit."""
    async with emulator_session() as emu:
        yield emu
