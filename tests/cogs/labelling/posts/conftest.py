"""The real bot with every labelling cog and /admin against the emulator, and helpers for task posts."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.config import DiscordSettings, Settings

# Short trees: a prompt and two assistant replies, two reviews each, three rankings.
FLOW = dict(
    reviews_initial_prompt=2, reviews_reply=2, goal_tree_size=3, max_children=2, max_tree_depth=3,
    rankings_needed=3, p_full_labeling_review_prompt=1.0, p_full_labeling_review_reply_assistant=0.0,
    p_full_labeling_review_reply_prompter=0.0,
)
COGS = [cog for cog in DiscordSettings().cogs if cog != "cogs.chat"]


def posts_settings(tmp_path, posts: dict[str, Any] | None = None, **labelling: Any) -> Settings:
    return Settings(
        database={"url": f"sqlite+aiosqlite:///{tmp_path}/bot.db"},
        discord={"cogs": COGS},
        chat={"enabled": False},
        labelling={**FLOW, **labelling},
        # Tests post through the entry point; the scheduler's own first post would race with them.
        posts={"first_post_delay_seconds": 3600, **(posts or {})},
    )


@pytest.fixture
def make_settings(tmp_path):
    def make(posts: dict[str, Any] | None = None, **labelling: Any) -> Settings:
        return posts_settings(tmp_path, posts, **labelling)

    return make


async def eventually(check, *, within: float = 10.0) -> Any:
    """Poll a database condition the bot reaches on its own (a reaction has no answer to wait for)."""
    async with asyncio.timeout(within):
        while not (result := await check()):  # noqa: ASYNC110  (the database has no change event to wait on)
            await asyncio.sleep(0.02)
        return result
