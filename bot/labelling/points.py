"""Score events, levels and streaks. Every point a user gets is one ScoreEvent with a reason."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from bot.labelling.context import Context
from storage.models import ScoreDaily, ScoreEvent, User

MAX_LEVEL = 100

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
}


def level_for(points: float) -> int:
    """Level n needs (n + 1)² points: level 1 at 4, level 2 at 9, …; capped at 100."""
    if points < 4:
        return 0
    return min(MAX_LEVEL, math.isqrt(int(points + 1e-9)) - 1)


def points_for_level(level: int) -> float:
    return float((level + 1) ** 2)


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
    return points


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
