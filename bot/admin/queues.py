"""What moderators read: the flag queue and the audit log page by page, and the trollboard with the
Discord ids needed to name people. Read-only; each call is one short read transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.labelling import moderation
from storage.models import AuditLog, ModerationFlag, User

FLAGS_PER_PAGE = 4  # one row of buttons per entry, the fifth row pages
AUDIT_PER_PAGE = 10


@dataclass(frozen=True)
class FlagEntry:
    message_id: int
    tree_id: int
    text: str
    red_flags: int
    deleted: bool
    author_discord_id: int | None
    author_name: str
    author_banned: bool


@dataclass(frozen=True)
class FlagPage:
    entries: list[FlagEntry]
    page: int
    pages: int
    total: int


@dataclass(frozen=True)
class TrollLine:
    score: moderation.TrollScore
    discord_id: int


@dataclass(frozen=True)
class AuditLine:
    id: int
    created_at: datetime
    action: str
    actor_discord_id: int | None
    actor_name: str
    target_type: str
    target_id: int | None
    target_discord_id: int | None  # for a user target: their Discord id
    details: dict[str, Any]


@dataclass(frozen=True)
class AuditPage:
    lines: list[AuditLine]
    page: int
    pages: int
    total: int
    member_discord_id: int | None


def _pages(total: int, size: int) -> int:
    return max(1, -(-total // size))


def _clamp(page: int, pages: int) -> int:
    return min(max(page, 0), pages - 1)


class ModerationQueues:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def flagged(self, page: int = 0) -> FlagPage:
        """Unresolved flags, most flagged first (the engine's order), FLAGS_PER_PAGE a page."""
        async with self.sessions() as session:
            total = await session.scalar(select(func.count()).select_from(ModerationFlag).where(
                ModerationFlag.resolved.is_(False), ModerationFlag.flag_count > 0)) or 0
            pages = _pages(total, FLAGS_PER_PAGE)
            page = _clamp(page, pages)
            queue = await moderation.flagged_messages(session, limit=(page + 1) * FLAGS_PER_PAGE)
            shown = queue[page * FLAGS_PER_PAGE:]
            authors = await _users(session, [f.author_id for f in shown])
            entries = []
            for flag in shown:
                author = authors.get(flag.author_id)
                entries.append(FlagEntry(flag.message_id, flag.tree_id, flag.text, flag.red_flags, flag.deleted,
                                         author.discord_id if author else None,
                                         author.display_name if author else "", bool(author and author.banned)))
            return FlagPage(entries, page, pages, total)

    async def trollboard(self, limit: int = 10) -> list[TrollLine]:
        async with self.sessions() as session:
            scores = await moderation.trollboard(session, limit)
            users = await _users(session, [s.user_id for s in scores])
            return [TrollLine(s, users[s.user_id].discord_id) for s in scores if s.user_id in users]

    async def audit(self, guild_id: int | None, page: int = 0, member_discord_id: int | None = None) -> AuditPage:
        """The guild's audit rows, newest first; with a member, what they did and what was done to them.
        Rows written before they had a guild (e.g. automatic removals) show in every guild's log."""
        async with self.sessions() as session:
            where = [or_(AuditLog.guild_id == guild_id, AuditLog.guild_id.is_(None))]
            if member_discord_id is not None:
                member = await session.scalar(select(User).where(User.discord_id == member_discord_id))
                by_them = [AuditLog.actor_id == member.id] if member else []
                to_them = [(AuditLog.target_type == "user") & (AuditLog.target_id == member.id)] if member else []
                # Refused calls keep the caller's Discord id only (no user row is made for them).
                refused = AuditLog.details["discord_user_id"].as_string() == str(member_discord_id)
                where.append(or_(*by_them, *to_them, refused))
            total = await session.scalar(select(func.count()).select_from(AuditLog).where(*where)) or 0
            pages = _pages(total, AUDIT_PER_PAGE)
            page = _clamp(page, pages)
            rows = (await session.scalars(select(AuditLog).where(*where).order_by(AuditLog.id.desc())
                                          .offset(page * AUDIT_PER_PAGE).limit(AUDIT_PER_PAGE))).all()
            users = await _users(session, [r.actor_id for r in rows]
                                 + [r.target_id for r in rows if r.target_type == "user"])
            lines = []
            for row in rows:
                actor = users.get(row.actor_id)
                target = users.get(row.target_id) if row.target_type == "user" else None
                actor_discord = actor.discord_id if actor else _int(row.details.get("discord_user_id"))
                lines.append(AuditLine(row.id, row.created_at, row.action, actor_discord,
                                       actor.display_name if actor else "", row.target_type, row.target_id,
                                       target.discord_id if target else None, dict(row.details or {})))
            return AuditPage(lines, page, pages, total, member_discord_id)


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, str) and value.isdigit() else None


async def _users(session: AsyncSession, ids: list[int | None]) -> dict[int, User]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {u.id: u for u in (await session.scalars(select(User).where(User.id.in_(wanted)))).all()}

