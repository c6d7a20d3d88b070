"""The member-facing service: leaderboard pages with the caller's standing, profiles, work overview, settings."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.labelling import leaderboard, points
from bot.labelling.members import (
    PAGE_SIZE,
    Member,
    MemberRefused,
    MemberService,
    display_pseudonym,
    level_progress,
)
from bot.labelling.points import level_for, points_for_level
from storage.enums import TaskKind
from storage.models import User
from tests.labelling.conftest import SMALL

SALT = b"test-salt"


@pytest.fixture
def members(campaign) -> MemberService:
    return MemberService(campaign.service, salt=SALT)


async def give(service, discord_id: int, amount: float, *, name: str | None = None, **flags) -> int:
    """A user with ``amount`` points (one score event), made through the engine's own award()."""
    async with service.sessions.begin() as session:
        user = await session.scalar(select(User).where(User.discord_id == discord_id))
        if user is None:
            user = User(discord_id=discord_id, display_name=name or f"user{discord_id}", **flags)
            session.add(user)
            await session.flush()
        await points.award(session, service.ctx, user.id, amount, "ranking")
        return user.id


def test_pseudonyms_are_stable_short_and_keyed():
    first = display_pseudonym(SALT, 123456789012345678)
    assert first == display_pseudonym(SALT, 123456789012345678)
    assert first.startswith("Contributor ") and len(first) == len("Contributor ") + 4
    assert "123456789012345678" not in first
    assert any(display_pseudonym(b"other", n) != display_pseudonym(SALT, n) for n in range(5))


@pytest.mark.parametrize("amount", [0, 3.5, 4, 10, 50.25, 10**9])
def test_level_progress_runs_from_this_level_to_the_next(amount):
    progress = level_progress(amount)
    assert progress.level == level_for(amount)
    assert 0.0 <= progress.fraction <= 1.0
    if progress.next_level_points is None:
        assert progress.fraction == 1.0
    else:
        assert progress.next_level_points == points_for_level(progress.level + 1)
        assert progress.floor <= amount < progress.next_level_points


async def test_pages_rank_ties_together_and_count_everyone(campaign):
    service = campaign.service
    for index, amount in enumerate([5, 9, 9, 3, 1, 7, 2, 8, 6, 4, 10, 0.5]):
        await give(service, 5000 + index, amount)
    await give(service, 6000, 100, synthetic=True)
    await give(service, 6001, 100, opted_out=True)
    await give(service, 6002, 100, banned=True)
    async with service.sessions() as session:
        first = await leaderboard.leaderboard_page(session, service.ctx, "week", 0, 5)
        second = await leaderboard.leaderboard_page(session, service.ctx, "all", 1, 5)
        beyond = await leaderboard.leaderboard_page(session, service.ctx, "day", 99, 5)
        mine = await leaderboard.board_position(session, service.ctx, (await session.scalar(
            select(User.id).where(User.discord_id == 5004))), "week")
        hidden = await leaderboard.board_position(session, service.ctx, (await session.scalar(
            select(User.id).where(User.discord_id == 6001))), "week")
    assert first.ranked_users == 12 and first.pages == 3
    assert [(e.rank, e.points) for e in first.entries] == [(1, 10), (2, 9), (2, 9), (4, 8), (5, 7)]
    assert [e.discord_id for e in first.entries[1:3]] == [5001, 5002]  # a tie keeps a stable order
    assert [(e.rank, e.points) for e in second.entries] == [(6, 6), (7, 5), (8, 4), (9, 3), (10, 2)]
    assert beyond.page == 2 and [e.points for e in beyond.entries] == [1, 0.5]
    assert mine is not None and mine[0].rank == 11 and mine[1] == 10
    assert hidden is None


async def test_caller_standing_is_shown_beyond_the_first_page(campaign, members):
    for index in range(PAGE_SIZE + 2):
        await give(campaign.service, 5000 + index, 100 - index)
    await give(campaign.service, 7000, 1, name="late")
    board = await members.leaderboard(Member(7000, "late"), "week", 0)
    assert len(board.lines) == PAGE_SIZE and board.pages == 2
    assert board.standing.line is not None and board.standing.line.entry.rank == PAGE_SIZE + 3
    assert board.standing.page == 1
    assert board.lines[0].pseudonym == display_pseudonym(SALT, 5000)

    newcomer = await members.leaderboard(Member(7001, "new"), "month", 1)
    assert newcomer.standing.line is None and newcomer.page == 1
    async with campaign.service.sessions() as session:
        assert await session.scalar(select(User.display_name).where(User.discord_id == 7001)) == "new"

    await members.set_opted_out(Member(7000), True)
    board = await members.leaderboard(Member(7000), "week", 1)
    assert board.standing.opted_out and board.standing.line is None
    assert 7000 not in [line.entry.discord_id for line in board.lines]
    with pytest.raises(MemberRefused) as refused:
        await members.leaderboard(Member(7000), "year", 0)
    assert refused.value.reason == "unknown_period"


