"""Moderators' actions by Discord id: the engine's moderation services (bot/labelling/moderation.py) behind
the Discord edge. Each call is one transaction: the moderator's user row is created on first contact,
the engine acts and writes its audit rows, and those rows are stamped with the guild so ``/admin audit``
and the log channel can show them. Each call returns what changed, for the answer and the log line.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.admin.targets import parse_target, posts_of, resolve_message, resolve_post, resolve_tree
from bot.labelling import moderation
from bot.labelling.context import Context
from bot.labelling.errors import LabellingError
from bot.labelling.moderation_core import subtree_ids
from bot.labelling.service import LabellingService, get_or_create_user
from bot.labelling.texts import text_refusal
from bot.labelling.votes import RED_FLAG, vote
from storage.models import AuditLog, Message, ModerationFlag, User

PREVIEW_MESSAGES = 10


class ActionRefused(LabellingError):
    default_messages = {
        "not_banned": "That member is not banned. Nothing was changed.",
        "already_banned": "That member is already banned. Nothing was changed.",
        "no_author": "That message has no known author to ban.",
        "empty_text": "The new text is empty. Nothing was changed.",
        "control_characters": ("The new text contains control codes (invisible characters such as NUL or ESC). "
                                "Nothing was changed."),
        "text_too_long": "The new text is too long. Nothing was changed.",
        "unchanged_text": "The text is the same as before. Nothing was changed.",
        "not_flagged": "That message is not in the moderation queue (any more).",
    }


@dataclass(frozen=True)
class Moderator:
    """Who acts, from the interaction: their Discord id and name, and the server they act in."""

    discord_id: int
    name: str | None
    guild_id: int | None


@dataclass(frozen=True)
class MessageLine:
    id: int
    tree_id: int
    parent_id: int | None
    role: str
    depth: int
    text: str
    author_discord_id: int | None
    author_name: str
    deleted: bool


@dataclass(frozen=True)
class DeletePreview:
    message: MessageLine
    subtree: list[MessageLine]  # the message first, then what hangs below it; at most PREVIEW_MESSAGES
    total: int  # messages that would be hidden


@dataclass(frozen=True)
class BanDone:
    user_id: int
    discord_id: int
    name: str
    cancelled_tasks: int
    reason: str | None


@dataclass(frozen=True)
class DeleteDone:
    message_id: int
    tree_id: int
    removed: list[int]
    posts: list[tuple[int, int]]  # (channel id, Discord message id) of bot posts showing removed messages


@dataclass(frozen=True)
class TreeDone:
    tree_id: int
    state: str


@dataclass(frozen=True)
class FlagDone:
    message_id: int
    counted: bool
    red_flags: int
    removed: bool


async def _line(session: AsyncSession, message: Message) -> MessageLine:
    author = await session.get(User, message.author_id) if message.author_id is not None else None
    return MessageLine(message.id, message.tree_id, message.parent_id, message.role, message.depth, message.text,
                       author.discord_id if author else None, author.display_name if author else "", message.deleted)


class ModeratorActions:
    def __init__(self, labelling: LabellingService) -> None:
        self.labelling = labelling

    @property
    def ctx(self) -> Context:
        return self.labelling.ctx

    @contextlib.asynccontextmanager
    async def _acting(self, moderator: Moderator) -> AsyncIterator[tuple[AsyncSession, int]]:
        """One transaction as the moderator; audit rows written in it get the moderator's guild."""
        async with self.labelling.sessions.begin() as session:
            def stamp(sync_session, flush_context, instances) -> None:  # noqa: ANN001 (SQLAlchemy's hook)
                for row in sync_session.new:
                    if isinstance(row, AuditLog) and row.guild_id is None:
                        row.guild_id = moderator.guild_id

            event.listen(session.sync_session, "before_flush", stamp)
            user = await get_or_create_user(session, moderator.discord_id, display_name=moderator.name)
            yield session, user.id
            await session.flush()

    # Bans
    async def ban(self, moderator: Moderator, member_discord_id: int, member_name: str | None,
                  reason: str | None = None) -> BanDone:
        """Ban a member, creating their user row if they never took part (a troll can be stopped early)."""
        async with self._acting(moderator) as (session, mod_id):
            member = await get_or_create_user(session, member_discord_id, display_name=member_name)
            if member.banned:
                raise ActionRefused("already_banned")
            cancelled = await moderation.ban_user(session, self.ctx, mod_id, member.id, reason)
            return BanDone(member.id, member.discord_id, member.display_name, cancelled, reason)

    async def unban(self, moderator: Moderator, member_discord_id: int, member_name: str | None) -> BanDone:
        async with self._acting(moderator) as (session, mod_id):
            member = await session.scalar(select(User).where(User.discord_id == member_discord_id))
            if member is None or not member.banned:
                raise ActionRefused("not_banned")
            await moderation.unban_user(session, self.ctx, mod_id, member.id)
            return BanDone(member.id, member.discord_id, member_name or member.display_name, 0, None)

    async def ban_author(self, moderator: Moderator, message_id: int) -> BanDone:
        """The flag queue's "Ban author": bans whoever wrote the message, and resolves its flag."""
        async with self._acting(moderator) as (session, mod_id):
            message = await session.get(Message, message_id)
            author = await session.get(User, message.author_id) if message and message.author_id else None
            if author is None:
                raise ActionRefused("no_author")
            if author.banned:
                raise ActionRefused("already_banned")
            reason = f"author of flagged message #{message_id}"
            cancelled = await moderation.ban_user(session, self.ctx, mod_id, author.id, reason)
            await moderation.resolve_flag(session, self.ctx, mod_id, message_id, "author_banned")
            return BanDone(author.id, author.discord_id, author.display_name, cancelled, reason)

    # Messages
    async def delete_preview(self, target: str | None = None, *, message_id: int | None = None,
                             post_id: int | None = None) -> DeletePreview:
        """What ``delete`` would hide: the message and its subtree (read only)."""
        async with self.labelling.sessions() as session:
            if message_id is not None:
                message = await session.get(Message, message_id)
                if message is None:
                    raise moderation.ModerationError("message_not_found")
            elif post_id is not None:
                message = await resolve_post(session, post_id)
            else:
                message = await resolve_message(session, parse_target(target or ""))
            if message.deleted:
                raise moderation.ModerationError("already_deleted")
            ids = await subtree_ids(session, message)
            shown = [await _line(session, m) for m in (await session.scalars(
                select(Message).where(Message.id.in_(ids[:PREVIEW_MESSAGES])).order_by(Message.depth, Message.id)
            )).all()]
            return DeletePreview(shown[0], shown, len(ids))

    async def delete(self, moderator: Moderator, message_id: int, reason: str | None = None) -> DeleteDone:
        async with self._acting(moderator) as (session, mod_id):
            removed = await moderation.delete_message(session, self.ctx, mod_id, message_id, reason)
            tree_id = await session.scalar(select(Message.tree_id).where(Message.id == message_id))
            return DeleteDone(message_id, tree_id or 0, removed, await posts_of(session, removed))

    async def message(self, target: str) -> MessageLine:
        """The message a moderator named, with its full current text (for the edit modal)."""
        async with self.labelling.sessions() as session:
            return await _line(session, await resolve_message(session, parse_target(target)))

    async def edit(self, moderator: Moderator, message_id: int, text: str) -> MessageLine:
        """Replace the text; the old text is kept as a MessageRevision."""
        text = text.strip()
        refusal = text_refusal(text)
        if refusal is not None:
            raise ActionRefused(refusal)
        if len(text) > self.ctx.settings.max_text_length:
            raise ActionRefused("text_too_long", f"The new text is longer than "
                                f"{self.ctx.settings.max_text_length} characters. Nothing was changed.")
        async with self._acting(moderator) as (session, mod_id):
            message = await session.get(Message, message_id)
            if message is not None and message.text == text:
                raise ActionRefused("unchanged_text")
            await moderation.edit_message(session, self.ctx, mod_id, message_id, text)
            assert message is not None
            return await _line(session, message)

    # Trees
    async def tree_id(self, target: str) -> int:
        async with self.labelling.sessions() as session:
            return (await resolve_tree(session, parse_target(target))).id

    async def halt(self, moderator: Moderator, tree_id: int, reason: str | None = None) -> TreeDone:
        async with self._acting(moderator) as (session, mod_id):
            return TreeDone(tree_id, await moderation.halt_tree(session, self.ctx, mod_id, tree_id, reason))

    async def resume(self, moderator: Moderator, target: str) -> TreeDone:
        async with self._acting(moderator) as (session, mod_id):
            tree = await resolve_tree(session, parse_target(target))
            return TreeDone(tree.id, await moderation.resume_tree(session, self.ctx, mod_id, tree.id))

    # The flag queue
    async def keep(self, moderator: Moderator, message_id: int) -> int:
        """The flag queue's "Keep": the message stays, its flag is resolved."""
        async with self._acting(moderator) as (session, mod_id):
            open_flag = await session.scalar(select(ModerationFlag.id).where(
                ModerationFlag.message_id == message_id, ModerationFlag.resolved.is_(False)))
            if open_flag is None:
                raise ActionRefused("not_flagged")
            await moderation.resolve_flag(session, self.ctx, mod_id, message_id, "kept")
            return message_id

    async def flag_post(self, discord_user_id: int, name: str | None, post_id: int) -> FlagDone:
        """Any member's "Flag for moderators" on a bot post: a red flag, as the reaction would be."""
        async with self.labelling.sessions.begin() as session:
            user = await get_or_create_user(session, discord_user_id, display_name=name)
            message = await resolve_post(session, post_id)
            result = await vote(session, self.ctx, user.id, message.id, RED_FLAG)
            return FlagDone(message.id, result.counted, result.red_flags, result.removed_by_flags)
