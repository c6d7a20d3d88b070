"""Leaderboards (last day, week, month, all time), a user's own rank and stats, points history."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, literal_column, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from bot.labelling.context import Context
from bot.labelling.errors import UnknownUser
from bot.labelling.points import REASONS, day_start, level_for, period_start, points_for_level, utc_day
from storage.enums import TaskKind, TaskState
from storage.models import Message, Ranking, ScoreDaily, ScoreEvent, Task, User

PERIODS = ("day", "week", "month", "all")
SUM_TOLERANCE = 1e-6


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


def _period_points(since: datetime, user_id: int | None = None) -> Any:
    """(user_id, points) rows adding up to each user's points since ``since``, exactly: the whole UTC
    days after the first day come from score_daily (one row per user and day), and only the part of
    the first day from ``since`` on is read from score_events. A week is then at most 6 daily rows
    per user plus a partial day of events, instead of every event of the week."""
    first_day = utc_day(since)
    # ``+ 0`` keeps SQLite on the covering (day|created_at, user_id, points) indexes: a bare user_id
    # lures it into skip-scanning the (user_id, ...) index, which is far slower on a large table.
    days = select((ScoreDaily.user_id + literal_column("0")).label("user_id"), ScoreDaily.points.label("points")) \
        .where(ScoreDaily.day > first_day)
    edge = select((ScoreEvent.user_id + literal_column("0")).label("user_id"), ScoreEvent.points.label("points")) \
        .where(ScoreEvent.created_at >= since, ScoreEvent.created_at < day_start(first_day + timedelta(days=1)))
    if user_id is not None:
        # One user's own total: their primary-key and (user_id, created_at) ranges instead.
        days = days.where(ScoreDaily.user_id == user_id)
        edge = edge.where(ScoreEvent.user_id == user_id)
    return union_all(days, edge).subquery()


def _period_totals(since: datetime) -> Any:
    """Points per user since ``since``."""
    parts = _period_points(since)
    return (
        select(parts.c.user_id, func.sum(parts.c.points).label("total"))
        .group_by(parts.c.user_id)
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
            .where(*_visible(include_synthetic), totals.c.total > SUM_TOLERANCE)
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
    own = _period_points(since, user.id)
    mine = await session.scalar(select(func.sum(own.c.points)))
    if mine is None or mine <= SUM_TOLERANCE:
        return None, round(float(mine or 0), 2)
    totals = _period_totals(since)
    # The same sums added in another order may differ in the last bits: without the tolerance a user
    # could count themselves as above themselves.
    above = await session.scalar(
        select(func.count()).select_from(totals).join(User, User.id == totals.c.user_id)
        .where(*_visible(include_synthetic), totals.c.total > mine + SUM_TOLERANCE)
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


@dataclass(frozen=True)
class LeaderboardPage:
    period: str
    page: int  # 0-based, clamped to the pages there are
    pages: int
    ranked_users: int
    entries: list[LeaderboardEntry]


def _ranked(ctx: Context, period: str, include_synthetic: bool) -> Any:
    """Every visible user with points in the period, with a competition rank (ties share one: 1, 2, 2, 4)
    and a position that breaks ties by user id, so pages neither skip nor repeat anyone."""
    since = period_start(period, ctx.now())
    if since is None:
        scored = (
            select(User.id, User.discord_id, User.display_name, User.points.label("score"),
                   User.points.label("all_time"))
            .where(*_visible(include_synthetic), User.points > 0)
        )
    else:
        totals = _period_totals(since)
        scored = (
            select(User.id, User.discord_id, User.display_name, totals.c.total.label("score"),
                   User.points.label("all_time"))
            .join(totals, totals.c.user_id == User.id)
            .where(*_visible(include_synthetic), totals.c.total > SUM_TOLERANCE)
        )
    scored = scored.subquery()
    # Sums of the same events added in another order may differ in the last bits: compare in micro-points.
    key = func.round(scored.c.score * 1_000_000)
    return select(
        scored,
        func.rank().over(order_by=key.desc()).label("rank"),
        func.row_number().over(order_by=(key.desc(), scored.c.id)).label("position"),
    ).subquery()


def _entry(row: Any) -> LeaderboardEntry:
    return LeaderboardEntry(row.rank, row.id, row.discord_id, row.display_name, round(float(row.score), 2),
                            level_for(row.all_time or 0))


async def leaderboard_page(session: AsyncSession, ctx: Context, period: str, page: int, page_size: int = 10, *,
                           include_synthetic: bool = False) -> LeaderboardPage:
    """One page of the period's board (hidden users left out); a page past the end shows the last one."""
    ranked = _ranked(ctx, period, include_synthetic)
    count = await session.scalar(select(func.count()).select_from(ranked)) or 0
    pages = max(1, -(-count // page_size))
    page = min(max(page, 0), pages - 1)
    rows = (await session.execute(
        select(ranked).order_by(ranked.c.position).offset(page * page_size).limit(page_size)
    )).all()
    return LeaderboardPage(period, page, pages, count, [_entry(row) for row in rows])


async def board_position(session: AsyncSession, ctx: Context, user_id: int, period: str, *,
                         include_synthetic: bool = False) -> tuple[LeaderboardEntry, int] | None:
    """The user's line on the period's board and its 0-based position there; None when they are not on it
    (no points in the period, or hidden)."""
    ranked = _ranked(ctx, period, include_synthetic)
    row = (await session.execute(select(ranked).where(ranked.c.id == user_id))).one_or_none()
    return None if row is None else (_entry(row), row.position - 1)
