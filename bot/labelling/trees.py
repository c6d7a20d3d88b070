"""Tree lifecycle: every transition of the reference, run inside the caller's transaction.

initial_prompt_review → (prompt_lottery_waiting) → growing → ranking → ready_for_scoring →
ready_for_export; side states aborted_low_grade, halted_by_moderator, scoring_failed (retried by
``maintain_trees``). ``advance_tree`` is called after anything that may move a tree on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.labelling import points
from bot.labelling.consensus import leave_one_out_agreements, ranked_pairs
from bot.labelling.context import Context
from storage.enums import Role, TaskKind, TaskState, TreeState
from storage.models import Message, MessageTree, Ranking, Task

log = logging.getLogger(__name__)

REPLY_KINDS = (TaskKind.ASSISTANT_REPLY, TaskKind.PROMPTER_REPLY)
RANK_KINDS = (TaskKind.RANK_ASSISTANT_REPLIES, TaskKind.RANK_PROMPTER_REPLIES)
LABEL_KINDS = (TaskKind.LABEL_INITIAL_PROMPT, TaskKind.LABEL_PROMPTER_REPLY, TaskKind.LABEL_ASSISTANT_REPLY)
# Trees that will never change again, or only through a moderator.
CLOSED_STATES = (TreeState.ABORTED_LOW_GRADE, TreeState.HALTED_BY_MODERATOR, TreeState.READY_FOR_EXPORT)

# Trees still collecting and reviewing messages: the only ones auto-moderation (red flags, skips) acts on.
ACTIVE_STATES = (TreeState.INITIAL_PROMPT_REVIEW, TreeState.GROWING)

# Trees whose reply sets are being ranked: grown here, or imported as a backlog to rank only.
RANKING_STATES = (TreeState.RANKING, TreeState.BACKLOG_RANKING)

# Not rejected: accepted or still in review. Such children take a slot among a parent's max_children.
LIVE = or_(Message.review_result.is_(None), Message.review_result.is_(True))


def ranked_parent_roles(ctx: Context) -> tuple[str, ...]:
    """Parents whose children are ranked: prompter messages (their assistant replies are ranked),
    and assistant messages too when prompter replies are ranked."""
    return (Role.PROMPTER, Role.ASSISTANT) if ctx.settings.rank_prompter_replies else (Role.PROMPTER,)


async def cancel_open_tasks(
    session: AsyncSession, *, tree_id: int | None = None, message_ids: Iterable[int] | None = None,
    kinds: Iterable[str] | None = None, user_id: int | None = None,
) -> int:
    conditions = [Task.state == TaskState.OFFERED]
    if tree_id is not None:
        conditions.append(Task.tree_id == tree_id)
    if message_ids is not None:
        conditions.append(Task.target_message_id.in_(list(message_ids)))
    if kinds is not None:
        conditions.append(Task.kind.in_(list(kinds)))
    if user_id is not None:
        conditions.append(Task.user_id == user_id)
    result = await session.execute(
        update(Task).where(*conditions).values(state=TaskState.CANCELLED),
        execution_options={"synchronize_session": False},
    )
    return result.rowcount or 0


async def count_trees(session: AsyncSession, state: str, lang: str) -> int:
    return await session.scalar(
        select(func.count()).select_from(MessageTree).where(MessageTree.state == state, MessageTree.lang == lang)
    ) or 0


def set_state(tree: MessageTree, state: str, ctx: Context) -> None:
    log.debug("tree %s: %s -> %s", tree.id, tree.state, state)
    tree.state = state
    tree.updated_at = ctx.now()


async def activate_or_queue(session: AsyncSession, ctx: Context, tree: MessageTree) -> None:
    """An accepted prompt grows at once while fewer than the maximum grow, else joins the lottery."""
    growing = await count_trees(session, TreeState.GROWING, tree.lang)
    if growing < ctx.settings.max_active_trees_per_language:
        set_state(tree, TreeState.GROWING, ctx)
    else:
        set_state(tree, TreeState.PROMPT_LOTTERY_WAITING, ctx)


async def promote_lottery(session: AsyncSession, ctx: Context, lang: str) -> list[int]:
    """Fill free growing slots from the waiting prompts, as Open-Assistant draws them: first an author
    among the distinct authors waiting, weighted 1 + the times a ranking put one of their replies first
    in the last 30 days, then one of that author's prompts. A prolific writer gets one ticket, not one
    per prompt."""
    free = ctx.settings.max_active_trees_per_language - await count_trees(session, TreeState.GROWING, lang)
    if free <= 0:
        return []
    rows = (
        await session.execute(
            select(MessageTree.id, Message.author_id)
            .join(Message, and_(Message.tree_id == MessageTree.id, Message.parent_id.is_(None)))
            .where(MessageTree.state == TreeState.PROMPT_LOTTERY_WAITING, MessageTree.lang == lang)
            .order_by(MessageTree.id)
        )
    ).all()
    if not rows:
        return []
    trees_by_author: dict[int | None, list[int]] = {}
    for tree_id, author_id in rows:
        trees_by_author.setdefault(author_id, []).append(tree_id)
    firsts = await points.first_places(session, [a for a in trees_by_author if a is not None],
                                       since=ctx.now() - timedelta(days=30))
    promoted = []
    while trees_by_author and len(promoted) < free:
        authors = list(trees_by_author)
        author = ctx.rng.choices(authors, weights=[1 + firsts.get(a, 0) for a in authors])[0]
        waiting = trees_by_author[author]
        tree_id = waiting.pop(ctx.rng.randrange(len(waiting)))
        if not waiting:
            del trees_by_author[author]
        tree = await session.get(MessageTree, tree_id)
        set_state(tree, TreeState.GROWING, ctx)
        promoted.append(tree_id)
    if promoted:
        await session.flush()
    return promoted


async def tree_counts(session: AsyncSession, tree_id: int) -> tuple[int, int]:
    """(accepted messages, messages awaiting review), deleted ones left out."""
    row = (
        await session.execute(
            select(
                func.count().filter(Message.review_result.is_(True)),
                func.count().filter(Message.review_result.is_(None)),
            ).where(Message.tree_id == tree_id, Message.deleted.is_(False))
        )
    ).one()
    return row[0] or 0, row[1] or 0


def live_children_count(message: Any) -> Any:
    """Correlated count of a message's children that are not deleted and not rejected."""
    child = Message.__table__.alias("child")
    return (
        select(func.count()).select_from(child)
        .where(child.c.parent_id == message.id, child.c.deleted.is_(False),
               or_(child.c.review_result.is_(None), child.c.review_result.is_(True)))
        .scalar_subquery()
    )


