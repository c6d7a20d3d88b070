"""Users by Discord id, created on first contact; safe when two events race for the same user."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Base, User


def insert_ignoring_conflicts(session: AsyncSession, model: type[Base], **values: Any) -> Any:
    """An INSERT that does nothing when a unique constraint already holds the row (SQLite, PostgreSQL)."""
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(model).values(**values).on_conflict_do_nothing()


async def get_or_create_user(
    session: AsyncSession, discord_id: int, *, display_name: str | None = None, locale: str | None = None
) -> User:
    user = await session.scalar(select(User).where(User.discord_id == discord_id))
    if user is None:
        await session.execute(
            insert_ignoring_conflicts(
                session, User, discord_id=discord_id, display_name=display_name or "", locale=locale or "en"
            )
        )
        user = await session.scalar(select(User).where(User.discord_id == discord_id))
        assert user is not None
    elif display_name and user.display_name != display_name:
        user.display_name = display_name
    return user
