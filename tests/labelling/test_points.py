"""Points, agreement bonus, placement per ranking, streaks, leaderboards and history (levels: test_oa_parity)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from storage.enums import TaskKind
from storage.models import Ranking, ScoreDaily, ScoreEvent, User


async def _ranked_tree(campaign, orders):
    """A tree in ranking ranked by users[5:] in the given orders (indexes into the two replies)."""
    users = await campaign.users(5 + len(orders))
    _, replies = await campaign.tree_in_ranking(users)
    for ranker, order in zip(users[5:], orders, strict=True):
        offer = await campaign.service.request_task(ranker, kinds=[TaskKind.RANK_ASSISTANT_REPLIES])
        await campaign.service.submit_ranking(offer.task_id, ranker, [replies[i] for i in order])
    return users, replies


async def test_agreement_bonus_and_placement_per_ranking(make_campaign):
    from tests.labelling.conftest import SMALL

    campaign = make_campaign(**{**SMALL, "rankings_needed": 4})
    users, replies = await _ranked_tree(campaign, [(1, 0), (1, 0), (1, 0), (0, 1)])
    async with campaign.service.sessions() as session:
        agreements = dict((await session.execute(select(Ranking.user_id, Ranking.agreement))).all())
        # Each against the other three: the honest three agree fully, the odd one not at all.
        assert agreements == {users[5]: 1.0, users[6]: 1.0, users[7]: 1.0, users[8]: 0.0}
        bonus = dict((await session.execute(
            select(ScoreEvent.user_id, ScoreEvent.points).where(ScoreEvent.reason == "ranking_agreement")
        )).all())
        # ranking_agreement_bonus (2) × agreement; zero agreement earns nothing.
        assert bonus == {users[5]: 2.0, users[6]: 2.0, users[7]: 2.0}
        placement = (await session.execute(
            select(ScoreEvent.user_id, ScoreEvent.reason, ScoreEvent.points).where(ScoreEvent.reason.like("placement%"))
        )).all()
    # replies[1] is by users[2]: three rankings put it first, one second.
    expected = [(users[2], "placement_1", 9.0)] * 3 + [(users[1], "placement_2", 3.0)] * 3 + [
        (users[1], "placement_1", 9.0), (users[2], "placement_2", 3.0)]
    assert sorted(placement) == sorted(expected)


async def test_user_total_equals_the_sum_of_their_events(campaign):
    users, _ = await _ranked_tree(campaign, [(0, 1), (0, 1)])
    async with campaign.service.sessions() as session:
        for user in await session.scalars(select(User)):
            events = (await session.scalars(select(ScoreEvent.points).where(ScoreEvent.user_id == user.id))).all()
            assert user.points == pytest.approx(sum(events))
    history = await campaign.service.score_history(users[1])
    assert {line.reason for line in history} == {"assistant_reply", "assistant_reply_accepted", "placement_1"}
    assert all(line.explanation for line in history)


async def test_leaderboards_by_period_with_own_rank(campaign):
    users = await campaign.users(4)
    await campaign.prompt(users[0])  # 0.1 point, eight days ago
    campaign.clock.advance(days=8)
    await campaign.accepted_prompt(users[1], users[2:4])
    week = await campaign.service.leaderboard("week", include_synthetic=True)
    # Reviewers 2 points each for a full review (tie broken by id), the author 0.1 + 0.1 once accepted;
    # users[0] is too old.
    assert [(e.user_id, e.points) for e in week] == [(users[2], 2.0), (users[3], 2.0), (users[1], 0.2)]
    all_time = await campaign.service.leaderboard("all")
    assert {e.user_id for e in all_time} == set(users)
    assert [e.rank for e in all_time] == list(range(1, len(all_time) + 1))
    stats = await campaign.service.user_stats(users[0])
    assert stats.ranks["week"] == (None, 0.0)
    assert stats.ranks["all"] == (4, 0.1)
    assert stats.prompts == 1 and stats.level == 0 and stats.next_level_points == 4


async def test_banned_and_opted_out_users_are_hidden(campaign):
    users = await campaign.users(4)
    await campaign.accepted_prompt(users[0], users[1:3])
    await campaign.service.ban_user(users[3], users[1])
    async with campaign.service.sessions.begin() as session:
        (await session.get(User, users[2])).opted_out = True
    board = await campaign.service.leaderboard("day")
    assert [e.user_id for e in board] == [users[0]]


async def test_synthetic_users_are_hidden_unless_asked(campaign):
    info = await campaign.service.get_or_create_user(55, display_name="bot-user", synthetic=True)
    await campaign.prompt(info.id)
    assert await campaign.service.leaderboard("all") == []
    assert [e.user_id for e in await campaign.service.leaderboard("all", include_synthetic=True)] == [info.id]


async def test_streak_counts_days_and_resets_after_a_long_gap(campaign):
    (user,) = await campaign.users(1)

    async def streak() -> int:
        return (await campaign.service.user_stats(user)).streak_days

    await campaign.prompt(user, "Day one?")
    assert await streak() == 1
    campaign.clock.advance(hours=1)
    await campaign.prompt(user, "Same day?")
    assert await streak() == 1
    campaign.clock.advance(hours=24)
    await campaign.prompt(user, "Next day?")
    assert await streak() == 2
    campaign.clock.advance(hours=37)
    await campaign.prompt(user, "After a gap?")
    assert await streak() == 1


async def test_period_boards_count_exactly_from_the_start_of_the_window(campaign):
    # Whole days come from the daily totals, the first (partial) day from the events: an event a
    # minute before the window starts is out, one a minute after it on the same day is in.
    users = await campaign.users(4)
    campaign.clock.now = campaign.clock.now.replace(hour=11, minute=59)
    await campaign.prompt(users[0], "Just too old?")  # 0.1 at 11:59:00
    campaign.clock.now = campaign.clock.now.replace(hour=12, minute=1)
    await campaign.prompt(users[1], "Just recent enough?")  # 0.1 at 12:01:00
    await campaign.prompt(users[1], "Later the same day?")  # 0.1 at 12:01:30
    campaign.clock.advance(days=3)
    await campaign.prompt(users[2], "Three days later?")  # 0.1, a whole day of the window
    campaign.clock.now = campaign.clock.now.replace(hour=12, minute=0) + timedelta(days=4)  # since = day 0, 12:00
    week = {e.user_id: e.points for e in await campaign.service.leaderboard("week", include_synthetic=True)}
    assert week == {users[1]: 0.2, users[2]: 0.1}
    assert (await campaign.service.user_stats(users[0])).ranks["week"] == (None, 0.0)
    assert (await campaign.service.user_stats(users[1])).ranks["week"] == (1, 0.2)
    assert (await campaign.service.user_stats(users[2])).ranks["week"] == (2, 0.1)
    assert (await campaign.service.user_stats(users[0])).ranks["month"] == (2, 0.1)
    day = await campaign.service.leaderboard("day", include_synthetic=True)
    assert day == []
    async with campaign.service.sessions() as session:
        daily = (await session.execute(select(ScoreDaily.user_id, ScoreDaily.day, ScoreDaily.points)
                                       .order_by(ScoreDaily.day, ScoreDaily.user_id))).all()
    first = campaign.clock.now.date() - timedelta(days=7)
    assert [tuple(row) for row in daily] == [(users[0], first, pytest.approx(0.1)), (users[1], first, pytest.approx(0.2)),
                                             (users[2], first + timedelta(days=3), pytest.approx(0.1))]


async def test_own_period_rank_matches_the_board(campaign):
    users, _ = await _ranked_tree(campaign, [(0, 1), (1, 0)])
    campaign.clock.advance(hours=20)  # the window's first day is partial for every period
    for period in ("day", "week", "month", "all"):
        board = await campaign.service.leaderboard(period, limit=50, include_synthetic=True)
        assert board
        for entry in board:
            rank, points = (await campaign.service.user_stats(entry.user_id)).ranks[period]
            assert points == entry.points
            # Tied users share the best of their positions.
            assert rank == min(e.rank for e in board if e.points == entry.points)
