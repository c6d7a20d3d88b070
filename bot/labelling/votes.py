"""Reaction votes on campaign messages: +1 / −1 cancel each other, removing a reaction undoes it,
duplicate gateway events count once, red flags feed the moderation queue and auto-moderation."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.labelling.context import Context
from bot.labelling.errors import VoteRefused
from bot.labelling.moderation_core import remove_message
from bot.labelling.trees import ACTIVE_STATES
from storage.models import Message, MessageTree, ModerationFlag, Reaction, User
from storage.users import insert_ignoring_conflicts

UPVOTE, DOWNVOTE, RED_FLAG = "+1", "-1", "red_flag"
OPPOSITE = {UPVOTE: DOWNVOTE, DOWNVOTE: UPVOTE}


@dataclass(frozen=True)
class VoteResult:
    message_id: int
    emoji: str
    counted: bool  # False when the event changed nothing (a duplicate, or removing what was not there)
    upvotes: int
    downvotes: int
    red_flags: int
    removed_by_flags: bool = False


async def _counts(session: AsyncSession, message_id: int) -> dict[str, int]:
    rows = await session.execute(
        select(Reaction.emoji, func.count())
        .where(Reaction.message_id == message_id, Reaction.emoji.in_((UPVOTE, DOWNVOTE, RED_FLAG)))
        .group_by(Reaction.emoji)
    )
    return dict(rows.all())


async def vote(session: AsyncSession, ctx: Context, user_id: int, message_id: int, emoji: str,
               *, added: bool = True) -> VoteResult:
    message = await session.get(Message, message_id)
    if message is None:
        raise VoteRefused("message_not_found")
    if message.author_id == user_id:
        raise VoteRefused("own_message")
    user = await session.get(User, user_id)
    if user is None or user.banned:
        raise VoteRefused("banned")
    if added:
        if emoji in OPPOSITE:
            await session.execute(
                delete(Reaction).where(Reaction.message_id == message_id, Reaction.user_id == user_id,
                                       Reaction.emoji == OPPOSITE[emoji])
            )
        result = await session.execute(
            insert_ignoring_conflicts(session, Reaction, message_id=message_id, user_id=user_id, emoji=emoji,
                                      created_at=ctx.now())
        )
    else:
        result = await session.execute(
            delete(Reaction).where(Reaction.message_id == message_id, Reaction.user_id == user_id,
                                   Reaction.emoji == emoji)
        )
    counted = (result.rowcount or 0) > 0
    counts = await _counts(session, message_id)
    flags = counts.get(RED_FLAG, 0)
    removed = False
    if emoji == RED_FLAG and counted:
        removed = await _update_flag_queue(session, ctx, message, flags)
    return VoteResult(message_id, emoji, counted, counts.get(UPVOTE, 0), counts.get(DOWNVOTE, 0), flags, removed)


async def _update_flag_queue(session: AsyncSession, ctx: Context, message: Message, flags: int) -> bool:
    entry = await session.scalar(select(ModerationFlag).where(ModerationFlag.message_id == message.id))
    if entry is None:
        if flags == 0:
            return False
        entry = ModerationFlag(message_id=message.id, flag_count=0, created_at=ctx.now(), updated_at=ctx.now())
        session.add(entry)
    entry.flag_count = flags
    entry.updated_at = ctx.now()
    # Like Open-Assistant, flags act only on trees still in review or growing: a finished tree changes
    # through a moderator, never through a handful of accounts; its flags wait in the queue.
    tree = await session.get(MessageTree, message.tree_id)
    active = tree is not None and tree.state in ACTIVE_STATES
    if flags >= ctx.settings.red_flags_to_remove and not message.deleted and active:
        await remove_message(session, ctx, message, actor_id=None, action="auto_remove_red_flags",
                             details={"red_flags": flags})
        entry.resolved, entry.resolution = True, "auto_removed"
        await session.flush()
        return True
    await session.flush()
    return False
