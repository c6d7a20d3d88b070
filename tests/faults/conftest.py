"""The database a fault test runs on: a SQLite file, and a fresh PostgreSQL database when a server is given
(OABOT_TEST_POSTGRES_URL; skipped without one)."""

from __future__ import annotations

import pytest

from tests.faults.shard_cluster import fresh_database, needs_postgres


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=needs_postgres)])
async def database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/oabot.db"
        return
    async with fresh_database() as url:
        yield url
