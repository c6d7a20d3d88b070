"""Moderation primitives shared by moderators' actions, auto-moderation (red flags, skips) and votes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.labelling import points
from bot.labelling.context import Context
from bot.labelling.trees import abort_tree, advance_tree, cancel_open_tasks, leave_growing
from storage.enums import TreeState
from storage.models import AuditLog, Message, MessageTree


def audit(session: AsyncSession, ctx: Context, actor_id: int | None, action: str, target_type: str,
          target_id: int | None, details: dict[str, Any] | None = None) -> None:
    """One audit row per moderator or automatic moderation action (actor None = the bot itself)."""
    session.add(AuditLog(actor_id=actor_id, action=action, target_type=target_type, target_id=target_id,
                         details=details or {}, created_at=ctx.now()))


async def halt_tree_now(session: AsyncSession, ctx: Context, tree: MessageTree, *, actor_id: int | None,
                        action: str, details: dict[str, Any] | None = None) -> None:
    tree.state_before_halt = tree.state
    await leave_growing(session, ctx, tree, TreeState.HALTED_BY_MODERATOR)
    await cancel_open_tasks(session, tree_id=tree.id)
    audit(session, ctx, actor_id, action, "tree", tree.id, details)


async def subtree_ids(session: AsyncSession, message: Message) -> list[int]:
    """The message and every descendant (trees are a few dozen messages; one query per level)."""
    ids, frontier = [message.id], [message.id]
    while frontier:
        frontier = list((await session.scalars(select(Message.id).where(Message.parent_id.in_(frontier)))).all())
        ids.extend(frontier)
    return ids


async def remove_message(session: AsyncSession, ctx: Context, message: Message, *, actor_id: int | None,
                         action: str, details: dict[str, Any] | None = None) -> list[int]:
    """Soft-delete a message with its subtree and take back what their authors earned through them.
    Removing a prompt aborts its whole tree; removing a reply lets the tree move on (e.g. a ranking set
    may now be complete)."""
    ids = await subtree_ids(session, message)
    authors = dict((await session.execute(
        select(Message.id, Message.author_id).where(Message.id.in_(ids), Message.deleted.is_(False))
    )).all())
    await points.take_back(session, ctx, authors)
    await session.execute(
        update(Message).where(Message.id.in_(ids)).values(deleted=True),
        execution_options={"synchronize_session": "fetch"},
    )
    await cancel_open_tasks(session, message_ids=ids)
    tree = await session.get(MessageTree, message.tree_id)
    audit(session, ctx, actor_id, action, "message", message.id, {**(details or {}), "removed": len(ids)})
    if tree is not None:
        if message.parent_id is None:
            if tree.state not in (TreeState.ABORTED_LOW_GRADE,):
                await abort_tree(session, ctx, tree)
        else:
            # Ranking tasks show a fixed set of replies; after a removal they would be stale.
            await cancel_open_tasks(session, tree_id=tree.id, message_ids=[message.parent_id])
            await advance_tree(session, ctx, tree)
    await session.flush()
    return ids
