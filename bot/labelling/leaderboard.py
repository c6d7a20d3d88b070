"""Leaderboards (last day, week, month, all time), a user's own rank and stats, points history."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.labelling.context import Context
from bot.labelling.errors import UnknownUser
from bot.labelling.points import REASONS, level_for, period_start, points_for_level
from storage.enums import TaskKind, TaskState
from storage.models import Message, Ranking, ScoreEvent, Task, User

PERIODS = ("day", "week", "month", "all")


@dataclass(frozen=True)
class LeaderboardEntry:
    rank: int
    user_id: int
    discord_id: int
    display_name: str
    points: float
    level: int


@dataclass(frozen=True)
class UserStats:
    user_id: int
    display_name: str
    points: float
    level: int
    next_level_points: float | None
    streak_days: int
    # period -> (rank among visible users or None when not ranked, points in the period)
    ranks: dict[str, tuple[int | None, float]] = field(default_factory=dict)
    prompts: int = 0
    replies: int = 0
    labels: int = 0
    rankings: int = 0
    mean_agreement: float | None = None
    good_rankings: int = 0
    skips: int = 0


@dataclass(frozen=True)
class ScoreLine:
    points: float
    reason: str
    explanation: str
    detail: str | None
    message_id: int | None
    created_at: datetime


def _visible(include_synthetic: bool) -> list:
    conditions = [User.banned.is_(False), User.opted_out.is_(False)]
    if not include_synthetic:
        conditions.append(User.synthetic.is_(False))
    return conditions


def _period_totals(since: datetime) -> Any:
    """Points per user since ``since``. Grouping by ``user_id + 0`` keeps SQLite on the covering
    (created_at, user_id, points) index: grouping by the bare column lures it into skip-scanning the
    (user_id, created_at) index, which is ten times slower on a large table."""
    user_id = ScoreEvent.user_id + literal_column("0")
    return (
        select(user_id.label("user_id"), func.sum(ScoreEvent.points).label("total"))
        .where(ScoreEvent.created_at >= since)
        .group_by(user_id)
        .subquery()
    )


async def leaderboard(session: AsyncSession, ctx: Context, period: str = "week", limit: int = 10, *,
                      include_synthetic: bool = False) -> list[LeaderboardEntry]:
    """Top users by points earned in the period; banned and opted-out users are hidden."""
    since = period_start(period, ctx.now())
    if since is None:
        query = (
            select(User.id, User.discord_id, User.display_name, User.points, User.points)
            .where(*_visible(include_synthetic), User.points > 0)
            .order_by(User.points.desc(), User.id)
            .limit(limit)
        )
    else:
        totals = _period_totals(since)
        query = (
            select(User.id, User.discord_id, User.display_name, totals.c.total, User.points)
            .join(totals, totals.c.user_id == User.id)
            .where(*_visible(include_synthetic))
            .order_by(totals.c.total.desc(), User.id)
            .limit(limit)
        )
    rows = (await session.execute(query)).all()
    return [
        LeaderboardEntry(position, user_id, discord_id, name, round(float(total), 2), level_for(all_time or 0))
        for position, (user_id, discord_id, name, total, all_time) in enumerate(rows, start=1)
    ]


async def _period_rank(session: AsyncSession, ctx: Context, user: User, period: str,
                       include_synthetic: bool) -> tuple[int | None, float]:
    since = period_start(period, ctx.now())
    if since is None:
        mine = float(user.points or 0)
        if mine <= 0:
            return None, 0.0
        above = await session.scalar(
            select(func.count()).select_from(User).where(*_visible(include_synthetic), User.points > mine)
        )
        return (above or 0) + 1, round(mine, 2)
    mine = await session.scalar(
        select(func.sum(ScoreEvent.points)).where(ScoreEvent.user_id == user.id, ScoreEvent.created_at >= since)
    )
    if not mine:
        return None, 0.0
    totals = _period_totals(since)
    above = await session.scalar(
        select(func.count()).select_from(totals).join(User, User.id == totals.c.user_id)
        .where(*_visible(include_synthetic), totals.c.total > mine)
    )
    return (above or 0) + 1, round(float(mine), 2)


async def user_stats(session: AsyncSession, ctx: Context, user_id: int, *,
                     include_synthetic: bool = True) -> UserStats:
    user = await session.get(User, user_id)
    if user is None:
        raise UnknownUser("user_not_found")
    await session.refresh(user, ["points"])
    total = float(user.points or 0)
    level = level_for(total)
    ranks = {p: await _period_rank(session, ctx, user, p, include_synthetic or user.synthetic) for p in PERIODS}
    prompts = await session.scalar(select(func.count()).select_from(Message).where(
        Message.author_id == user_id, Message.parent_id.is_(None)))
    replies = await session.scalar(select(func.count()).select_from(Message).where(
        Message.author_id == user_id, Message.parent_id.is_not(None)))
    labels = await session.scalar(select(func.count()).select_from(Task).where(
        Task.user_id == user_id, Task.state == TaskState.DONE,
        Task.kind.in_([TaskKind.LABEL_INITIAL_PROMPT, TaskKind.LABEL_ASSISTANT_REPLY, TaskKind.LABEL_PROMPTER_REPLY])))
    skips = await session.scalar(select(func.count()).select_from(Task).where(
        Task.user_id == user_id, Task.state == TaskState.SKIPPED))
    ranking_row = (await session.execute(
        select(func.count(), func.avg(Ranking.agreement),
               func.count().filter(Ranking.agreement > ctx.settings.good_agreement))
        .where(Ranking.user_id == user_id)
    )).one()
    return UserStats(
        user_id=user.id, display_name=user.display_name, points=round(total, 2), level=level,
        next_level_points=None if level >= 100 else points_for_level(level + 1),
        streak_days=user.streak_days or 0, ranks=ranks, prompts=prompts or 0, replies=replies or 0,
        labels=labels or 0, rankings=ranking_row[0] or 0,
        mean_agreement=None if ranking_row[1] is None else round(float(ranking_row[1]), 3),
        good_rankings=ranking_row[2] or 0, skips=skips or 0,
    )


async def score_history(session: AsyncSession, user_id: int, limit: int = 20) -> list[ScoreLine]:
    """How the user's points were earned, newest first, each with its reason in plain words."""
    events = (
        await session.scalars(
            select(ScoreEvent).where(ScoreEvent.user_id == user_id)
            .order_by(ScoreEvent.created_at.desc(), ScoreEvent.id.desc()).limit(limit)
        )
    ).all()
    return [ScoreLine(e.points, e.reason, REASONS.get(e.reason, e.reason), e.detail, e.message_id, e.created_at)
            for e in events]
