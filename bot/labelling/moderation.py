"""Moderators' services: ban / unban, remove a message with its subtree, halt / resume a tree, edit a
message keeping its old text, the flag queue and the trollboard. Every action writes an audit row.
Checking that the caller is a moderator is the cog's job (Discord permissions)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.labelling.context import Context
from bot.labelling.errors import ModerationError
from bot.labelling.labels import BAD_LABELS
from bot.labelling.moderation_core import audit, halt_tree_now, remove_message
from bot.labelling.trees import advance_tree, cancel_open_tasks, promote_lottery
from storage.enums import TreeState
from storage.models import Label, Message, MessageRevision, MessageTree, ModerationFlag, Reaction, User


async def _user(session: AsyncSession, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise ModerationError("user_not_found")
    return user


async def ban_user(session: AsyncSession, ctx: Context, moderator_id: int | None, user_id: int,
                   reason: str | None = None) -> int:
    """Ban and cancel the user's open tasks; returns how many were cancelled."""
    user = await _user(session, user_id)
    user.banned = True
    cancelled = await cancel_open_tasks(session, user_id=user_id)
    audit(session, ctx, moderator_id, "ban", "user", user_id, {"reason": reason, "cancelled_tasks": cancelled})
    await session.flush()
    return cancelled


async def unban_user(session: AsyncSession, ctx: Context, moderator_id: int | None, user_id: int,
                     reason: str | None = None) -> None:
    user = await _user(session, user_id)
    user.banned = False
    audit(session, ctx, moderator_id, "unban", "user", user_id, {"reason": reason})
    await session.flush()


async def delete_message(session: AsyncSession, ctx: Context, moderator_id: int | None, message_id: int,
                         reason: str | None = None) -> list[int]:
    """Soft-delete the message and its subtree; returns the ids removed."""
    message = await session.get(Message, message_id)
    if message is None:
        raise ModerationError("message_not_found")
    if message.deleted:
        raise ModerationError("already_deleted")
    ids = await remove_message(session, ctx, message, actor_id=moderator_id, action="delete_message",
                               details={"reason": reason})
    flag = await session.scalar(select(ModerationFlag).where(ModerationFlag.message_id == message_id))
    if flag is not None and not flag.resolved:
        flag.resolved, flag.resolution, flag.resolved_by = True, "deleted", moderator_id
    await session.flush()
    return ids


async def edit_message(session: AsyncSession, ctx: Context, moderator_id: int | None, message_id: int,
                       text: str, reason: str | None = None) -> None:
    message = await session.get(Message, message_id)
    if message is None:
        raise ModerationError("message_not_found")
    session.add(MessageRevision(message_id=message_id, text=message.text, edited_by=moderator_id,
                                created_at=ctx.now()))
    message.text, message.edited_at = text, ctx.now()
    audit(session, ctx, moderator_id, "edit_message", "message", message_id, {"reason": reason})
    await session.flush()


async def halt_tree(session: AsyncSession, ctx: Context, moderator_id: int | None, tree_id: int,
                    reason: str | None = None) -> str:
    tree = await session.get(MessageTree, tree_id)
    if tree is None:
        raise ModerationError("tree_not_found")
    if tree.state == TreeState.HALTED_BY_MODERATOR:
        raise ModerationError("already_halted")
    await halt_tree_now(session, ctx, tree, actor_id=moderator_id, action="halt_tree", details={"reason": reason})
    await session.flush()
    return tree.state


async def resume_tree(session: AsyncSession, ctx: Context, moderator_id: int | None, tree_id: int,
                      reason: str | None = None) -> str:
    """Back to the state it had before the halt, then on through any transition now due."""
    tree = await session.get(MessageTree, tree_id)
    if tree is None:
        raise ModerationError("tree_not_found")
    if tree.state != TreeState.HALTED_BY_MODERATOR:
        raise ModerationError("not_halted")
    previous = tree.state_before_halt or TreeState.INITIAL_PROMPT_REVIEW
    if previous == TreeState.GROWING:
        # Resuming must not exceed the active-tree limit; otherwise the tree waits in the lottery.
        previous = TreeState.PROMPT_LOTTERY_WAITING
    tree.state, tree.state_before_halt, tree.updated_at = previous, None, ctx.now()
    audit(session, ctx, moderator_id, "resume_tree", "tree", tree_id, {"reason": reason, "state": previous})
    await session.flush()
    await promote_lottery(session, ctx, tree.lang)
    return await advance_tree(session, ctx, tree)


