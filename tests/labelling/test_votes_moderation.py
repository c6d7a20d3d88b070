"""Votes, red flags and auto-moderation; moderators' services and their audit trail."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.labelling.errors import ModerationError, NoTaskAvailable, TaskRefused, VoteRefused
from storage.enums import TaskKind, TaskState, TreeState
from storage.models import AuditLog, Message, MessageRevision, MessageTree, Task
from tests.labelling.conftest import SMALL


async def test_up_and_down_votes_cancel_and_removal_undoes(campaign):
    author, voter = await campaign.users(2)
    prompt = await campaign.prompt(author)
    vote = campaign.service.vote
    assert (await vote(voter, prompt, "+1")).upvotes == 1
    duplicate = await vote(voter, prompt, "+1")
    assert (duplicate.counted, duplicate.upvotes) == (False, 1)
    flipped = await vote(voter, prompt, "-1")
    assert (flipped.upvotes, flipped.downvotes) == (0, 1)
    removed = await vote(voter, prompt, "-1", added=False)
    assert (removed.counted, removed.upvotes, removed.downvotes) == (True, 0, 0)
    assert (await vote(voter, prompt, "-1", added=False)).counted is False


async def test_no_vote_on_own_message(campaign):
    (author,) = await campaign.users(1)
    prompt = await campaign.prompt(author)
    with pytest.raises(VoteRefused) as refused:
        await campaign.service.vote(author, prompt, "+1")
    assert refused.value.reason == "own_message"
    with pytest.raises(VoteRefused):
        await campaign.service.vote(author, 424242, "+1")


async def test_red_flags_queue_then_remove_a_reply_with_its_subtree(make_campaign):
    campaign = make_campaign(**{**SMALL, "max_tree_depth": 3, "goal_tree_size": 10})
    users = await campaign.users(9)
    await campaign.accepted_prompt(users[0], users[1:3])
    _, reply = await campaign.reply(users[3])
    for reviewer in users[1:3]:
        await campaign.review(reviewer, TaskKind.LABEL_ASSISTANT_REPLY)
    _, answer = await campaign.reply(users[4], TaskKind.PROMPTER_REPLY)
    service = campaign.service
    for flagger in users[5:8]:
        result = await service.vote(flagger, reply.message_id, "red_flag")
    assert (result.red_flags, result.removed_by_flags) == (3, False)
    queue = await service.flagged_messages()
    assert [(f.message_id, f.red_flags) for f in queue] == [(reply.message_id, 3)]

    result = await service.vote(users[8], reply.message_id, "red_flag")
    assert result.removed_by_flags
    async with service.sessions() as session:
        deleted = dict((await session.execute(select(Message.id, Message.deleted))).all())
        assert deleted[reply.message_id] and deleted[answer.message_id]
        audit = (await session.scalars(select(AuditLog.action))).all()
        assert audit == ["auto_remove_red_flags"]
    assert await service.flagged_messages() == []


async def test_red_flags_on_a_prompt_abort_its_tree(campaign):
    users = await campaign.users(5)
    prompt = await campaign.prompt(users[0])
    for flagger in users[1:5]:
        await campaign.service.vote(flagger, prompt, "red_flag")
    async with campaign.service.sessions() as session:
        tree = await session.scalar(select(MessageTree).join(Message).where(Message.id == prompt))
        assert tree.state == TreeState.ABORTED_LOW_GRADE


async def test_ban_cancels_open_tasks_unban_restores_and_both_are_audited(campaign):
    moderator, user = await campaign.users(2)
    offer = await campaign.service.request_task(user, kinds=[TaskKind.INITIAL_PROMPT])
    assert await campaign.service.ban_user(moderator, user, "spam") == 1
    with pytest.raises(NoTaskAvailable):
        await campaign.service.request_task(user)
    with pytest.raises(VoteRefused):
        await campaign.service.vote(user, await campaign.prompt(moderator), "+1")
    await campaign.service.unban_user(moderator, user)
    await campaign.service.request_task(user, kinds=[TaskKind.INITIAL_PROMPT])
    async with campaign.service.sessions() as session:
        assert (await session.get(Task, offer.task_id)).state == TaskState.CANCELLED
        rows = (await session.execute(select(AuditLog.actor_id, AuditLog.action, AuditLog.target_id))).all()
        assert rows == [(moderator, "ban", user), (moderator, "unban", user)]


async def test_deleting_a_reply_in_ranking_lets_the_tree_move_on(make_campaign):
    campaign = make_campaign(**{**SMALL, "max_children": 3, "goal_tree_size": 4})
    users = await campaign.users(8)
    prompt = await campaign.accepted_prompt(users[0], users[4:6])
    replies = []
    for writer in users[1:4]:
        _, result = await campaign.reply(writer)
        replies.append(result.message_id)
    for _ in replies:
        for reviewer in users[4:6]:
            await campaign.review(reviewer, TaskKind.LABEL_ASSISTANT_REPLY)
    service = campaign.service
    for ranker in users[6:8]:
        offer = await service.request_task(ranker, kinds=[TaskKind.RANK_ASSISTANT_REPLIES])
        await service.submit_ranking(offer.task_id, ranker, [r.id for r in offer.replies])
    # Two rankings are enough, so the tree is already scored; now delete a ranked reply.
    removed = await service.delete_message(users[4], replies[0], "off topic")
    assert removed == [replies[0]]
    with pytest.raises(ModerationError) as again:
        await service.delete_message(users[4], replies[0])
    assert again.value.reason == "already_deleted"
    async with service.sessions() as session:
        tree = await session.scalar(select(MessageTree).join(Message).where(Message.id == prompt))
        assert tree.state == TreeState.READY_FOR_EXPORT


async def test_deleting_a_reply_cancels_a_stale_ranking_task(campaign):
    users = await campaign.users(7)
    _, replies = await campaign.tree_in_ranking(users)
    offer = await campaign.service.request_task(users[5], kinds=[TaskKind.RANK_ASSISTANT_REPLIES])
    await campaign.service.delete_message(users[6], replies[0])
    with pytest.raises(TaskRefused) as refused:
        await campaign.service.submit_ranking(offer.task_id, users[5], [r.id for r in offer.replies])
    assert refused.value.reason == "task_cancelled"


async def test_edit_keeps_the_old_text(campaign):
    moderator, author = await campaign.users(2)
    prompt = await campaign.prompt(author, "Teh question")
    await campaign.service.edit_message(moderator, prompt, "The question", "typo")
    async with campaign.service.sessions() as session:
        assert (await session.get(Message, prompt)).text == "The question"
        assert (await session.scalars(select(MessageRevision.text))).all() == ["Teh question"]


async def test_halt_and_resume_refusals(campaign):
    moderator, author = await campaign.users(2)
    prompt = await campaign.prompt(author)
    async with campaign.service.sessions() as session:
        tree_id = (await session.get(Message, prompt)).tree_id
    with pytest.raises(ModerationError) as refused:
        await campaign.service.resume_tree(moderator, tree_id)
    assert refused.value.reason == "not_halted"
    await campaign.service.halt_tree(moderator, tree_id)
    with pytest.raises(ModerationError) as refused:
        await campaign.service.halt_tree(moderator, tree_id)
    assert refused.value.reason == "already_halted"
    assert await campaign.service.resume_tree(moderator, tree_id) == TreeState.INITIAL_PROMPT_REVIEW


async def test_trollboard_ranks_flags_and_bad_labels(campaign):
    users = await campaign.users(5)
    troll, honest = users[0], users[1]
    spam = await campaign.prompt(troll, "BUY NOW")
    fine = await campaign.prompt(honest, "Why do cats purr?")
    await campaign.service.vote(users[2], spam, "red_flag")
    await campaign.service.vote(users[2], fine, "+1")
    board = await campaign.service.trollboard()
    assert board[0].user_id == troll and board[0].score == 3
    assert [s for s in board if s.user_id == honest][0].score == -1


async def test_reactions_find_their_message_by_discord_id(campaign):
    author, voter = await campaign.users(2)
    prompt = await campaign.prompt(author)
    await campaign.service.record_discord_location(prompt, channel_id=5, discord_message_id=777)
    assert await campaign.service.message_id_for_discord(777) == prompt
    assert await campaign.service.message_id_for_discord(778) is None