async def test_profile_counts_every_kind_of_work(make_campaign):
    # Three rankings: each one's agreement is measured against the other two.
    campaign = make_campaign(**{**SMALL, "rankings_needed": 3})
    members = MemberService(campaign.service, salt=SALT)
    users = await campaign.users(9)
    _, replies = await campaign.tree_in_ranking(users)
    for ranker in users[5:8]:
        offer = await campaign.service.request_task(ranker, kinds=[TaskKind.RANK_ASSISTANT_REPLIES])
        await campaign.service.submit_ranking(offer.task_id, ranker, replies)
    offer = await campaign.service.request_task(users[8], kinds=[TaskKind.INITIAL_PROMPT])
    await campaign.service.skip_task(offer.task_id, users[8])

    reviewer = await members.profile(Member(1004))  # users[3]: reviewed the prompt and both replies
    assert reviewer.own and reviewer.contributed
    assert reviewer.stats.labels == 3 and reviewer.stats.prompts == 0
    ranker = await members.profile(Member(1006), None)
    assert ranker.stats.rankings == 1 and ranker.stats.mean_agreement == 1.0 and ranker.stats.good_rankings == 1
    assert [line.reason for line in ranker.history] == ["ranking_agreement", "ranking"]
    writer = await members.profile(Member(1001), 1002)  # users[1] seen by users[0]
    assert not writer.own and writer.assistant_replies == 1 and writer.prompter_replies == 0
    assert writer.progress.points == writer.stats.points > 0
    assert writer.stats.ranks["week"][0] is not None
    skipper = await members.profile(Member(1009))
    assert skipper.contributed and skipper.stats.skips == 1

    nobody = await members.profile(Member(1001), 424242)
    assert not nobody.contributed and nobody.pseudonym == display_pseudonym(SALT, 424242)
    newcomer = await members.profile(Member(9999, "newcomer"))
    assert newcomer.own and not newcomer.contributed


async def test_an_opted_out_profile_shows_only_to_its_owner(campaign, members):
    await give(campaign.service, 5000, 12)
    await members.set_opted_out(Member(5000), True)
    with pytest.raises(MemberRefused) as refused:
        await members.profile(Member(5001), 5000)
    assert refused.value.reason == "profile_hidden"
    own = await members.profile(Member(5000))
    assert own.opted_out and own.stats.points == 12


async def test_language_settings_and_the_work_overview(campaign, members):
    users = await campaign.users(2)
    await campaign.prompt(users[0])  # an English prompt waiting for review
    caller = Member(1002, "reviewer", "de")

    german = await members.tasks_overview(caller)
    assert (german.lang, german.language_source) == ("de", "locale")
    assert not german.available["label_prompt"] and german.trees_by_state == {}

    chosen = await members.set_language(caller, "en-US")
    assert (chosen.language, chosen.effective_language) == ("en", "en")
    english = await members.tasks_overview(caller)
    assert (english.lang, english.language_source) == ("en", "setting")
    assert english.available["label_prompt"] and english.trees_by_state == {"initial_prompt_review": 1}
    assert (await members.tasks_overview(caller, "pt_br")).lang == "pt-BR"

    with pytest.raises(MemberRefused) as refused:
        await members.set_language(caller, "not a language!")
    assert refused.value.reason == "invalid_language"
    assert (await members.settings(caller)).language == "en"
    with pytest.raises(MemberRefused):
        await members.tasks_overview(caller, "???")

    back = await members.set_language(caller, "auto")
    assert (back.language, back.effective_language) == (None, "de")
    assert (await members.settings(Member(1002))).effective_language == "en"  # no locale: the default


async def test_a_banned_member_is_told_so_instead_of_shown_work(campaign, members):
    users = await campaign.users(2)
    await campaign.prompt(users[0])
    await campaign.service.ban_user(None, users[1], "spam")
    with pytest.raises(MemberRefused) as refused:
        await members.tasks_overview(Member(1002))
    assert refused.value.reason == "banned"
    board = await members.leaderboard(Member(1002), "week")
    assert board.standing.banned and board.standing.line is None
