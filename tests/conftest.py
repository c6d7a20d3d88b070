"""Fixtures shared by the whole test tree."""

from __future__ import annotations

import pytest

from storage import db


@pytest.fixture
async def sessions(tmp_path):
    """A session factory on a fresh, fully migrated SQLite file."""
    engine = db.create_engine(f"sqlite+aiosqlite:///{tmp_path}/test.db")
    await db.upgrade(engine)
    yield db.session_factory(engine)
    await engine.dispose()
