from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from storage import db
from storage.models import User
from storage.users import get_or_create_user


async def test_get_or_create_user_is_idempotent_under_races(tmp_path):
    engine = db.create_engine(f"sqlite+aiosqlite:///{tmp_path}/u.db")
    await db.upgrade(engine)
    sessions = db.session_factory(engine)

    async def touch(name: str) -> int:
        async with sessions() as session:
            user = await get_or_create_user(session, 77, display_name=name)
            await session.commit()
            return user.id

    ids = await asyncio.gather(*(touch(f"n{i}") for i in range(5)))
    assert len(set(ids)) == 1
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(User)) == 1
        assert (await session.scalar(select(User))).display_name.startswith("n")
    await engine.dispose()
