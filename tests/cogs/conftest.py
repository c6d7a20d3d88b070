"""For the cogs' end-to-end tests (the real bot comes from tests/conftest.py `start_bot`): a dump of
the database to prove that a refused call changed nothing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from storage.models import Base


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
