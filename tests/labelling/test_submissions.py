"""Every refusal reason, and idempotency: a task is recorded once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.labelling.errors import NoTaskAvailable, TaskRefused
from storage.enums import TaskKind, TaskState, TreeState
from storage.models import Label, Message, MessageTree, Ranking, ScoreEvent, Task, User
from tests.labelling.conftest import SMALL


async def _refused(call) -> str:
    with pytest.raises(TaskRefused) as refused:
        await call
    return refused.value.reason


async def _prompt_task(campaign, user):
    return await campaign.service.request_task(user, kinds=[TaskKind.INITIAL_PROMPT])


@pytest.mark.parametrize(("text", "reason"), [("", "empty_text"), ("   \n", "empty_text"), ("x" * 2001, "text_too_long")])
async def test_text_limits(campaign, text, reason):
    (user,) = await campaign.users(1)
    offer = await _prompt_task(campaign, user)
    assert await _refused(campaign.service.submit_initial_prompt(offer.task_id, user, text)) == reason
    # A refusal leaves the task open: the user can fix the text.
    await campaign.service.submit_initial_prompt(offer.task_id, user, "x" * 2000)


async def test_same_text_twice_within_the_window_is_refused(campaign):
    (user,) = await campaign.users(1)
    await campaign.prompt(user, "What is a monad?")
    offer = await _prompt_task(campaign, user)
    assert await _refused(campaign.service.submit_initial_prompt(offer.task_id, user, " What is a monad? ")) == \
        "duplicate_text"
    campaign.clock.advance(minutes=121)
    await campaign.service.submit_initial_prompt(offer.task_id, user, "What is a monad?")


async def test_submitting_twice_records_once(campaign):
    author, reviewer = await campaign.users(2)
    await campaign.prompt(author)
    offer = await campaign.service.request_task(reviewer, kinds=[TaskKind.LABEL_INITIAL_PROMPT])
    await campaign.service.submit_labels(offer.task_id, reviewer, {"spam": 0, "lang_mismatch": 0})
    assert await _refused(campaign.service.submit_labels(offer.task_id, reviewer, {"spam": 0})) == "already_done"
    assert await _refused(campaign.service.skip_task(offer.task_id, reviewer)) == "already_done"
    async with campaign.service.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Label)) == 2
        message = await session.get(Message, offer.target_message_id)
        assert message.review_count == 1
        reviewer_points = await session.scalar(select(User.points).where(User.id == reviewer))
        assert reviewer_points == 2.0  # one full review


async def test_someone_elses_task_and_unknown_task(campaign):
    owner, intruder = await campaign.users(2)
    offer = await _prompt_task(campaign, owner)
    assert await _refused(campaign.service.submit_initial_prompt(offer.task_id, intruder, "Hi?")) == "not_your_task"
    assert await _refused(campaign.service.submit_initial_prompt(99_999, owner, "Hi?")) == "task_not_found"
    assert await _refused(campaign.service.submit_reply(offer.task_id, owner, "Hi?")) == "wrong_task_kind"


async def test_banned_user_cannot_submit(campaign):
    moderator, user = await campaign.users(2)
    offer = await _prompt_task(campaign, user)
    await campaign.service.ban_user(moderator, user, "spam")
    # The ban cancelled the open task; the user is told the true reason, the ban.
    assert await _refused(campaign.service.submit_initial_prompt(offer.task_id, user, "Hi?")) == "banned"
    async with campaign.service.sessions() as session:
        assert (await session.get(Task, offer.task_id)).state == TaskState.CANCELLED


@pytest.mark.parametrize(
    ("labels", "ok"),
    [({"spam": 0}, True), ({"lang_mismatch": 0}, False), ({"spam": 2}, False), ({"spam": 0, "humor": 1}, False)],
)
async def test_label_validation(make_campaign, labels, ok):
    campaign = make_campaign(**{**SMALL, "p_full_labeling_review_prompt": 0.0})
    author, reviewer = await campaign.users(2)
    await campaign.prompt(author)
    offer = await campaign.service.request_task(reviewer, kinds=[TaskKind.LABEL_INITIAL_PROMPT])
    assert offer.label_names == ("spam", "lang_mismatch")
    call = campaign.service.submit_labels(offer.task_id, reviewer, labels)
    if ok:
        await call
    else:
        assert await _refused(call) == "invalid_labels"


async def test_full_review_mode_asks_every_label_and_pays_more(make_campaign):
    campaign = make_campaign(**{**SMALL, "p_full_labeling_review_reply_assistant": 1.0})
    users = await campaign.users(4)
    await campaign.accepted_prompt(users[0], users[2:4])
    await campaign.reply(users[1])
    offer = await campaign.service.request_task(users[2], kinds=[TaskKind.LABEL_ASSISTANT_REPLY])
    assert len(offer.label_names) == 13 and "helpfulness" in offer.label_names
    result = await campaign.service.submit_labels(offer.task_id, users[2], dict.fromkeys(offer.label_names, 0.0))
    assert result.points == 2


async def _forge_task(campaign, user, kind, target, payload=None) -> int:
    """A task the selection would never give, to prove the submission checks too."""
    async with campaign.service.sessions.begin() as session:
        message = await session.get(Message, target)
        task = Task(kind=kind, user_id=user, target_message_id=target, tree_id=message.tree_id, lang="en",
                    payload=payload or {"mode": "simple", "labels": ["spam", "lang_mismatch", "quality"]},
                    created_at=campaign.clock.now, expires_at=campaign.clock.now + timedelta(days=1))
        session.add(task)
        await session.flush()
        return task.id


async def test_labelling_own_message_is_refused(campaign):
    (author,) = await campaign.users(1)
    prompt = await campaign.prompt(author)
    task = await _forge_task(campaign, author, TaskKind.LABEL_INITIAL_PROMPT, prompt)
    assert await _refused(campaign.service.submit_labels(task, author, {"spam": 0})) == "own_message"


async def test_second_reply_to_the_same_parent_is_refused(campaign):
    users = await campaign.users(3)
    prompt = await campaign.accepted_prompt(users[0], users[1:3])
    await campaign.reply(users[1])
    task = await _forge_task(campaign, users[1], TaskKind.ASSISTANT_REPLY, prompt, {"role": "assistant"})
    assert await _refused(campaign.service.submit_reply(task, users[1], "Another answer.")) == "already_replied"


async def test_reply_rate_limit(make_campaign):
    campaign = make_campaign(**{**SMALL, "assistant_replies_per_window": 1, "reply_window_minutes": 2})
    users = await campaign.users(5)
    prompts = [await campaign.accepted_prompt(author, users[2:4]) for author in (users[0], users[4])]
    offer, _ = await campaign.reply(users[1])
    other = next(p for p in prompts if p != offer.target_message_id)
    # The selection no longer offers assistant replies to this user and says until when.
    with pytest.raises(NoTaskAvailable) as none:
        await campaign.service.request_task(users[1], kinds=[TaskKind.ASSISTANT_REPLY])
    assert none.value.reason == "rate_limited" and none.value.retry_at is not None
    task = await _forge_task(campaign, users[1], TaskKind.ASSISTANT_REPLY, other, {"role": "assistant"})
    with pytest.raises(TaskRefused) as refused:
        await campaign.service.submit_reply(task, users[1], "Quick second answer.")
    assert refused.value.reason == "rate_limited"
    campaign.clock.now = refused.value.retry_at
    await campaign.service.submit_reply(task, users[1], "Quick second answer.")


async def test_ranking_must_be_a_permutation_of_the_shown_replies(campaign):
    users = await campaign.users(7)
    _, replies = await campaign.tree_in_ranking(users)
    offer = await campaign.service.request_task(users[5], kinds=[TaskKind.RANK_ASSISTANT_REPLIES])
    for bad in ([replies[0]], [replies[0], replies[0]], [replies[0], replies[1], 12345], []):
        assert await _refused(campaign.service.submit_ranking(offer.task_id, users[5], bad)) == "invalid_ranking"
    await campaign.service.submit_ranking(offer.task_id, users[5], None, not_rankable=True)
    async with campaign.service.sessions() as session:
        ranking = await session.scalar(select(Ranking))
        assert ranking.not_rankable and ranking.ordered_ids == []


async def test_ranking_own_reply_is_refused(campaign):
    users = await campaign.users(7)
    prompt, replies = await campaign.tree_in_ranking(users)
    task = await _forge_task(campaign, users[1], TaskKind.RANK_ASSISTANT_REPLIES, prompt, {"reply_ids": replies})
    assert await _refused(campaign.service.submit_ranking(task, users[1], replies)) == "own_message"


async def test_not_rankable_sets_settle_the_tree_without_ranks(campaign):
    users = await campaign.users(7)
    prompt, replies = await campaign.tree_in_ranking(users)
    for ranker in users[5:7]:
        offer = await campaign.service.request_task(ranker, kinds=[TaskKind.RANK_ASSISTANT_REPLIES])
        result = await campaign.service.submit_ranking(offer.task_id, ranker, None, not_rankable=True)
    assert result.tree_state == TreeState.READY_FOR_EXPORT
    async with campaign.service.sessions() as session:
        assert (await session.scalars(select(Message.rank).where(Message.id.in_(replies)))).all() == [None, None]


async def test_enough_skipped_replies_halt_the_tree(make_campaign):
    campaign = make_campaign(**{**SMALL, "skips_to_halt": 2})
    users = await campaign.users(5)
    prompt = await campaign.accepted_prompt(users[0], users[3:5])
    for user in users[1:3]:
        offer = await campaign.service.request_task(user, kinds=[TaskKind.ASSISTANT_REPLY])
        result = await campaign.service.skip_task(offer.task_id, user)
    assert result.tree_state == TreeState.HALTED_BY_MODERATOR
    async with campaign.service.sessions() as session:
        tree = await session.scalar(select(MessageTree).join(Message).where(Message.id == prompt))
        assert tree.state_before_halt == TreeState.GROWING
        skipped = await session.scalar(select(func.count()).select_from(Task).where(Task.state == TaskState.SKIPPED))
        assert skipped == 2
        assert await session.scalar(select(func.count()).select_from(ScoreEvent).where(ScoreEvent.user_id == users[1])) == 0


async def test_concurrent_reviews_are_counted_and_decided_once(make_campaign):
    import asyncio

    campaign = make_campaign(**{**SMALL, "reviews_initial_prompt": 3})
    users = await campaign.users(4)
    prompt = await campaign.prompt(users[0])
    offers = [await campaign.service.request_task(u, kinds=[TaskKind.LABEL_INITIAL_PROMPT]) for u in users[1:]]
    await asyncio.gather(*(
        campaign.service.submit_labels(offer.task_id, user, {"spam": 0.0}) for offer, user in zip(offers, users[1:],
                                                                                                strict=True)
    ))
    # A replayed click after the fact changes nothing.
    assert await _refused(campaign.service.submit_labels(offers[0].task_id, users[1], {"spam": 0})) == "already_done"
    async with campaign.service.sessions() as session:
        message = await session.get(Message, prompt)
        assert (message.review_count, message.review_result) == (3, True)
        bonuses = (await session.scalars(
            select(ScoreEvent.id).where(ScoreEvent.reason == "initial_prompt_accepted")
        )).all()
        assert len(bonuses) == 1
        tree = await session.get(MessageTree, message.tree_id)
        assert tree.state == TreeState.GROWING


async def test_parent_full_and_closed_tree_refusals(make_campaign):
    campaign = make_campaign(**{**SMALL, "max_children": 1, "goal_tree_size": 5, "max_tree_depth": 2})
    users = await campaign.users(5)
    prompt = await campaign.accepted_prompt(users[0], users[3:5])
    # Two writers got a task for the only slot (the second after the 5-minute reservation ran out).
    first = await campaign.service.request_task(users[1], kinds=[TaskKind.ASSISTANT_REPLY])
    late = await _forge_task(campaign, users[2], TaskKind.ASSISTANT_REPLY, prompt, {"role": "assistant"})
    await campaign.service.submit_reply(first.task_id, users[1], "The answer.")
    assert await _refused(campaign.service.submit_reply(late, users[2], "Mine too.")) == "parent_full"
    async with campaign.service.sessions() as session:
        tree_id = (await session.get(Message, prompt)).tree_id
    other = await _forge_task(campaign, users[2], TaskKind.LABEL_ASSISTANT_REPLY, prompt)
    async with campaign.service.sessions.begin() as session:
        (await session.get(MessageTree, tree_id)).state = TreeState.ABORTED_LOW_GRADE
    assert await _refused(campaign.service.submit_labels(other, users[2], {"spam": 0})) == "tree_closed"


async def test_label_after_the_message_was_removed(campaign):
    users = await campaign.users(3)
    prompt = await campaign.prompt(users[0])
    offer = await campaign.service.request_task(users[1], kinds=[TaskKind.LABEL_INITIAL_PROMPT])
    async with campaign.service.sessions.begin() as session:
        (await session.get(Message, prompt)).deleted = True
    assert await _refused(campaign.service.submit_labels(offer.task_id, users[1], {"spam": 0})) == "message_gone"


async def test_already_labelled_and_already_ranked(campaign):
    users = await campaign.users(7)
    prompt, replies = await campaign.tree_in_ranking(users)
    reviewer = users[3]  # reviewed both replies in tree_in_ranking
    task = await _forge_task(campaign, reviewer, TaskKind.LABEL_ASSISTANT_REPLY, replies[0])
    assert await _refused(campaign.service.submit_labels(task, reviewer, {"spam": 0})) == "already_labelled"
    offer = await campaign.service.request_task(users[5], kinds=[TaskKind.RANK_ASSISTANT_REPLIES])
    await campaign.service.submit_ranking(offer.task_id, users[5], replies)
    again = await _forge_task(campaign, users[5], TaskKind.RANK_ASSISTANT_REPLIES, prompt, {"reply_ids": replies})
    assert await _refused(campaign.service.submit_ranking(again, users[5], replies)) == "already_ranked"


async def test_stale_ranking_when_the_set_changed(campaign):
    users = await campaign.users(7)
    prompt, replies = await campaign.tree_in_ranking(users)
    task = await _forge_task(campaign, users[5], TaskKind.RANK_ASSISTANT_REPLIES, prompt,
                             {"reply_ids": replies + [999]})
    assert await _refused(campaign.service.submit_ranking(task, users[5], replies)) == "stale_ranking"
