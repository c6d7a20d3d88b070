"""The campaign figures behind /admin stats, and the chart drawn from them."""

from __future__ import annotations

import struct
from datetime import UTC, date, datetime, timedelta

from bot.admin.stats import AGREEMENT_BINS, DAYS, campaign_stats, render_chart
from storage.enums import TaskState, TreeState
from storage.models import Message, MessageTree, Ranking, Task, User

TODAY = date(2026, 3, 10)


def at(days_ago: int, hour: int = 12) -> datetime:
    return datetime.combine(TODAY - timedelta(days=days_ago), datetime.min.time(), tzinfo=UTC) + timedelta(hours=hour)


async def test_figures_by_state_kind_day_agreement_and_language(sessions):
    async with sessions.begin() as s:
        user = User(discord_id=1, display_name="u")
        s.add(user)
        trees = [MessageTree(state=state, lang=lang) for state, lang in (
            (TreeState.GROWING, "en"), (TreeState.GROWING, "de"), (TreeState.READY_FOR_EXPORT, "en"))]
        s.add_all(trees)
        await s.flush()
        prompt = Message(tree_id=trees[0].id, role="prompter", text="a", lang="en", author_id=user.id)
        s.add_all([prompt, Message(tree_id=trees[1].id, role="prompter", text="b", lang="de", author_id=user.id),
                   Message(tree_id=trees[2].id, role="prompter", text="c", lang="en", author_id=user.id,
                           deleted=True)])
        # Done today (twice, once late at night), 29 days ago (the first day shown), 30 days ago (too old).
        for kind, days_ago, hour in (("assistant_reply", 0, 1), ("assistant_reply", 0, 23), ("ranking", 29, 0),
                                     ("ranking", 30, 23)):
            s.add(Task(kind=kind, user_id=user.id, lang="en", state=TaskState.DONE, created_at=at(days_ago),
                       expires_at=at(days_ago) + timedelta(days=2), done_at=at(days_ago, hour)))
        s.add(Task(kind="ranking", user_id=user.id, lang="en", state=TaskState.EXPIRED, created_at=at(1),
                   expires_at=at(1)))
        await s.flush()
        for i, agreement in enumerate((0.0, 0.05, 0.55, 0.99, 1.0, None)):
            ranker = User(discord_id=100 + i, display_name=f"r{i}")
            s.add(ranker)
            await s.flush()
            s.add(Ranking(parent_id=prompt.id, user_id=ranker.id, ordered_ids=[], agreement=agreement))

    stats = await campaign_stats(sessions, today=TODAY)
    assert stats.trees_by_state == {"growing": 2, "ready_for_export": 1}
    assert stats.tasks_done_by_kind == {"ranking": 2, "assistant_reply": 2}
    assert len(stats.contributions_by_day) == DAYS
    assert stats.contributions_by_day[0] == (TODAY - timedelta(days=29), 1)
    assert stats.contributions_by_day[-1] == (TODAY, 2)
    assert sum(n for _, n in stats.contributions_by_day) == 3
    assert len(stats.agreement_histogram) == AGREEMENT_BINS
    assert stats.agreement_histogram[0] == 2 and stats.agreement_histogram[5] == 1
    assert stats.agreement_histogram[9] == 2 and stats.rankings_scored == 5
    assert abs(stats.mean_agreement - (0.0 + 0.05 + 0.55 + 0.99 + 1.0) / 5) < 1e-9
    assert stats.messages_by_language == {"en": 1, "de": 1}


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


async def test_chart_is_a_png_even_for_an_empty_campaign(sessions):
    png = render_chart(await campaign_stats(sessions, today=TODAY))
    assert png_size(png) == (1080, 720)
    assert 10_000 < len(png) < 1_000_000
