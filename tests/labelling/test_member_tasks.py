"""MemberTasks: Discord ids at the edge, one transaction per call, nothing left behind by a refusal."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import func, select

from bot.config import LabellingSettings
from bot.labelling.errors import NoTaskAvailable, TaskRefused
from bot.labelling.member_tasks import InvalidLanguage, Member, MemberTasks
from bot.labelling.service import LabellingService
from storage.enums import TaskKind
from storage.models import Task, User


@pytest.fixture
def members(sessions) -> MemberTasks:
    return MemberTasks(LabellingService(sessions, LabellingSettings(), rng=random.Random(1)))


async def _count(sessions, model) -> int:
    async with sessions() as session:
        return await session.scalar(select(func.count()).select_from(model))


async def test_first_contact_creates_the_member_with_the_task(members, sessions):
    offer = await members.request(Member(111, "Ana", "pt-BR"), "prompt")
    assert offer.kind == TaskKind.INITIAL_PROMPT and offer.lang == "pt-BR"
    async with sessions() as session:
        user = await session.scalar(select(User))
        assert (user.discord_id, user.display_name, user.locale) == (111, "Ana", "pt-BR")
        assert (await session.get(Task, offer.task_id)).payload["asked"] == "prompt"
    # The option wins over the locale; a saved choice would too.
    assert (await members.request(Member(111, "Ana", "pt-BR"), "prompt", "de")).lang == "de"


async def test_a_refusal_leaves_no_member_behind(members, sessions):
    with pytest.raises(NoTaskAvailable) as refused:
        await members.request(Member(222, "Bo", "en-US"), "rank")
    assert refused.value.reason == "no_work"
    with pytest.raises(InvalidLanguage):
        await members.request(Member(222, "Bo", "en-US"), "prompt", "not a tag")
    assert await _count(sessions, User) == 0


async def test_texts_reviews_and_skips_by_discord_id(members, sessions):
    ana, bo = Member(1, "Ana"), Member(2, "Bo")
    offer = await members.request(ana, "prompt")
    with pytest.raises(TaskRefused) as refused:
        await members.submit_text(bo, offer.task_id, "Hello?")
    assert refused.value.reason == "not_your_task"
    with pytest.raises(TaskRefused) as refused:
        await members.open(Member(3, "Stranger"), offer.task_id)
    assert refused.value.reason == "not_your_task" and await _count(sessions, User) == 1
    done = await members.submit_text(ana, offer.task_id, "How do tides work?")
    assert (done.kind, done.points, done.needed, done.asked, done.lang) == (TaskKind.INITIAL_PROMPT, 0.1, 3,
                                                                             "prompt", "en")
    with pytest.raises(TaskRefused) as refused:
        await members.open(ana, offer.task_id)
    assert refused.value.reason == "already_done"

    review = await members.request(bo, "review")
    answers = [None] * len(review.labels)
    with pytest.raises(TaskRefused) as refused:
        await members.submit_review(bo, review.task_id, answers[:-1])
    assert refused.value.reason == "invalid_labels"
    answers[0] = 0.0  # spam: no
    reviewed = await members.submit_review(bo, review.task_id, answers)
    assert (reviewed.progress, reviewed.needed, reviewed.accepted) == (1, 3, None)

    skipped = await members.skip(Member(3, "Cy"), (await members.request(Member(3, "Cy"), "review")).task_id,
                                 "unclear")
    assert skipped.skipped and skipped.asked == "review"
