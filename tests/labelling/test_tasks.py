"""Task selection: exclusions, locks, caps, expiry, and a truthful reason when there is no task."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.labelling.errors import NoTaskAvailable, TaskRefused
from storage.enums import TaskKind, TaskState
from storage.models import Task
from tests.labelling.conftest import SMALL

LABEL_PROMPT = [TaskKind.LABEL_INITIAL_PROMPT]


async def _no_task(service, user, kinds=None, lang=None):
    with pytest.raises(NoTaskAvailable) as refused:
        await service.request_task(user, lang, kinds)
    return refused.value


async def test_nobody_labels_their_own_prompt_or_the_same_one_twice(campaign):
    author, reviewer = await campaign.users(2)
    prompt = await campaign.prompt(author)
    assert (await _no_task(campaign.service, author, LABEL_PROMPT)).reason == "no_work"
    offer, _ = await campaign.review(reviewer, TaskKind.LABEL_INITIAL_PROMPT)
    assert offer.target_message_id == prompt
    assert offer.conversation[-1].id == prompt
    assert (await _no_task(campaign.service, reviewer, LABEL_PROMPT)).reason == "no_work"


async def test_a_skipped_task_never_comes_back(campaign):
    author, reviewer = await campaign.users(2)
    await campaign.prompt(author)
    offer = await campaign.service.request_task(reviewer, kinds=LABEL_PROMPT)
    await campaign.service.skip_task(offer.task_id, reviewer, "not for me")
    assert (await _no_task(campaign.service, reviewer, LABEL_PROMPT)).reason == "no_work"


async def test_an_open_task_is_not_offered_twice_to_the_same_user(campaign):
    author, reviewer = await campaign.users(2)
    await campaign.prompt(author)
    await campaign.service.request_task(reviewer, kinds=LABEL_PROMPT)
    assert (await _no_task(campaign.service, reviewer, LABEL_PROMPT)).reason == "no_work"


async def test_no_work_in_another_language(campaign):
    author, reviewer = await campaign.users(2)
    await campaign.prompt(author)
    assert (await _no_task(campaign.service, reviewer, LABEL_PROMPT, lang="de")).reason == "no_work"


async def test_open_reply_task_reserves_the_parent_for_five_minutes(make_campaign):
    campaign = make_campaign(**{**SMALL, "max_children": 3, "goal_tree_size": 5})
    users = await campaign.users(5)
    prompt = await campaign.accepted_prompt(users[0], users[3:5])
    service = campaign.service
    held = await service.request_task(users[1], kinds=[TaskKind.ASSISTANT_REPLY])
    assert held.target_message_id == prompt
    assert held.reply_role == "assistant"
    assert (await _no_task(service, users[2], [TaskKind.ASSISTANT_REPLY])).reason == "no_work"
    campaign.clock.advance(minutes=5, seconds=1)
    other = await service.request_task(users[2], kinds=[TaskKind.ASSISTANT_REPLY])
    assert other.target_message_id == prompt


async def test_own_prompt_is_not_offered_for_a_reply(campaign):
    users = await campaign.users(3)
    await campaign.accepted_prompt(users[0], users[1:3])
    assert (await _no_task(campaign.service, users[0], [TaskKind.ASSISTANT_REPLY])).reason == "no_work"


async def test_lonely_children_are_preferred(make_campaign):
    campaign = make_campaign(**{**SMALL, "max_tree_depth": 2, "goal_tree_size": 20, "max_children": 3,
                                "lonely_children_probability": 1.0})
    users = await campaign.users(8)
    prompt = await campaign.accepted_prompt(users[0], users[6:8])
    await campaign.reply(users[1])
    for reviewer in users[6:8]:
        await campaign.review(reviewer, TaskKind.LABEL_ASSISTANT_REPLY)
    # The prompt has one reply, the reply has none: the lonely one (the prompt) is offered.
    for writer in users[2:5]:
        offer = await campaign.service.request_task(writer, kinds=[TaskKind.ASSISTANT_REPLY,
                                                                   TaskKind.PROMPTER_REPLY])
        assert offer.target_message_id == prompt
        await campaign.service.skip_task(offer.task_id, writer)


async def test_banned_user_gets_no_task(campaign):
    moderator, user = await campaign.users(2)
    await campaign.service.ban_user(moderator, user)
    assert (await _no_task(campaign.service, user)).reason == "banned"


async def test_pending_cap(make_campaign):
    campaign = make_campaign(**{**SMALL, "max_pending_tasks_per_user": 2})
    (user,) = await campaign.users(1)
    for _ in range(2):
        await campaign.service.request_task(user, kinds=[TaskKind.INITIAL_PROMPT])
    assert (await _no_task(campaign.service, user)).reason == "too_many_pending"


async def test_request_rate_limit_says_until_when(make_campaign):
    campaign = make_campaign(**{**SMALL, "task_requests_per_window": 3, "task_request_window_minutes": 4})
    (user,) = await campaign.users(1)
    first_at = campaign.clock.now
    for _ in range(3):
        offer = await campaign.service.request_task(user, kinds=[TaskKind.INITIAL_PROMPT])
        await campaign.service.skip_task(offer.task_id, user)
        campaign.clock.advance(seconds=10)
    refused = await _no_task(campaign.service, user)
    assert refused.reason == "rate_limited"
    assert refused.retry_at == first_at + timedelta(minutes=4)
    campaign.clock.now = refused.retry_at
    await campaign.service.request_task(user, kinds=[TaskKind.INITIAL_PROMPT])


async def test_expired_tasks_are_released_and_refused(campaign):
    author, reviewer, other = await campaign.users(3)
    await campaign.prompt(author)
    offer = await campaign.service.request_task(reviewer, kinds=LABEL_PROMPT)
    campaign.clock.advance(hours=48, seconds=1)
    assert await campaign.service.expire_tasks() == 1
    with pytest.raises(TaskRefused) as refused:
        await campaign.service.submit_labels(offer.task_id, reviewer, {"spam": 0})
    assert refused.value.reason == "task_expired"
    # The work is offered again, also to the same user.
    again = await campaign.service.request_task(reviewer, kinds=LABEL_PROMPT)
    assert again.target_message_id == offer.target_message_id
    async with campaign.service.sessions() as session:
        assert (await session.get(Task, offer.task_id)).state == TaskState.EXPIRED


async def test_kinds_are_drawn_only_among_kinds_with_work(campaign):
    author, reviewer = await campaign.users(2)
    await campaign.prompt(author)
    kinds = set()
    for _ in range(5):
        offer = await campaign.service.request_task(reviewer)
        kinds.add(offer.kind)
        await campaign.service.skip_task(offer.task_id, reviewer)
    # Labelling the prompt (weight 5) or writing a prompt (0.01); nothing else has work.
    assert kinds <= {TaskKind.LABEL_INITIAL_PROMPT, TaskKind.INITIAL_PROMPT}
    assert TaskKind.LABEL_INITIAL_PROMPT in kinds


async def test_zero_weight_kind_is_never_offered(make_campaign):
    campaign = make_campaign(**{**SMALL, "weights": {"initial_prompt": 0}})
    (user,) = await campaign.users(1)
    assert (await _no_task(campaign.service, user)).reason == "no_work"


async def test_ranking_task_excludes_authors_of_the_replies(campaign):
    users = await campaign.users(7)
    _, replies = await campaign.tree_in_ranking(users)
    for author in users[1:3]:
        assert (await _no_task(campaign.service, author, [TaskKind.RANK_ASSISTANT_REPLIES])).reason == "no_work"
    offer = await campaign.service.request_task(users[0], kinds=[TaskKind.RANK_ASSISTANT_REPLIES])
    assert sorted(r.id for r in offer.replies) == sorted(replies)
    async with campaign.service.sessions() as session:
        task = await session.scalar(select(Task).where(Task.id == offer.task_id))
        assert task.payload["reply_ids"] == [r.id for r in offer.replies]


async def test_ranking_tasks_are_found_across_pages_of_trees(campaign, monkeypatch):
    # One tree per page and one candidate wanted: the walk must pass over trees with nothing for this
    # user (their own reply, or already ranked) and offer the oldest parent they may rank.
    from bot.labelling import tasks

    monkeypatch.setattr(tasks, "RANK_TREE_PAGE", 1)
    monkeypatch.setattr(tasks, "RANK_CANDIDATES", 1)
    u = await campaign.users(10)
    first, _ = await campaign.tree_in_ranking([u[0], u[1], u[9], u[3], u[4]])
    second, _ = await campaign.tree_in_ranking([u[5], u[6], u[7], u[3], u[4]])
    campaign.clock.advance(hours=3)  # the same reply texts again are no duplicates then
    third, _ = await campaign.tree_in_ranking([u[8], u[6], u[7], u[3], u[4]])
    rank = [TaskKind.RANK_ASSISTANT_REPLIES]
    # u[9] wrote a reply in the first tree.
    offer = await campaign.service.request_task(u[9], kinds=rank)
    assert offer.target_message_id == second
    await campaign.service.submit_ranking(offer.task_id, u[9], [r.id for r in offer.replies])
    offer = await campaign.service.request_task(u[9], kinds=rank)
    assert offer.target_message_id == third
    # u[2] is in none of them: the oldest first; u[6] and u[7] wrote replies in the last two.
    assert (await campaign.service.request_task(u[2], kinds=rank)).target_message_id == first
    assert (await campaign.service.request_task(u[6], kinds=rank)).target_message_id == first
    await campaign.service.request_task(u[7], kinds=rank)
    assert (await _no_task(campaign.service, u[7], rank)).reason == "no_work"


async def test_work_overview_tells_what_the_user_could_do(campaign):
    author, reviewer = await campaign.users(2)
    await campaign.prompt(author)
    mine = await campaign.service.work_overview(author)
    theirs = await campaign.service.work_overview(reviewer)
    assert mine.available["label_prompt"] is False and theirs.available["label_prompt"] is True
    assert theirs.available["rank"] is False and theirs.available["initial_prompt"] is True
    assert theirs.trees_by_state == {"initial_prompt_review": 1}
    # Looking reserves nothing.
    async with campaign.service.sessions() as session:
        assert (await session.scalars(select(Task).where(Task.user_id == reviewer))).all() == []


async def test_open_tasks_lists_what_the_user_still_holds(campaign):
    author, reviewer = await campaign.users(2)
    await campaign.prompt(author)
    offer = await campaign.service.request_task(reviewer, kinds=LABEL_PROMPT)
    assert [t.task_id for t in await campaign.service.open_tasks(reviewer)] == [offer.task_id]
    shown = await campaign.service.open_task(offer.task_id, reviewer)
    assert shown.conversation == offer.conversation
    await campaign.service.skip_task(offer.task_id, reviewer)
    assert await campaign.service.open_tasks(reviewer) == []
