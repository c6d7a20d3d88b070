from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from bot.config import LabellingSettings
from bot.labelling.service import LabellingService
from storage.enums import TaskKind

# Small trees so a whole lifecycle takes a handful of calls: prompt + 2 replies, 2 reviews, 2 rankings.
SMALL = dict(
    reviews_initial_prompt=2, reviews_reply=2, goal_tree_size=3, max_children=2, max_tree_depth=1,
    rankings_needed=2,
)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


class Campaign:
    """Drives the service like a cog would, with a few shortcuts for setting up trees."""

    def __init__(self, service: LabellingService, clock: Clock) -> None:
        self.service = service
        self.clock = clock
        self._next_discord_id = 1000

    async def users(self, count: int) -> list[int]:
        ids = []
        for _ in range(count):
            self._next_discord_id += 1
            info = await self.service.get_or_create_user(self._next_discord_id, display_name=f"u{self._next_discord_id}")
            ids.append(info.id)
        return ids

    async def prompt(self, author: int, text: str = "How do plants make food?") -> int:
        offer = await self.service.request_task(author, kinds=[TaskKind.INITIAL_PROMPT])
        result = await self.service.submit_initial_prompt(offer.task_id, author, text)
        self.clock.advance(seconds=30)
        return result.message_id

    async def review(self, reviewer: int, kind: TaskKind, *, spam: float = 0.0, lang_mismatch: float = 0.0):
        offer = await self.service.request_task(reviewer, kinds=[kind])
        labels = {"spam": spam, "lang_mismatch": lang_mismatch}
        if "quality" in offer.label_names:
            labels["quality"] = 0.75
        result = await self.service.submit_labels(offer.task_id, reviewer, labels)
        self.clock.advance(seconds=30)
        return offer, result

    async def reply(self, author: int, kind: TaskKind = TaskKind.ASSISTANT_REPLY, text: str | None = None):
        offer = await self.service.request_task(author, kinds=[kind])
        result = await self.service.submit_reply(offer.task_id, author, text or f"An answer by {author}.")
        self.clock.advance(seconds=30)
        return offer, result

    async def accepted_prompt(self, author: int, reviewers: list[int]) -> int:
        self._next_discord_id += 1
        message_id = await self.prompt(author, f"Prompt number {self._next_discord_id} by {author}?")
        for reviewer in reviewers:
            await self.review(reviewer, TaskKind.LABEL_INITIAL_PROMPT)
        return message_id

    async def tree_in_ranking(self, users: list[int]) -> tuple[int, list[int]]:
        """With SMALL settings: a prompt by users[0] and accepted replies by users[1] and users[2]."""
        prompt = await self.accepted_prompt(users[0], users[3:5])
        replies = []
        for writer in users[1:3]:
            _, result = await self.reply(writer)
            replies.append(result.message_id)
        for _ in replies:
            for reviewer in users[3:5]:
                await self.review(reviewer, TaskKind.LABEL_ASSISTANT_REPLY)
        return prompt, replies


@pytest.fixture
def make_campaign(sessions, clock):
    def make(**settings) -> Campaign:
        service = LabellingService(sessions, LabellingSettings(**settings), rng=random.Random(3), clock=clock)
        return Campaign(service, clock)

    return make


@pytest.fixture
def campaign(make_campaign) -> Campaign:
    return make_campaign(**SMALL)