@dataclass(frozen=True)
class FlaggedMessage:
    message_id: int
    tree_id: int
    author_id: int | None
    text: str
    red_flags: int
    deleted: bool
    flagged_at: datetime


async def flagged_messages(session: AsyncSession, limit: int = 20) -> list[FlaggedMessage]:
    """The moderation queue: unresolved flagged messages, most flagged first."""
    rows = (
        await session.execute(
            select(ModerationFlag, Message)
            .join(Message, Message.id == ModerationFlag.message_id)
            .where(ModerationFlag.resolved.is_(False), ModerationFlag.flag_count > 0)
            .order_by(ModerationFlag.flag_count.desc(), ModerationFlag.id)
            .limit(limit)
        )
    ).all()
    return [
        FlaggedMessage(m.id, m.tree_id, m.author_id, m.text, f.flag_count, m.deleted, f.created_at)
        for f, m in rows
    ]


async def resolve_flag(session: AsyncSession, ctx: Context, moderator_id: int | None, message_id: int,
                       resolution: str = "kept") -> None:
    flag = await session.scalar(select(ModerationFlag).where(ModerationFlag.message_id == message_id))
    if flag is None:
        raise ModerationError("message_not_found")
    flag.resolved, flag.resolution, flag.resolved_by = True, resolution, moderator_id
    audit(session, ctx, moderator_id, "resolve_flag", "message", message_id, {"resolution": resolution})
    await session.flush()


@dataclass(frozen=True)
class TrollScore:
    user_id: int
    display_name: str
    score: float
    red_flags: int
    upvotes: int
    downvotes: int
    aborted_prompts: int
    bad_labels: int
    banned: bool


async def trollboard(session: AsyncSession, limit: int = 10) -> list[TrollScore]:
    """3 × red flags − upvotes + downvotes + aborted prompts + bad labels received, highest first.
    A bad label is one of the reference's list given a value of 0.5 or more."""
    reactions = dict.fromkeys(("+1", "-1", "red_flag"))
    per_user: dict[int, dict[str, int]] = {}

    def bump(user_id: int | None, key: str, count: int) -> None:
        if user_id is not None:
            per_user.setdefault(user_id, {}).setdefault(key, 0)
            per_user[user_id][key] += count

    for author, emoji, count in (
        await session.execute(
            select(Message.author_id, Reaction.emoji, func.count())
            .join(Reaction, Reaction.message_id == Message.id)
            .where(Reaction.emoji.in_(list(reactions)))
            .group_by(Message.author_id, Reaction.emoji)
        )
    ).all():
        bump(author, emoji, count)
    for author, count in (
        await session.execute(
            select(Message.author_id, func.count())
            .join(MessageTree, MessageTree.id == Message.tree_id)
            .where(Message.parent_id.is_(None), MessageTree.state == TreeState.ABORTED_LOW_GRADE)
            .group_by(Message.author_id)
        )
    ).all():
        bump(author, "aborted", count)
    for author, count in (
        await session.execute(
            select(Message.author_id, func.count())
            .join(Label, Label.message_id == Message.id)
            .where(Label.name.in_(BAD_LABELS), Label.value >= 0.5)
            .group_by(Message.author_id)
        )
    ).all():
        bump(author, "bad_labels", count)
    if not per_user:
        return []
    users = {u.id: u for u in (await session.scalars(select(User).where(User.id.in_(list(per_user))))).all()}
    scores = []
    for user_id, c in per_user.items():
        score = (3 * c.get("red_flag", 0) - c.get("+1", 0) + c.get("-1", 0) + c.get("aborted", 0)
                 + c.get("bad_labels", 0))
        user = users.get(user_id)
        scores.append(TrollScore(user_id, user.display_name if user else "", float(score), c.get("red_flag", 0),
                                 c.get("+1", 0), c.get("-1", 0), c.get("aborted", 0), c.get("bad_labels", 0),
                                 bool(user and user.banned)))
    scores.sort(key=lambda s: (-s.score, s.user_id))
    return scores[:limit]
