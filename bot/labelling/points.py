"""Score events, levels and streaks. Every point a user gets is one ScoreEvent with a reason."""

from __future__ import annotations

from bisect import bisect_right
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from bot.labelling.context import Context
from storage.models import ScoreDaily, ScoreEvent, User

# What an author earns through their own message; a deleted message takes these back.
AUTHOR_REASONS = ("initial_prompt", "initial_prompt_accepted", "assistant_reply", "assistant_reply_accepted",
                  "prompter_reply", "prompter_reply_accepted", "placement", "placement_1", "placement_2",
                  "placement_3", "message_deleted")


def _level_thresholds(baseline: float = 3, alpha: float = 1.1521, levels: int = 100) -> tuple[int, ...]:
    """Open-Assistant's table (user_stats_repository.get_thresholds): 0, 4, 9, 16, 24, 32, 42, ...
    = [0] + round(cumsum(k * alpha + baseline)) for k = 1..99; the last is 6000."""
    thresholds, total = [0], 0.0
    for k in range(1, levels):
        total += k * alpha + baseline
        thresholds.append(round(total))
    return tuple(thresholds)


LEVEL_THRESHOLDS = _level_thresholds()
MAX_LEVEL = len(LEVEL_THRESHOLDS) - 1

# Reason codes of score events, with the words a user sees in their points history.
REASONS = {
    "initial_prompt": "wrote a prompt",
    "initial_prompt_accepted": "your prompt passed review",
    "assistant_reply": "wrote an assistant reply",
    "assistant_reply_accepted": "your assistant reply passed review",
    "prompter_reply": "wrote a user reply",
    "prompter_reply_accepted": "your user reply passed review",
    "label_simple": "reviewed a message (simple)",
    "label_full": "reviewed a message (full)",
    "ranking": "ranked replies",
    "ranking_agreement": "your ranking agreed with the consensus",
    "placement": "the consensus ranked your reply among the best",
    "placement_1": "a ranking put your reply first",
    "placement_2": "a ranking put your reply second",
    "placement_3": "a ranking put your reply third",
    "message_deleted": "a moderator removed your message; its points were taken back",
}


def level_for(points: float) -> int:
    """Level 0 from 0 points, level 1 from 4, level 2 from 9, … level 99 from 6000."""
    return max(0, bisect_right(LEVEL_THRESHOLDS, points + 1e-9) - 1)


def points_for_level(level: int) -> float:
    return float(LEVEL_THRESHOLDS[min(level, MAX_LEVEL)])


async def award(
    session: AsyncSession,
    ctx: Context,
    user_id: int | None,
    points: float,
    reason: str,
    *,
    detail: str | None = None,
    message_id: int | None = None,
    task_id: int | None = None,
) -> float:
    """Record a score event and add it to the user's total and to their total of the (UTC) day, in
    the same transaction: both always equal the sum of their events."""
    if user_id is None or points <= 0:
        return 0.0
    await _record(session, ctx, user_id, points, reason, detail=detail, message_id=message_id, task_id=task_id)
    return points


async def take_back(session: AsyncSession, ctx: Context, author_by_message: dict[int, int | None]) -> float:
    """Cancel what authors earned through these messages (writing, acceptance, placement): one negative
    event per message, so removed spam earns nothing. Idempotent: the net of a message that was already
    taken back is zero. Returns the points taken back."""
    authored = [(m, a) for m, a in author_by_message.items() if a is not None]
    if not authored:
        return 0.0
    rows = (await session.execute(
        select(ScoreEvent.message_id, ScoreEvent.user_id, func.sum(ScoreEvent.points))
        .where(ScoreEvent.message_id.in_([m for m, _ in authored]), ScoreEvent.reason.in_(AUTHOR_REASONS))
        .group_by(ScoreEvent.message_id, ScoreEvent.user_id)
    )).all()
    owed = {(m, u): total for m, u, total in rows}
    taken = 0.0
    for message_id, author in authored:
        net = owed.get((message_id, author)) or 0.0
        if net > 1e-9:
            await _record(session, ctx, author, -net, "message_deleted", message_id=message_id,
                          detail=f"message {message_id} removed")
            taken += net
    return taken


def placement_reason(position: int) -> str:
    """The score-event reason of a reply placed at ``position`` (0 = best) by one ranking."""
    return f"placement_{position + 1}"


async def first_places(session: AsyncSession, user_ids: list[int], *, since: datetime) -> dict[int, int]:
    """How often a ranking put each user's reply first since ``since`` (the prompt lottery's weight).
    Read from the placement events, one index range per user."""
    if not user_ids:
        return {}
    rows = (await session.execute(
        select(ScoreEvent.user_id, func.count())
        .where(ScoreEvent.user_id.in_(user_ids), ScoreEvent.created_at >= since,
               ScoreEvent.reason == placement_reason(0))
        .group_by(ScoreEvent.user_id)
    )).all()
    return {user_id: count for user_id, count in rows}


async def _record(session: AsyncSession, ctx: Context, user_id: int, points: float, reason: str, *,
                  detail: str | None, message_id: int | None, task_id: int | None = None) -> None:
    now = ctx.now()
    session.add(
        ScoreEvent(
            user_id=user_id, points=points, reason=reason, detail=detail,
            message_id=message_id, task_id=task_id, created_at=now,
        )
    )
    await session.execute(
        update(User).where(User.id == user_id).values(points=User.points + points),
        execution_options={"synchronize_session": False},
    )
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    daily = insert(ScoreDaily).values(user_id=user_id, day=utc_day(now), points=points)
    await session.execute(
        daily.on_conflict_do_update(
            index_elements=[ScoreDaily.user_id, ScoreDaily.day],
            set_={"points": ScoreDaily.points + daily.excluded.points},
        )
    )


def utc_day(moment: datetime) -> date:
    """The UTC calendar day a score event counts for in score_daily."""
    return moment.astimezone(UTC).date()


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def touch_streak(user: User, ctx: Context) -> None:
    """Consecutive active (UTC) days; a gap longer than ``streak_reset_hours`` starts over."""
    now = ctx.now()
    last = user.last_active_at
    if last is None or now - last > timedelta(hours=ctx.settings.streak_reset_hours):
        user.streak_days = 1
    elif now.date() > last.date():
        user.streak_days = (user.streak_days or 0) + 1
    elif not user.streak_days:
        user.streak_days = 1
    user.last_active_at = now


def period_start(period: str, now: datetime) -> datetime | None:
    spans = {"day": timedelta(days=1), "week": timedelta(days=7), "month": timedelta(days=30)}
    if period == "all":
        return None
    if period not in spans:
        raise ValueError(f"unknown period {period!r}; use day, week, month or all")
    return now - spans[period]