def reply_capacity(ctx: Context, message: Any) -> Any:
    """How many live replies a message may have: ``max_children`` for user turns, and
    ``num_prompter_replies`` (Open-Assistant: 1) for assistant messages."""
    settings = ctx.settings
    return case((message.role == Role.ASSISTANT, settings.num_prompter_replies), else_=settings.max_children)


def takes_replies(ctx: Context, message: Any) -> Any:
    """An accepted, non-deleted message above the depth limit. With ``answer_prompter_turns`` (our
    extension) an assistant message takes a user reply only when that user turn could still be answered
    within the depth limit, so no tree is built with user turns nobody may answer."""
    settings = ctx.settings
    conditions = [message.deleted.is_(False), message.review_result.is_(True), message.depth < settings.max_tree_depth]
    if settings.answer_prompter_turns:
        conditions.append(or_(message.role != Role.ASSISTANT, message.depth + 1 < settings.max_tree_depth))
    return and_(*conditions)


def open_prompter_turn(ctx: Context, message: Any, live_children: Any) -> Any:
    """A user turn (not the prompt) that has no live answer yet and may still get one."""
    return and_(message.role == Role.PROMPTER, message.depth > 0, message.depth < ctx.settings.max_tree_depth,
                live_children == 0)


async def can_grow(session: AsyncSession, ctx: Context, tree_id: int) -> bool:
    """Some accepted message above the depth limit still has room for a reply."""
    found = await session.scalar(
        select(Message.id).where(
            Message.tree_id == tree_id, takes_replies(ctx, Message),
            live_children_count(Message) < reply_capacity(ctx, Message),
        ).limit(1)
    )
    return found is not None


async def has_open_prompter_turn(session: AsyncSession, ctx: Context, tree_id: int) -> bool:
    found = await session.scalar(
        select(Message.id).where(
            Message.tree_id == tree_id, takes_replies(ctx, Message),
            open_prompter_turn(ctx, Message, live_children_count(Message)),
        ).limit(1)
    )
    return found is not None


async def rankable_sets(session: AsyncSession, ctx: Context, tree_id: int) -> dict[int, list[int]]:
    """Parent id -> its accepted, non-deleted children, for every parent with 2+ of them that is ranked."""
    parent = Message.__table__.alias("parent")
    rows = (
        await session.execute(
            select(Message.parent_id, Message.id)
            .join(parent, parent.c.id == Message.parent_id)
            .where(
                Message.tree_id == tree_id, Message.deleted.is_(False), Message.review_result.is_(True),
                parent.c.deleted.is_(False), parent.c.review_result.is_(True),
                parent.c.role.in_(ranked_parent_roles(ctx)),
            )
            .order_by(Message.parent_id, Message.id)
        )
    ).all()
    sets: dict[int, list[int]] = {}
    for parent_id, child_id in rows:
        sets.setdefault(parent_id, []).append(child_id)
    return {p: children for p, children in sets.items() if len(children) >= 2}


