"""How the campaign goes, for ``/admin stats``: the figures (one read transaction of grouped counts) and
one PNG chart of them. The chart is drawn with matplotlib's object API on the Agg canvas (no pyplot, no
global state), so it is safe to draw in a worker thread; callers run ``render_chart`` off the event loop.
"""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.labelling.context import _utcnow
from storage.enums import TaskState
from storage.models import Message, MessageTree, Ranking, Task

DAYS = 30
AGREEMENT_BINS = 10


@dataclass(frozen=True)
class CampaignStats:
    trees_by_state: dict[str, int]
    tasks_done_by_kind: dict[str, int]
    contributions_by_day: list[tuple[date, int]]  # the last DAYS days, oldest first, zeros included
    agreement_histogram: list[int]  # rankings per tenth of agreement, 0-0.1 ... 0.9-1.0
    rankings_scored: int
    mean_agreement: float | None
    messages_by_language: dict[str, int]

    @property
    def trees(self) -> int:
        return sum(self.trees_by_state.values())

    @property
    def tasks_done(self) -> int:
        return sum(self.tasks_done_by_kind.values())


def _day(value: date | datetime | str) -> date:
    """SQLite's date() answers text, PostgreSQL's a date."""
    if isinstance(value, str):
        return date.fromisoformat(value[:10])
    return value.date() if isinstance(value, datetime) else value


async def campaign_stats(sessions: async_sessionmaker[AsyncSession], *, today: date | None = None) -> CampaignStats:
    today = today or _utcnow().date()
    first = today - timedelta(days=DAYS - 1)
    since = datetime.combine(first, datetime.min.time(), tzinfo=_utcnow().tzinfo)
    async with sessions() as session:
        trees = dict((await session.execute(
            select(MessageTree.state, func.count()).group_by(MessageTree.state))).all())
        tasks = dict((await session.execute(
            select(Task.kind, func.count()).where(Task.state == TaskState.DONE).group_by(Task.kind))).all())
        # A contribution is a finished task (a prompt, reply, review or ranking), on the day it was done.
        per_day = Counter()
        # UTC days: SQLite stores UTC text; PostgreSQL would use its session time zone without timezone().
        done_at = Task.done_at if session.bind.dialect.name == "sqlite" else func.timezone("UTC", Task.done_at)
        day_of = func.date(done_at)
        for day, count in (await session.execute(
            select(day_of, func.count())
            .where(Task.state == TaskState.DONE, Task.done_at >= since).group_by(day_of)
        )).all():
            per_day[_day(day)] += count
        histogram = [0] * AGREEMENT_BINS
        # Tenths of agreement, counted in the database (portable: no floor() on every SQLite); 1.0 joins the top.
        bucket = case(*[(Ranking.agreement < (i + 1) / AGREEMENT_BINS, i) for i in range(AGREEMENT_BINS - 1)],
                      else_=AGREEMENT_BINS - 1)
        for index, count in (await session.execute(
            select(bucket, func.count()).where(Ranking.agreement.is_not(None)).group_by(bucket))).all():
            histogram[int(index)] += count
        mean = await session.scalar(select(func.avg(Ranking.agreement)).where(Ranking.agreement.is_not(None)))
        languages = dict((await session.execute(
            select(Message.lang, func.count()).where(Message.deleted.is_(False)).group_by(Message.lang))).all())
    days = [(first + timedelta(days=i), per_day.get(first + timedelta(days=i), 0)) for i in range(DAYS)]
    return CampaignStats(
        trees_by_state=dict(sorted(trees.items(), key=lambda kv: -kv[1])),
        tasks_done_by_kind=dict(sorted(tasks.items(), key=lambda kv: -kv[1])),
        contributions_by_day=days,
        agreement_histogram=histogram,
        rankings_scored=sum(histogram),
        mean_agreement=None if mean is None else float(mean),
        messages_by_language=dict(sorted(languages.items(), key=lambda kv: -kv[1])),
    )


def render_chart(stats: CampaignStats) -> bytes:
    """One PNG with five panels. Blocking (tens of milliseconds): call it in a worker thread."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 8), dpi=90, layout="constrained")
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(2, 6)
    days = figure.add_subplot(grid[0, :4])
    states = figure.add_subplot(grid[0, 4:])
    kinds = figure.add_subplot(grid[1, :2])
    agreement = figure.add_subplot(grid[1, 2:4])
    languages = figure.add_subplot(grid[1, 4:])

    dates = [d for d, _ in stats.contributions_by_day]
    days.bar(range(len(dates)), [n for _, n in stats.contributions_by_day], color="#5865F2")
    ticks = list(range(0, len(dates), 5))
    days.set_xticks(ticks, [dates[i].strftime("%d %b") for i in ticks])
    days.set_title(f"Tasks done per day (last {DAYS} days)")

    def bars(axes, counts: dict[str, int], title: str, colour: str) -> None:
        labels = [label.replace("_", " ") for label in counts] or ["none"]
        axes.barh(labels, list(counts.values()) or [0], color=colour)
        axes.invert_yaxis()
        axes.tick_params(axis="y", labelsize=8)
        axes.set_title(title)

    bars(states, stats.trees_by_state, f"Trees by state ({stats.trees})", "#57F287")
    bars(kinds, stats.tasks_done_by_kind, f"Tasks done by kind ({stats.tasks_done})", "#FEE75C")
    bars(languages, dict(list(stats.messages_by_language.items())[:10]), "Messages by language", "#EB459E")
    edges = [i / AGREEMENT_BINS for i in range(AGREEMENT_BINS)]
    agreement.bar(edges, stats.agreement_histogram, width=1 / AGREEMENT_BINS, align="edge", color="#ED4245",
                  edgecolor="white")
    agreement.set_xlim(0, 1)
    agreement.set_title(f"Ranking agreement ({stats.rankings_scored} rankings)")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
