"""Open-Assistant's rules where the engine once drifted (issue 8): each test fails on the old behaviour."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.labelling.consensus import leave_one_out_agreements
from bot.labelling.context import Context
from bot.labelling.errors import NoTaskAvailable, TaskRefused
from bot.labelling.points import level_for, points_for_level
from bot.labelling.trees import promote_lottery
from storage.enums import TaskKind, TreeState
from storage.models import AuditLog, Label, Message, MessageTree, ModerationFlag, Ranking, ScoreEvent, User
from tests.labelling.conftest import SMALL

# Deep enough for user turns: prompt (0), assistant (1), user (2), assistant (3).
DEEP = dict(SMALL, max_tree_depth=3, goal_tree_size=20, max_children=3)


async def _tree(service, message_id) -> MessageTree:
    async with service.sessions() as session:
        message = await session.get(Message, message_id)
        return await session.get(MessageTree, message.tree_id)


async def _message(service, message_id) -> Message:
    async with service.sessions() as session:
        return await session.get(Message, message_id)


async def _no_work(service, user, kinds) -> str:
    with pytest.raises(NoTaskAvailable) as refused:
        await service.request_task(user, kinds=kinds)
    return refused.value.reason


# 1. Acceptance averages spam and lang_mismatch over every review; a label left out counts as 0.
async def test_a_missing_label_counts_as_zero_so_one_flag_does_not_reject(make_campaign):
    campaign = make_campaign(**dict(SMALL, reviews_initial_prompt=3))
    service = campaign.service
    users = await campaign.users(4)
    prompt = await campaign.prompt(users[0])
    for reviewer, labels in zip(users[1:], ({"spam": 0, "lang_mismatch": 1}, {"spam": 0}, {"spam": 0}), strict=True):
        offer = await service.request_task(reviewer, kinds=[TaskKind.LABEL_INITIAL_PROMPT])
        result = await service.submit_labels(offer.task_id, reviewer, labels)
    # 1 - (0 + 1/3) = 0.67 > 0.6; averaging lang_mismatch over the one review that gave it rejected.
    assert result.review_decided is True
    assert (await _tree(service, prompt)).state == TreeState.GROWING


# 2. An assistant message takes one user reply (num_prompter_replies = 1).
async def _assistant_reply_accepted(campaign, users) -> tuple[int, int]:
    prompt = await campaign.accepted_prompt(users[0], users[3:5])
    _, reply = await campaign.reply(users[1])
    for reviewer in users[3:5]:
        await campaign.review(reviewer, TaskKind.LABEL_ASSISTANT_REPLY)
    assert (await _message(campaign.service, reply.message_id)).review_result is True
    return prompt, reply.message_id


async def test_an_assistant_message_takes_one_user_reply(make_campaign):
    campaign = make_campaign(**DEEP)
    service = campaign.service
    users = await campaign.users(7)
    _, assistant = await _assistant_reply_accepted(campaign, users)
    offer, _ = await campaign.reply(users[5], TaskKind.PROMPTER_REPLY)
    assert offer.target_message_id == assistant
    assert await _no_work(service, users[6], [TaskKind.PROMPTER_REPLY]) == "no_work"
    # Even a task given before the first reply arrived is refused once the slot is taken.
    campaign2 = make_campaign(**DEEP)
    campaign2._next_discord_id = 5000  # other people than the first campaign's
    others = await campaign2.users(7)
    _, assistant2 = await _assistant_reply_accepted(campaign2, others)
    first = await campaign2.service.request_task(others[5], kinds=[TaskKind.PROMPTER_REPLY])
    campaign2.clock.advance(minutes=6)  # past the reply lock, so a second writer gets the same parent
    second = await campaign2.service.request_task(others[6], kinds=[TaskKind.PROMPTER_REPLY])
    assert first.target_message_id == second.target_message_id == assistant2
    await campaign2.service.submit_reply(first.task_id, others[5], "And what about winter?")
    with pytest.raises(TaskRefused) as refused:
        await campaign2.service.submit_reply(second.task_id, others[6], "Tell me more.")
    assert refused.value.reason == "parent_full"


async def test_lonely_children_are_user_turns_with_one_reply_only(make_campaign):
    campaign = make_campaign(**dict(DEEP, num_prompter_replies=2, lonely_children_probability=1.0,
                                    answer_prompter_turns=False))
    service = campaign.service
    users = await campaign.users(14)
    _, assistant = await _assistant_reply_accepted(campaign, users)
    # The assistant message gets one user reply; the prompt gets a second assistant reply.
    await campaign.reply(users[5], TaskKind.PROMPTER_REPLY)
    await campaign.reply(users[2], TaskKind.ASSISTANT_REPLY)
    targets = []
    for user in users[6:14]:
        offer = await service.request_task(user, kinds=[TaskKind.ASSISTANT_REPLY, TaskKind.PROMPTER_REPLY])
        targets.append(offer.target_message_id)
        await service.skip_task(offer.task_id, user)
    # An assistant message with one reply is not "lonely": it must not win every draw.
    assert set(targets) != {assistant}


# 3. Full reviews by Open-Assistant's per-role probabilities, with label kinds on the offer.
async def test_reviews_ask_the_full_label_set_by_role_probability(make_campaign):
    campaign = make_campaign(**DEEP)
    service = campaign.service
    users = await campaign.users(6)
    await campaign.prompt(users[0])
    offer = await service.request_task(users[1], kinds=[TaskKind.LABEL_INITIAL_PROMPT])
    assert offer.review_mode == "full" and len(offer.labels) == 11
    kinds = {spec.name: spec.kind for spec in offer.labels}
    assert kinds["spam"] == "yes_no" and kinds["pii"] == "flag" and kinds["quality"] == "likert"
    assert all(spec.question for spec in offer.labels)
    assert [s.low for s in offer.labels if s.name == "toxicity"] == ["polite"]
    await service.submit_labels(offer.task_id, users[1], {s.name: 0.0 for s in offer.labels})
    await campaign.review(users[2], TaskKind.LABEL_INITIAL_PROMPT)
    await campaign.reply(users[3])
    offer = await service.request_task(users[4], kinds=[TaskKind.LABEL_ASSISTANT_REPLY])
    assert offer.review_mode == "full" and len(offer.labels) == 13
    assert {"fails_task", "helpfulness"} <= {spec.name for spec in offer.labels}
    async with service.sessions() as session:
        modes = set((await session.scalars(select(Label.mode))).all())
        assert modes == {"full"}

    simple = make_campaign(**dict(DEEP, p_full_labeling_review_prompt=0.0))
    simple._next_discord_id = 5000
    people = await simple.users(2)
    await simple.prompt(people[0])
    offer = await simple.service.request_task(people[1], kinds=[TaskKind.LABEL_INITIAL_PROMPT])
    assert offer.review_mode == "simple" and [s.name for s in offer.labels] == ["spam", "lang_mismatch"]


# 4. Only skipped *reply* tasks halt a tree, and only while it is in review or growing.
async def test_skipped_reviews_do_not_halt_but_skipped_replies_do(make_campaign):
    campaign = make_campaign(**dict(SMALL, skips_to_halt=2, reviews_initial_prompt=3))
    service = campaign.service
    users = await campaign.users(8)
    prompt = await campaign.prompt(users[0])
    for user in users[1:4]:
        offer = await service.request_task(user, kinds=[TaskKind.LABEL_INITIAL_PROMPT])
        await service.skip_task(offer.task_id, user)
    assert (await _tree(service, prompt)).state == TreeState.INITIAL_PROMPT_REVIEW
    for user in users[4:7]:
        await campaign.review(user, TaskKind.LABEL_INITIAL_PROMPT)
    assert (await _tree(service, prompt)).state == TreeState.GROWING
    for user in users[1:3]:
        offer = await service.request_task(user, kinds=[TaskKind.ASSISTANT_REPLY])
        result = await service.skip_task(offer.task_id, user)
    assert result.tree_state == TreeState.HALTED_BY_MODERATOR


# 5. Red flags act on trees in review or growing; a finished tree only queues them.
async def test_red_flags_do_not_change_a_finished_tree(campaign):
    service = campaign.service
    users = await campaign.users(12)
    prompt, replies = await campaign.tree_in_ranking(users)
    for ranker in users[5:7]:
        offer = await service.request_task(ranker, kinds=[TaskKind.RANK_ASSISTANT_REPLIES])
        await service.submit_ranking(offer.task_id, ranker, replies)
    assert (await _tree(service, prompt)).state == TreeState.READY_FOR_EXPORT
    for flagger in users[7:12]:
        result = await service.vote(flagger, replies[0], "red_flag")
    assert result.red_flags == 5 and not result.removed_by_flags
    assert (await _message(service, replies[0])).deleted is False
    queue = await service.flagged_messages()
    assert [entry.message_id for entry in queue] == [replies[0]]


async def test_red_flags_remove_a_reply_of_a_growing_tree(make_campaign):
    campaign = make_campaign(**DEEP)
    service = campaign.service
    users = await campaign.users(10)
    await campaign.accepted_prompt(users[0], users[3:5])
    _, reply = await campaign.reply(users[1])
    results = [await service.vote(flagger, reply.message_id, "red_flag") for flagger in users[5:9]]
    assert results[-1].removed_by_flags
    assert (await _message(service, reply.message_id)).deleted is True


# 6. The prompt lottery draws an author first, weighted by their first places this month.
class RecordingRandom(random.Random):
    def __init__(self) -> None:
        super().__init__(1)
        self.draws: list[tuple[list, list]] = []

    def choices(self, population, weights=None, **kwargs):
        self.draws.append((list(population), list(weights)))
        return super().choices(population, weights=weights, **kwargs)


async def test_lottery_draws_among_authors_weighted_by_recent_first_places(make_campaign, clock):
    campaign = make_campaign(**dict(SMALL, max_active_trees_per_language=1))
    service = campaign.service
    users = await campaign.users(5)
    prolific, other = users[0], users[1]
    async with service.sessions.begin() as session:
        for author, count in ((prolific, 4), (other, 1)):
            for n in range(count):
                tree = MessageTree(lang="en", state=TreeState.PROMPT_LOTTERY_WAITING, created_at=clock.now,
                                   updated_at=clock.now)
                session.add(tree)
                await session.flush()
                session.add(Message(tree_id=tree.id, role="prompter", text=f"p{author}-{n}", author_id=author,
                                    lang="en", depth=0, review_result=True, created_at=clock.now))
        # Two first places this month for the second author, one too old to count.
        for days_ago in (1, 3, 40):
            session.add(ScoreEvent(user_id=other, points=9, reason="placement_1",
                                   created_at=clock.now - timedelta(days=days_ago)))
    recording = RecordingRandom()
    ctx = Context(service.settings, recording, clock)
    async with service.sessions.begin() as session:
        promoted = await promote_lottery(session, ctx, "en")
    assert len(promoted) == 1
    population, weights = recording.draws[0]
    assert dict(zip(population, weights, strict=True)) == {prolific: 1, other: 3}


async def test_initial_prompts_stop_while_the_lottery_is_full(make_campaign):
    campaign = make_campaign(**dict(SMALL, max_active_trees_per_language=1, max_prompt_lottery_waiting=1))
    users = await campaign.users(4)
    await campaign.accepted_prompt(users[0], users[2:4])
    await campaign.accepted_prompt(users[1], users[2:4])
    assert (await _no_work(campaign.service, users[2], [TaskKind.INITIAL_PROMPT])) == "no_work"


# 7. The pending limit counts open tasks given in the last 5 minutes.
async def test_abandoned_tasks_stop_blocking_after_five_minutes(make_campaign):
    campaign = make_campaign(**dict(SMALL, max_pending_tasks_per_user=2))
    service = campaign.service
    (user,) = await campaign.users(1)
    for _ in range(2):
        await service.request_task(user, kinds=[TaskKind.INITIAL_PROMPT])
    assert await _no_work(service, user, [TaskKind.INITIAL_PROMPT]) == "too_many_pending"
    campaign.clock.advance(minutes=6)
    offer = await service.request_task(user, kinds=[TaskKind.INITIAL_PROMPT])
    assert offer.kind == TaskKind.INITIAL_PROMPT


# 8. Placement per individual ranking; deleted messages give their points back; OA's level table.
async def test_placement_points_are_paid_per_ranking(campaign):
    service = campaign.service
    users = await campaign.users(8)
    _, replies = await campaign.tree_in_ranking(users)
    best, second = replies[1], replies[0]
    for ranker in users[5:7]:
        offer = await service.request_task(ranker, kinds=[TaskKind.RANK_ASSISTANT_REPLIES])
        await service.submit_ranking(offer.task_id, ranker, [best, second])
    async with service.sessions() as session:
        rows = (await session.execute(
            select(ScoreEvent.user_id, ScoreEvent.reason, ScoreEvent.points)
            .where(ScoreEvent.reason.like("placement%")).order_by(ScoreEvent.id)
        )).all()
    writer_of = {replies[0]: users[1], replies[1]: users[2]}
    assert sorted(rows) == sorted([(writer_of[best], "placement_1", 9.0), (writer_of[second], "placement_2", 3.0)] * 2)


async def test_a_deleted_message_takes_its_points_back(make_campaign):
    campaign = make_campaign(**DEEP)
    service = campaign.service
    users = await campaign.users(7)
    _, assistant = await _assistant_reply_accepted(campaign, users)
    async with service.sessions() as session:
        before = await session.scalar(select(User.points).where(User.id == users[1]))
    assert before == 8.0  # 4 for the reply, 4 more once accepted
    await service.delete_message(users[6], assistant, "spam")
    async with service.sessions() as session:
        after = await session.scalar(select(User.points).where(User.id == users[1]))
        taken = (await session.execute(
            select(ScoreEvent.points, ScoreEvent.message_id).where(ScoreEvent.reason == "message_deleted")
        )).all()
        reviewers = await session.scalar(select(func.sum(User.points)).where(User.id.in_(users[3:5])))
    assert after == 0.0 and taken == [(-8.0, assistant)]
    assert reviewers > 0  # the reviewers did their work; only the author's earnings go
    board = await service.leaderboard("day")
    assert users[1] not in {entry.user_id for entry in board}
    # Deleting again (or a subtree containing it) never takes twice.
    from bot.labelling import points as points_module
    async with service.sessions.begin() as session:
        assert await points_module.take_back(session, service.ctx, {assistant: users[1]}) == 0.0


@pytest.mark.parametrize(("points", "level"), [(0, 0), (3.9, 0), (4, 1), (16, 3), (23.9, 3), (24, 4), (32, 5),
                                               (42, 6), (5999, 98), (6000, 99), (10**9, 99)])
def test_levels_follow_open_assistants_thresholds(points, level):
    assert level_for(points) == level


def test_points_for_each_level():
    assert [points_for_level(n) for n in range(1, 11)] == [4, 9, 16, 24, 32, 42, 53, 65, 79, 93]


# 9. Agreement: each ranking against the consensus of the other rankings of its set.
def test_leave_one_out_agreement_does_not_count_a_ranking_in_its_own_consensus():
    rankings = [[1, 2, 3], [1, 3, 2], [3, 2, 1]]
    # With itself in, the second ranking *is* the consensus (agreement 1); without it, the other two
    # tie everywhere and the consensus is 1, 2, 3: one pair of three disagrees.
    assert leave_one_out_agreements([1, 2, 3], rankings)[1] == pytest.approx(2 / 3)
    assert leave_one_out_agreements([1, 2], [[1, 2], [2, 1]]) == [None, None]


async def test_agreement_and_its_bonus_use_the_other_rankings(make_campaign):
    campaign = make_campaign(**dict(SMALL, max_children=3, goal_tree_size=4, rankings_needed=3))
    service = campaign.service
    users = await campaign.users(9)
    await campaign.accepted_prompt(users[0], users[4:6])
    replies = []
    for writer in users[1:4]:
        _, result = await campaign.reply(writer)
        replies.append(result.message_id)
    for _ in replies:
        for reviewer in users[4:6]:
            await campaign.review(reviewer, TaskKind.LABEL_ASSISTANT_REPLY)
    a, b, c = sorted(replies)
    for ranker, order in zip(users[6:9], ([a, b, c], [a, c, b], [c, b, a]), strict=True):
        offer = await service.request_task(ranker, kinds=[TaskKind.RANK_ASSISTANT_REPLIES])
        result = await service.submit_ranking(offer.task_id, ranker, order)
    assert result.tree_state == TreeState.READY_FOR_EXPORT
    async with service.sessions() as session:
        agreement = dict((await session.execute(select(Ranking.user_id, Ranking.agreement))).all())
        bonus = dict((await session.execute(
            select(ScoreEvent.user_id, ScoreEvent.points).where(ScoreEvent.reason == "ranking_agreement")
        )).all())
    assert agreement[users[7]] == pytest.approx(2 / 3)
    assert bonus[users[7]] == pytest.approx(2 * 2 / 3)


async def test_two_rankings_give_no_agreement_figure(campaign):
    service = campaign.service
    users = await campaign.users(7)
    _, replies = await campaign.tree_in_ranking(users)
    for ranker in users[5:7]:
        offer = await service.request_task(ranker, kinds=[TaskKind.RANK_ASSISTANT_REPLIES])
        await service.submit_ranking(offer.task_id, ranker, replies)
    async with service.sessions() as session:
        assert (await session.scalars(select(Ranking.agreement))).all() == [None, None]
        assert await session.scalar(
            select(func.count()).select_from(ScoreEvent).where(ScoreEvent.reason == "ranking_agreement")) == 0


# 10. A late review re-decides a message while its tree is still in review.
async def test_a_late_review_can_turn_a_rejection_into_acceptance(make_campaign):
    campaign = make_campaign(**dict(DEEP, contested_extra_reviews=0))
    service = campaign.service
    users = await campaign.users(8)
    await campaign.accepted_prompt(users[0], users[5:7])
    _, reply = await campaign.reply(users[1])
    offers = [await service.request_task(user, kinds=[TaskKind.LABEL_ASSISTANT_REPLY]) for user in users[2:5]]
    assert {offer.target_message_id for offer in offers} == {reply.message_id}
    await service.submit_labels(offers[0].task_id, users[2], {"spam": 1.0})
    rejected = await service.submit_labels(offers[1].task_id, users[3], {"spam": 0.0})
    assert rejected.review_decided is False  # 1 - 1/2 = 0.5
    late = await service.submit_labels(offers[2].task_id, users[4], {"spam": 0.0})
    assert late.review_decided is True  # 1 - 1/3 = 0.67
    async with service.sessions() as session:
        assert (await session.get(Message, reply.message_id)).review_result is True
        reasons = (await session.scalars(select(ScoreEvent.reason).where(ScoreEvent.user_id == users[1]))).all()
    assert sorted(reasons) == ["assistant_reply", "assistant_reply_accepted"]


# Our extension: user turns are answered before a tree closes.
async def test_a_tree_does_not_close_on_an_unanswered_user_turn(make_campaign):
    campaign = make_campaign(**dict(DEEP, goal_tree_size=3, max_children=1))
    service = campaign.service
    users = await campaign.users(8)
    prompt, _ = await _assistant_reply_accepted(campaign, users)
    _, turn = await campaign.reply(users[5], TaskKind.PROMPTER_REPLY)
    for reviewer in users[3:5]:
        await campaign.review(reviewer, TaskKind.LABEL_PROMPTER_REPLY)
    # Goal reached (3 accepted), but the user turn waits for its answer.
    assert (await _tree(service, prompt)).state == TreeState.GROWING
    offer, answer = await campaign.reply(users[6], TaskKind.ASSISTANT_REPLY)
    assert offer.target_message_id == turn.message_id
    for reviewer in users[3:5]:
        await campaign.review(reviewer, TaskKind.LABEL_ASSISTANT_REPLY)
    assert (await _tree(service, prompt)).state != TreeState.GROWING

    oa = make_campaign(**dict(DEEP, goal_tree_size=3, max_children=1, answer_prompter_turns=False))
    oa._next_discord_id = 5000
    people = await oa.users(8)
    prompt2, _ = await _assistant_reply_accepted(oa, people)
    await oa.reply(people[5], TaskKind.PROMPTER_REPLY)
    for reviewer in people[3:5]:
        await oa.review(reviewer, TaskKind.LABEL_PROMPTER_REPLY)
    assert (await _tree(oa.service, prompt2)).state != TreeState.GROWING


async def test_red_flags_on_a_finished_trees_prompt_only_queue_it(campaign):
    """Four flags on the prompt of a finished tree: no abort, no automatic removal, one queue entry."""
    service = campaign.service
    users = await campaign.users(12)
    prompt, replies = await campaign.tree_in_ranking(users)
    for ranker in users[5:7]:
        offer = await service.request_task(ranker, kinds=[TaskKind.RANK_ASSISTANT_REPLIES])
        await service.submit_ranking(offer.task_id, ranker, replies)
    for flagger in users[7:11]:
        await service.vote(flagger, prompt, "red_flag")
    assert (await _tree(service, prompt)).state == TreeState.READY_FOR_EXPORT
    async with service.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(AuditLog)) == 0
        flag = await session.scalar(select(ModerationFlag))
        assert flag.flag_count == 4 and not flag.resolved
        assert await session.scalar(select(func.count()).select_from(Message).where(Message.deleted)) == 0


# Our extension: a contested rejection waits for more reviews.
async def _prompt_reviews(campaign, reviews):
    service = campaign.service
    users = await campaign.users(1 + len(reviews))
    prompt = await campaign.prompt(users[0])
    results = []
    for reviewer, labels in zip(users[1:], reviews, strict=True):
        offer = await service.request_task(reviewer, kinds=[TaskKind.LABEL_INITIAL_PROMPT])
        results.append(await service.submit_labels(offer.task_id, reviewer, labels))
    return prompt, results


async def test_one_reviewer_cannot_reject_alone_when_others_found_nothing_wrong(make_campaign):
    campaign = make_campaign(**dict(SMALL, reviews_initial_prompt=3, contested_extra_reviews=3))
    troll, clean = {"spam": 1.0, "lang_mismatch": 1.0}, {"spam": 0.0, "lang_mismatch": 0.0}
    prompt, results = await _prompt_reviews(campaign, [troll, clean, clean, clean, clean, clean])
    # After three reviews Open-Assistant's rule would reject (1 - 2/3); the message waits instead, and
    # over all six reviews it passes (1 - 2/6 = 0.67).
    assert [r.review_decided for r in results] == [None, None, None, None, None, True]
    assert (await _tree(campaign.service, prompt)).state == TreeState.GROWING


async def test_an_uncontested_rejection_and_open_assistants_rule_decide_at_once(make_campaign):
    flagged = {"spam": 1.0, "lang_mismatch": 0.0}
    campaign = make_campaign(**dict(SMALL, reviews_initial_prompt=3, contested_extra_reviews=3))
    prompt, results = await _prompt_reviews(campaign, [flagged, flagged, {"spam": 0.0, "lang_mismatch": 1.0}])
    assert results[-1].review_decided is False
    assert (await _tree(campaign.service, prompt)).state == TreeState.ABORTED_LOW_GRADE

    oa = make_campaign(**dict(SMALL, reviews_initial_prompt=3, contested_extra_reviews=0))
    oa._next_discord_id = 5000
    troll, clean = {"spam": 1.0, "lang_mismatch": 1.0}, {"spam": 0.0}
    prompt, results = await _prompt_reviews(oa, [troll, clean, clean])
    assert results[-1].review_decided is False
    assert (await _tree(oa.service, prompt)).state == TreeState.ABORTED_LOW_GRADE
