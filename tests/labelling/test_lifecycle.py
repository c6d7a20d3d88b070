"""Tree lifecycle: every transition, inside the submission that causes it."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.labelling.errors import NoTaskAvailable, TaskRefused
from storage.enums import TaskKind, TaskState, TreeState
from storage.models import AuditLog, Message, MessageTree, Ranking, ScoreEvent, Task


async def _tree(campaign, message_id):
    async with campaign.service.sessions() as session:
        message = await session.get(Message, message_id)
        return await session.get(MessageTree, message.tree_id)


async def test_full_lifecycle_to_ready_for_export(campaign):
    users = await campaign.users(7)
    prompt = await campaign.prompt(users[0])
    assert (await _tree(campaign, prompt)).state == TreeState.INITIAL_PROMPT_REVIEW

    await campaign.review(users[3], TaskKind.LABEL_INITIAL_PROMPT)
    assert (await _tree(campaign, prompt)).state == TreeState.INITIAL_PROMPT_REVIEW
    _, decided = await campaign.review(users[4], TaskKind.LABEL_INITIAL_PROMPT)
    assert decided.review_decided is True
    assert (await _tree(campaign, prompt)).state == TreeState.GROWING

    replies = []
    for writer in users[1:3]:
        _, result = await campaign.reply(writer)
        replies.append(result.message_id)
    for _ in replies:
        for reviewer in users[3:5]:
            await campaign.review(reviewer, TaskKind.LABEL_ASSISTANT_REPLY)
    assert (await _tree(campaign, prompt)).state == TreeState.RANKING

    service = campaign.service
    first = await service.request_task(users[5], kinds=[TaskKind.RANK_ASSISTANT_REPLIES])
    assert sorted(r.id for r in first.replies) == sorted(replies)
    result = await service.submit_ranking(first.task_id, users[5], [replies[1], replies[0]])
    assert result.tree_state == TreeState.RANKING
    second = await service.request_task(users[6], kinds=[TaskKind.RANK_ASSISTANT_REPLIES])
    result = await service.submit_ranking(second.task_id, users[6], [replies[1], replies[0]])
    assert result.tree_state == TreeState.READY_FOR_EXPORT

    async with service.sessions() as session:
        ranks = dict((await session.execute(select(Message.id, Message.rank).where(Message.id.in_(replies)))).all())
        assert ranks == {replies[1]: 0, replies[0]: 1}
        # Two rankings: neither has two others to be measured against.
        agreements = (await session.scalars(select(Ranking.agreement))).all()
        assert agreements == [None, None]
        placement = (await session.execute(
            select(ScoreEvent.user_id, ScoreEvent.points).where(ScoreEvent.reason.like("placement%"))
        )).all()
        assert sorted(placement) == sorted([(users[2], 9.0), (users[1], 3.0)] * 2)


async def test_rejected_prompt_aborts_tree_and_pays_no_bonus(make_campaign):
    from tests.labelling.conftest import SMALL

    campaign = make_campaign(**{**SMALL, "contested_extra_reviews": 0})  # Open-Assistant's rule alone
    users = await campaign.users(4)
    prompt = await campaign.prompt(users[0])
    await campaign.review(users[1], TaskKind.LABEL_INITIAL_PROMPT, spam=1)
    _, result = await campaign.review(users[2], TaskKind.LABEL_INITIAL_PROMPT, spam=0)
    # 1 − (mean spam 0.5 + 0) = 0.5, not above 0.6.
    assert result.review_decided is False
    assert (await _tree(campaign, prompt)).state == TreeState.ABORTED_LOW_GRADE
    async with campaign.service.sessions() as session:
        reasons = (await session.scalars(select(ScoreEvent.reason).where(ScoreEvent.user_id == users[0]))).all()
        assert reasons == ["initial_prompt"]


async def test_lang_mismatch_counts_against_acceptance(make_campaign):
    from tests.labelling.conftest import SMALL

    campaign = make_campaign(**{**SMALL, "contested_extra_reviews": 0})
    users = await campaign.users(3)
    prompt = await campaign.prompt(users[0])
    await campaign.review(users[1], TaskKind.LABEL_INITIAL_PROMPT, lang_mismatch=1)
    await campaign.review(users[2], TaskKind.LABEL_INITIAL_PROMPT)
    assert (await _tree(campaign, prompt)).state == TreeState.ABORTED_LOW_GRADE


async def test_rejected_reply_leaves_growth_and_frees_its_slot(campaign):
    users = await campaign.users(6)
    prompt = await campaign.accepted_prompt(users[0], users[3:5])
    _, good = await campaign.reply(users[1])
    _, bad = await campaign.reply(users[2])
    service = campaign.service
    for reviewer in users[3:5]:
        for _ in range(2):
            offer = await service.request_task(reviewer, kinds=[TaskKind.LABEL_ASSISTANT_REPLY])
            spam = 1.0 if offer.target_message_id == bad.message_id else 0.0
            await service.submit_labels(offer.task_id, reviewer, {"spam": spam})
    assert (await _tree(campaign, prompt)).state == TreeState.GROWING
    # The rejected reply no longer takes a slot: someone else may answer the prompt.
    offer, third = await campaign.reply(users[5])
    assert offer.target_message_id == prompt
    async with service.sessions() as session:
        assert (await session.get(Message, bad.message_id)).review_result is False


async def test_lottery_holds_prompts_beyond_active_limit_and_promotes_when_a_tree_leaves(make_campaign):
    from tests.labelling.conftest import SMALL

    campaign = make_campaign(**{**SMALL, "max_active_trees_per_language": 1})
    users = await campaign.users(7)
    first = await campaign.accepted_prompt(users[0], users[3:5])
    second = await campaign.accepted_prompt(users[1], users[3:5])
    assert (await _tree(campaign, first)).state == TreeState.GROWING
    assert (await _tree(campaign, second)).state == TreeState.PROMPT_LOTTERY_WAITING

    for writer in users[1:3]:
        await campaign.reply(writer)
    for _ in range(2):
        for reviewer in users[3:5]:
            await campaign.review(reviewer, TaskKind.LABEL_ASSISTANT_REPLY)
    assert (await _tree(campaign, first)).state == TreeState.RANKING
    assert (await _tree(campaign, second)).state == TreeState.GROWING


async def test_growth_stops_at_depth_and_goal(campaign):
    users = await campaign.users(7)
    await campaign.tree_in_ranking(users)
    with pytest.raises(NoTaskAvailable) as refused:
        await campaign.service.request_task(users[6], kinds=[TaskKind.ASSISTANT_REPLY, TaskKind.PROMPTER_REPLY])
    assert refused.value.reason == "no_work"


async def test_tree_that_cannot_reach_goal_moves_to_ranking(make_campaign):
    from tests.labelling.conftest import SMALL

    campaign = make_campaign(**{**SMALL, "goal_tree_size": 10})
    users = await campaign.users(7)
    prompt, _ = await campaign.tree_in_ranking(users)
    # Depth 1, two children: the tree is as big as it can get, so it is ranked rather than stuck.
    assert (await _tree(campaign, prompt)).state == TreeState.RANKING


async def test_tree_with_nothing_to_rank_goes_straight_to_export(make_campaign):
    from tests.labelling.conftest import SMALL

    campaign = make_campaign(**{**SMALL, "max_children": 1, "goal_tree_size": 2})
    users = await campaign.users(5)
    prompt = await campaign.accepted_prompt(users[0], users[3:5])
    await campaign.reply(users[1])
    for reviewer in users[3:5]:
        await campaign.review(reviewer, TaskKind.LABEL_ASSISTANT_REPLY)
    assert (await _tree(campaign, prompt)).state == TreeState.READY_FOR_EXPORT


async def test_halt_cancels_open_tasks_and_resume_returns_to_growth(campaign):
    users = await campaign.users(7)
    prompt = await campaign.accepted_prompt(users[0], users[3:5])
    service = campaign.service
    offer = await service.request_task(users[1], kinds=[TaskKind.ASSISTANT_REPLY])
    tree = await _tree(campaign, prompt)

    assert await service.halt_tree(users[6], tree.id, "checking") == TreeState.HALTED_BY_MODERATOR
    with pytest.raises(TaskRefused) as refused:
        await service.submit_reply(offer.task_id, users[1], "Too late.")
    assert refused.value.reason == "task_cancelled"
    with pytest.raises(NoTaskAvailable):
        await service.request_task(users[2], kinds=[TaskKind.ASSISTANT_REPLY])

    assert await service.resume_tree(users[6], tree.id) == TreeState.GROWING
    await campaign.reply(users[2])
    async with service.sessions() as session:
        actions = (await session.scalars(select(AuditLog.action).order_by(AuditLog.id))).all()
        assert actions == ["halt_tree", "resume_tree"]
        assert (await session.get(Task, offer.task_id)).state == TaskState.CANCELLED


async def test_scoring_failure_parks_the_tree_and_maintenance_retries(campaign, monkeypatch):
    from bot.labelling import trees

    users = await campaign.users(7)
    prompt, replies = await campaign.tree_in_ranking(users)
    real_score = trees.score_tree

    async def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(trees, "score_tree", broken)
    service = campaign.service
    for ranker in users[5:7]:
        offer = await service.request_task(ranker, kinds=[TaskKind.RANK_ASSISTANT_REPLIES])
        result = await service.submit_ranking(offer.task_id, ranker, replies)
    assert result.tree_state == TreeState.SCORING_FAILED
    async with service.sessions() as session:
        # The ranking itself was recorded; only the scoring is pending.
        assert len((await session.scalars(select(Ranking))).all()) == 2
        assert (await session.scalars(select(Message.rank).where(Message.id.in_(replies)))).all() == [None, None]

    monkeypatch.setattr(trees, "score_tree", real_score)
    report = await service.maintain_trees()
    assert report.advanced == {(await _tree(campaign, prompt)).id: TreeState.READY_FOR_EXPORT}
    async with service.sessions() as session:
        assert sorted((await session.scalars(select(Message.rank).where(Message.id.in_(replies)))).all()) == [0, 1]


async def test_backlog_ranking_trees_are_ranked_and_scored_like_grown_ones(campaign):
    users = await campaign.users(7)
    prompt, replies = await campaign.tree_in_ranking(users)
    tree = await _tree(campaign, prompt)
    async with campaign.service.sessions.begin() as session:
        (await session.get(MessageTree, tree.id)).state = TreeState.BACKLOG_RANKING
    for ranker in users[5:7]:
        offer = await campaign.service.request_task(ranker, kinds=[TaskKind.RANK_ASSISTANT_REPLIES])
        result = await campaign.service.submit_ranking(offer.task_id, ranker, replies)
    assert result.tree_state == TreeState.READY_FOR_EXPORT


async def test_scheduler_jobs_take_plain_settings(sessions, clock):
    from bot.config import LabellingSettings
    from bot.labelling import jobs

    assert await jobs.expire_tasks(sessions, LabellingSettings()) == 0
    report = await jobs.maintain_trees(sessions, LabellingSettings())
    assert (report.promoted, report.advanced) == ([], {})
