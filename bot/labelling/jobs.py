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


async def maintain_trees_in(session: AsyncSession, ctx: Context) -> MaintenanceReport:
    """Fill free growing slots from the lottery, retry failed scoring, and move on any tree whose
    transition is due (e.g. after a settings change lowered a threshold)."""
    report = MaintenanceReport()
    langs = (await session.scalars(
        select(MessageTree.lang).where(MessageTree.state == TreeState.PROMPT_LOTTERY_WAITING).distinct()
    )).all()
    for lang in langs:
        report.promoted += await promote_lottery(session, ctx, lang)
    due = (await session.scalars(
        select(MessageTree).where(MessageTree.state.in_(
            [TreeState.GROWING, TreeState.RANKING, TreeState.BACKLOG_RANKING, TreeState.READY_FOR_SCORING,
             TreeState.SCORING_FAILED]
        )).order_by(MessageTree.id)
    )).all()
    for tree in due:
        before = tree.state
        after = await advance_tree(session, ctx, tree)
        if after != before:
            report.advanced[tree.id] = after
    return report


async def maintain_trees(sessions: async_sessionmaker[AsyncSession],
                         rules: LabellingSettings | Context) -> MaintenanceReport:
    """Scheduler job: ``maintain_trees(sessions, settings.labelling)``."""
    async with sessions.begin() as session:
        return await maintain_trees_in(session, _context(rules))
