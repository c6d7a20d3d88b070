"""Job leases: a periodic job runs in the process that holds its lease row, so it runs once per period
however many processes share the database.

Taking a lease is one conditional upsert: insert the row, or take it over only when it has expired or is
already ours. Both SQLite and PostgreSQL decide that atomically (PostgreSQL's ON CONFLICT DO UPDATE
re-checks the condition on the newest row version), so two processes never both win. A process that
dies keeps its leases until they expire; one that stops cleanly releases them at once.
"""

from __future__ import annotations

import os
import secrets
import socket
from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.models import JobLease, utcnow


def new_holder_id(label: str = "") -> str:
    """A name for this process, unique per start: a restarted process waits for its old leases to expire
    like any other process (it cannot know whether its predecessor's run finished)."""
    parts = [socket.gethostname()[:40], str(os.getpid()), secrets.token_hex(4)]
    if label:
        parts.append(label[:40])
    return ":".join(parts)


async def take_lease(sessions: async_sessionmaker[AsyncSession], name: str, holder: str, ttl: timedelta, *,
                     now: datetime | None = None) -> bool:
    """Hold ``name`` until now + ttl; False when another holder's lease has not expired yet."""
    now = now or utcnow()
    async with sessions.begin() as session:
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = insert(JobLease).values(name=name, holder=holder, expires_at=now + ttl)
        statement = statement.on_conflict_do_update(
            index_elements=[JobLease.name],
            set_={"holder": statement.excluded.holder, "expires_at": statement.excluded.expires_at},
            where=or_(JobLease.expires_at <= now, JobLease.holder == holder),
        ).returning(JobLease.name)
        return (await session.execute(statement)).first() is not None


async def release_leases(sessions: async_sessionmaker[AsyncSession], holder: str, *,
                         now: datetime | None = None) -> int:
    """Let other processes take this holder's leases at once (a clean shutdown); how many were held."""
    async with sessions.begin() as session:
        result = await session.execute(
            update(JobLease).where(JobLease.holder == holder).values(expires_at=now or utcnow()))
        return result.rowcount or 0
