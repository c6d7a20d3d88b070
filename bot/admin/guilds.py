"""A guild's configuration (moderator role, log channel, language) and the audit of refused admin calls.

Moderator rights themselves are decided in ``cogs/admin/checks.py`` from Discord permissions; this
service stores what a moderator set and records who tried what.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.labelling.context import _utcnow
from storage.models import AuditLog, GuildSettings
from storage.users import get_or_create_user


@dataclass(frozen=True)
class GuildConfig:
    guild_id: int
    language: str
    moderator_role_id: int | None
    log_channel_id: int | None


def _config(row: GuildSettings | None, guild_id: int, default_language: str) -> GuildConfig:
    if row is None:
        return GuildConfig(guild_id, default_language, None, None)
    return GuildConfig(guild_id, row.language, row.moderator_role_id, row.log_channel_id)


class GuildAdmin:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], default_language: str = "en") -> None:
        self.sessions = sessions
        self.default_language = default_language

    async def config(self, guild_id: int) -> GuildConfig:
        async with self.sessions() as session:
            return _config(await session.get(GuildSettings, guild_id), guild_id, self.default_language)

    async def _update(self, guild_id: int, actor_discord_id: int, actor_name: str | None, action: str,
                      **values: Any) -> GuildConfig:
        async with self.sessions.begin() as session:
            row = await session.get(GuildSettings, guild_id)
            if row is None:
                row = GuildSettings(guild_id=guild_id, language=self.default_language)
                session.add(row)
            for key, value in values.items():
                setattr(row, key, value)
            actor = await get_or_create_user(session, actor_discord_id, display_name=actor_name)
            session.add(AuditLog(actor_id=actor.id, action=action, target_type="guild", target_id=guild_id,
                                 guild_id=guild_id, details={k: v for k, v in values.items()}, created_at=_utcnow()))
            await session.flush()
            return _config(row, guild_id, self.default_language)

    async def set_moderator_role(self, guild_id: int, role_id: int | None, *, actor_discord_id: int,
                                 actor_name: str | None = None) -> GuildConfig:
        return await self._update(guild_id, actor_discord_id, actor_name, "set_moderator_role",
                                  moderator_role_id=role_id)

    async def set_log_channel(self, guild_id: int, channel_id: int | None, *, actor_discord_id: int,
                              actor_name: str | None = None) -> GuildConfig:
        return await self._update(guild_id, actor_discord_id, actor_name, "set_log_channel",
                                  log_channel_id=channel_id)

    async def audit_refused(self, guild_id: int | None, discord_user_id: int, command: str,
                            options: dict[str, Any]) -> None:
        """A non-moderator tried a moderator command. Only the audit row is written (no user row is
        created for them), so a refused call changes nothing else."""
        async with self.sessions.begin() as session:
            session.add(AuditLog(
                actor_id=None, action="refused_not_moderator", target_type="command", target_id=None,
                guild_id=guild_id, created_at=_utcnow(),
                details={"discord_user_id": str(discord_user_id), "command": command,
                         "options": {k: str(v)[:200] for k, v in options.items()}},
            ))
