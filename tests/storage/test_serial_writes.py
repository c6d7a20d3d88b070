"""SQLite write transactions of one process run one after another, in arrival order, on the event loop."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from storage.db import SerialWriteSessions
from storage.models import User


async def test_writers_take_turns_in_order_and_a_nested_writer_does_not_wait_for_itself(sessions):
    assert isinstance(sessions, SerialWriteSessions)
    order: list[str] = []

    async def writer(name: str, hold: float) -> None:
        async with sessions.begin() as session:
            order.append(f"{name}+")
            session.add(User(discord_id=hash(name) & 0xFFFFFFFF, display_name=name))
            await asyncio.sleep(hold)  # another writer would now nap in SQLite's busy handler
            order.append(f"{name}-")

    await asyncio.gather(writer("a", 0.05), writer("b", 0.0), writer("c", 0.0))
    assert order == ["a+", "a-", "b+", "b-", "c+", "c-"]

    async with sessions.begin() as outer:
        outer.add(User(discord_id=1, display_name="outer"))
        async with asyncio.timeout(5), sessions.begin() as inner:  # the same task: no deadlock on our lock
            assert await inner.scalar(select(func.count()).select_from(User)) == 3
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(User)) == 4
