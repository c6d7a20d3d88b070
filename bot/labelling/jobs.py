"""Background jobs for the bot's scheduler (plain async functions, one transaction each)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import LabellingSettings
from bot.labelling.context import Context
from bot.labelling.trees import advance_tree, promote_lottery
from storage.enums import TaskState, TreeState
from storage.models import MessageTree, Task


async def expire_tasks_in(session: AsyncSession, ctx: Context) -> int:
    """Offered tasks past their expiry are released: their work is offered to others again."""
    result = await session.execute(
        update(Task)
        .where(Task.state == TaskState.OFFERED, Task.expires_at <= ctx.now())
        .values(state=TaskState.EXPIRED),
        execution_options={"synchronize_session": False},
    )
    return result.rowcount or 0


def _context(rules: LabellingSettings | Context) -> Context:
    return rules if isinstance(rules, Context) else Context(rules)


async def expire_tasks(sessions: async_sessionmaker[AsyncSession], rules: LabellingSettings | Context) -> int:
    """Scheduler job: ``expire_tasks(sessions, settings.labelling)``; returns how many were released."""
    async with sessions.begin() as session:
        return await expire_tasks_in(session, _context(rules))


@dataclass
class MaintenanceReport:
    promoted: list[int] = field(default_factory=list)
    advanced: dict[int, str] = field(default_factory=dict)


MAINTAINED_STATES = (TreeState.GROWING, TreeState.RANKING, TreeState.BACKLOG_RANKING, TreeState.READY_FOR_SCORING,
                     TreeState.SCORING_FAILED)


async def promote_all_lotteries(session: AsyncSession, ctx: Context) -> list[int]:
    promoted: list[int] = []
    langs = (await session.scalars(
        select(MessageTree.lang).where(MessageTree.state == TreeState.PROMPT_LOTTERY_WAITING).distinct()
    )).all()
    for lang in langs:
        promoted += await promote_lottery(session, ctx, lang)
    return promoted


async def advance_one(session: AsyncSession, ctx: Context, tree_id: int) -> tuple[str, str] | None:
    """(state before, state after) of one tree moved on through any transition now due."""
    tree = await session.get(MessageTree, tree_id, with_for_update=True)
    if tree is None or tree.state not in MAINTAINED_STATES:
        return None
    before = tree.state
    return before, await advance_tree(session, ctx, tree)


async def maintain_trees(sessions: async_sessionmaker[AsyncSession],
                         rules: LabellingSettings | Context) -> MaintenanceReport:
    """Scheduler job: ``maintain_trees(sessions, settings.labelling)``. Fills free growing slots from the
    lottery, retries failed scoring and moves on any tree whose transition is due (e.g. after a
    settings change lowered a threshold). One short transaction per tree, so a large campaign's sweep
    never holds the database's write lock for long."""
    ctx = _context(rules)
    async with sessions.begin() as session:
        report = MaintenanceReport(promoted=await promote_all_lotteries(session, ctx))
    async with sessions() as session:
        ids = (await session.scalars(
            select(MessageTree.id).where(MessageTree.state.in_(MAINTAINED_STATES)).order_by(MessageTree.id)
        )).all()
    for tree_id in ids:
        async with sessions.begin() as session:
            moved = await advance_one(session, ctx, tree_id)
        if moved and moved[0] != moved[1]:
            report.advanced[tree_id] = moved[1]
    return report