async def ranking_counts(session: AsyncSession, parent_ids: list[int]) -> dict[int, tuple[int, int]]:
    """Parent id -> (real rankings, 'not rankable' verdicts)."""
    if not parent_ids:
        return {}
    rows = (
        await session.execute(
            select(
                Ranking.parent_id,
                func.count().filter(Ranking.not_rankable.is_(False)),
                func.count().filter(Ranking.not_rankable.is_(True)),
            )
            .where(Ranking.parent_id.in_(parent_ids))
            .group_by(Ranking.parent_id)
        )
    ).all()
    counts = {p: (0, 0) for p in parent_ids}
    counts.update({p: (real or 0, flagged or 0) for p, real, flagged in rows})
    return counts


def settled(counts: tuple[int, int], ctx: Context) -> bool:
    """A set is done when it has enough rankings, or enough people called it not rankable."""
    real, not_rankable = counts
    return real >= ctx.settings.rankings_needed or not_rankable >= ctx.settings.rankings_needed


async def leave_growing(session: AsyncSession, ctx: Context, tree: MessageTree, state: str) -> None:
    was_growing = tree.state == TreeState.GROWING
    set_state(tree, state, ctx)
    await cancel_open_tasks(session, tree_id=tree.id, kinds=REPLY_KINDS)
    if was_growing:
        await session.flush()
        await promote_lottery(session, ctx, tree.lang)


async def abort_tree(session: AsyncSession, ctx: Context, tree: MessageTree) -> None:
    await leave_growing(session, ctx, tree, TreeState.ABORTED_LOW_GRADE)
    await cancel_open_tasks(session, tree_id=tree.id)


async def advance_tree(session: AsyncSession, ctx: Context, tree: MessageTree) -> str:
    """Move the tree through every transition its data allows; returns the final state."""
    await session.flush()
    for _ in range(5):
        before = tree.state
        if tree.state == TreeState.GROWING:
            accepted, pending = await tree_counts(session, tree.id)
            if pending == 0 and (
                accepted >= ctx.settings.goal_tree_size or not await can_grow(session, ctx, tree.id)
            ) and not (ctx.settings.answer_prompter_turns and await has_open_prompter_turn(session, ctx, tree.id)):
                await leave_growing(session, ctx, tree, TreeState.RANKING)
        elif tree.state in RANKING_STATES:
            sets = await rankable_sets(session, ctx, tree.id)
            counts = await ranking_counts(session, list(sets))
            if all(settled(counts[p], ctx) for p in sets):
                set_state(tree, TreeState.READY_FOR_SCORING, ctx)
                await cancel_open_tasks(session, tree_id=tree.id, kinds=RANK_KINDS)
        elif tree.state in (TreeState.READY_FOR_SCORING, TreeState.SCORING_FAILED):
            await score_tree_safely(session, ctx, tree)
            break  # one scoring attempt per call; a failure is retried by maintain_trees
        if tree.state == before:
            break
    await session.flush()
    return tree.state


async def score_tree_safely(session: AsyncSession, ctx: Context, tree: MessageTree) -> bool:
    """Score in a savepoint: a failure leaves no partial points and parks the tree in scoring_failed."""
    try:
        async with session.begin_nested():
            await score_tree(session, ctx, tree)
    except Exception:
        log.exception("scoring tree %s failed; maintain_trees will retry", tree.id)
        set_state(tree, TreeState.SCORING_FAILED, ctx)
        return False
    set_state(tree, TreeState.READY_FOR_EXPORT, ctx)
    return True


async def score_tree(session: AsyncSession, ctx: Context, tree: MessageTree) -> None:
    """Consensus rank on every sibling set; each ranking's agreement with the consensus of the other
    rankings of its set (leave-one-out), and the agreement bonus from it. Placement points were paid
    per ranking when each was submitted."""
    sets = await rankable_sets(session, ctx, tree.id)
    for parent_id, children in sets.items():
        rankings = (
            await session.scalars(
                select(Ranking).where(Ranking.parent_id == parent_id, Ranking.not_rankable.is_(False))
                .order_by(Ranking.id)
            )
        ).all()
        if not rankings:
            continue
        orders = [r.ordered_ids for r in rankings]
        consensus = ranked_pairs(children, orders)
        messages = {
            m.id: m for m in (await session.scalars(select(Message).where(Message.id.in_(children)))).all()
        }
        for position, message_id in enumerate(consensus):
            messages[message_id].rank = position
        for ranking, measured in zip(rankings, leave_one_out_agreements(children, orders), strict=True):
            ranking.agreement = measured
            if measured is not None:
                await points.award(
                    session, ctx, ranking.user_id,
                    ctx.settings.points.ranking_agreement_bonus * measured, "ranking_agreement",
                    detail=f"agreement {measured:.2f} with the other rankings", message_id=parent_id,
                    task_id=ranking.task_id,
                )
    await session.flush()
