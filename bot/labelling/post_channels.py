"""Which channels the bot posts tasks in, how often, which kinds and in which language (per guild,
stored, so schedules survive restarts). Moderator rights are checked by the admin cog before a call;
every change leaves an audit row."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import PostSettings
from bot.labelling.context import Context
from bot.labelling.errors import LabellingError
from bot.labelling.language import normalise_language
from storage.models import AuditLog, TaskChannel
from storage.users import get_or_create_user

# What a channel can post, in the order they are listed.
POST_KINDS = ("prompt", "reply", "review", "rank")
KIND_WORDS = {"prompt": "calls for prompts", "reply": "replies to write", "review": "reviews", "rank": "rankings"}
ALIASES = {"prompts": "prompt", "replies": "reply", "reviews": "review", "ranking": "rank", "rankings": "rank"}
MAX_INTERVAL_MINUTES = 7 * 24 * 60


class ChannelConfigError(LabellingError):
    default_messages = {
        "unknown_kinds": "Kinds must be one or more of prompt, reply, review, rank (or all), separated by commas.",
        "invalid_language": "That is not a language tag; use one such as en, de or pt-BR.",
        "invalid_interval": f"The interval must be between 1 and {MAX_INTERVAL_MINUTES} minutes.",
        "not_configured": "That channel is not a task channel; /admin channel show lists them.",
        "which_channel": "This server has several task channels; name the one to switch off.",
    }


@dataclass(frozen=True)
class ChannelConfig:
    guild_id: int
    channel_id: int
    interval_minutes: int
    kinds: tuple[str, ...]
    language: str
    last_posted_at: datetime | None


def _config(row: TaskChannel) -> ChannelConfig:
    return ChannelConfig(row.guild_id, row.channel_id, row.interval_minutes, tuple(row.kinds), row.language,
                         row.last_posted_at)


def parse_kinds(text: str | None) -> tuple[str, ...]:
    """``"review, rank"`` -> ("review", "rank"); empty or "all" -> every kind."""
    words = [w.strip().lower() for w in (text or "").replace(";", ",").split(",") if w.strip()]
    if not words or words == ["all"]:
        return POST_KINDS
    kinds = {ALIASES.get(w, w) for w in words}
    if not kinds <= set(POST_KINDS):
        raise ChannelConfigError("unknown_kinds")
    return tuple(k for k in POST_KINDS if k in kinds)


class PostChannels:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], ctx: Context, settings: PostSettings) -> None:
        self.sessions = sessions
        self.ctx = ctx
        self.settings = settings

    async def _audit(self, session: AsyncSession, actor_discord_id: int, actor_name: str | None, action: str,
                     guild_id: int, channel_id: int, details: dict[str, object]) -> None:
        actor = await get_or_create_user(session, actor_discord_id, display_name=actor_name)
        session.add(AuditLog(actor_id=actor.id, action=action, target_type="channel", target_id=channel_id,
                             guild_id=guild_id, details=details, created_at=self.ctx.now()))

    async def set(self, guild_id: int, channel_id: int, *, interval_minutes: int | None, kinds: str | None,
                  language: str | None, actor_discord_id: int, actor_name: str | None = None) -> ChannelConfig:
        """Create or change a task channel; options left out keep their current value (or the default)."""
        if interval_minutes is not None and not 1 <= interval_minutes <= MAX_INTERVAL_MINUTES:
            raise ChannelConfigError("invalid_interval")
        lang = normalise_language(language) if language else None
        if language and lang is None:
            raise ChannelConfigError("invalid_language")
        parsed = parse_kinds(kinds) if kinds is not None else None
        async with self.sessions.begin() as session:
            row = await session.get(TaskChannel, channel_id)
            if row is None:
                row = TaskChannel(channel_id=channel_id, guild_id=guild_id, kinds=list(POST_KINDS),
                                  interval_minutes=self.settings.default_interval_minutes,
                                  language=self.ctx.settings.default_language, created_at=self.ctx.now())
                session.add(row)
            if interval_minutes is not None:
                row.interval_minutes = interval_minutes
            if parsed is not None:
                row.kinds = list(parsed)
            if lang is not None:
                row.language = lang
            row.updated_at = self.ctx.now()
            await self._audit(session, actor_discord_id, actor_name, "set_task_channel", guild_id, channel_id,
                              {"interval_minutes": row.interval_minutes, "kinds": list(row.kinds),
                               "language": row.language})
            await session.flush()
            return _config(row)

    async def off(self, guild_id: int, channel_id: int | None, *, actor_discord_id: int,
                  actor_name: str | None = None) -> ChannelConfig:
        """Stop posting in a channel (the only one of the guild when none is named). Its posts stay."""
        async with self.sessions.begin() as session:
            rows = (await session.scalars(select(TaskChannel).where(TaskChannel.guild_id == guild_id))).all()
            if channel_id is None and len(rows) > 1:
                raise ChannelConfigError("which_channel")
            row = next((r for r in rows if channel_id is None or r.channel_id == channel_id), None)
            if row is None:
                raise ChannelConfigError("not_configured")
            config = _config(row)
            await session.execute(delete(TaskChannel).where(TaskChannel.channel_id == row.channel_id))
            await self._audit(session, actor_discord_id, actor_name, "task_channel_off", guild_id, row.channel_id, {})
            return config

    async def list(self, guild_id: int | None = None) -> Sequence[ChannelConfig]:
        """The task channels of a guild, or of every guild (to schedule them at start)."""
        async with self.sessions() as session:
            query = select(TaskChannel).order_by(TaskChannel.channel_id)
            if guild_id is not None:
                query = query.where(TaskChannel.guild_id == guild_id)
            return [_config(row) for row in (await session.scalars(query)).all()]

    async def get(self, channel_id: int) -> ChannelConfig | None:
        async with self.sessions() as session:
            row = await session.get(TaskChannel, channel_id)
            return _config(row) if row is not None else None
