"""The real bot with the task and tutorial cogs against the Discord emulator, and helpers that act like
a member clicking through /task."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from bot.config import DiscordSettings, Settings
from storage.models import Label, Message, MessageTree, Ranking, ScoreEvent, Task, User

# Short trees: a prompt, two assistant replies, one user reply and its answer; two reviews each; three
# rankings. Prompts get the full review (paged), replies the quick one.
FLOW = dict(
    reviews_initial_prompt=2, reviews_reply=2, goal_tree_size=4, max_children=2, max_tree_depth=3,
    rankings_needed=3, p_full_labeling_review_prompt=1.0, p_full_labeling_review_reply_assistant=0.0,
    p_full_labeling_review_reply_prompter=0.0,
)
# Every labelling cog the bot loads by default (chat is off in these tests).
COGS = [cog for cog in DiscordSettings().cogs if cog.startswith("cogs.labelling.")]


@pytest.fixture
def make_settings(tmp_path):
    def make(**labelling: Any) -> Settings:
        return Settings(
            database={"url": f"sqlite+aiosqlite:///{tmp_path}/bot.db"},
            discord={"cogs": COGS},
            chat={"enabled": False},
            labelling={**FLOW, **labelling},
        )

    return make


@pytest.fixture
def dump():
    return dump_rows


async def dump_rows(sessions) -> dict[str, list[tuple]]:
    """Every row that labelling work can change, to prove a refusal changed nothing."""
    tables = {
        "users": (User.id, User.discord_id, User.points, User.banned, User.streak_days),
        "tasks": (Task.id, Task.kind, Task.user_id, Task.state, Task.payload, Task.done_at),
        "trees": (MessageTree.id, MessageTree.state),
        "messages": (Message.id, Message.text, Message.review_count, Message.review_result, Message.rank),
        "labels": (Label.id, Label.message_id, Label.user_id, Label.name, Label.value),
        "rankings": (Ranking.id, Ranking.parent_id, Ranking.user_id, Ranking.ordered_ids, Ranking.not_rankable),
        "score_events": (ScoreEvent.id, ScoreEvent.user_id, ScoreEvent.points, ScoreEvent.reason),
    }
    async with sessions() as session:
        return {name: [tuple(row) for row in (await session.execute(select(*cols).order_by(cols[0])))]
                for name, cols in tables.items()}


def ids(message, prefix: str) -> list[str]:
    return [cid for cid in message.custom_ids if cid.startswith(prefix)]


def select_for(message, action: str, arg: str = "") -> str | None:
    return next((cid for cid in ids(message, f"lt:s:{action}:") if cid.rsplit(":", 1)[1] == arg), None)


def component(message, custom_id: str) -> dict:
    found = message.find_component(custom_id)
    assert found is not None, (custom_id, message.custom_ids)
    return found


def reply_letters(message) -> dict[str, str]:
    """Letter -> reply text, from the candidate embeds of a ranking task."""
    return {e["title"].split()[1]: e["description"] for e in message.embeds if e.get("title", "").startswith("Reply ")}


class Clicker:
    """Drives one member through the task UI and waits for the bot's answer to each action."""

    ids = staticmethod(ids)
    component = staticmethod(component)
    reply_letters = staticmethod(reply_letters)

    def __init__(self, emu, user, channel=None) -> None:
        self.emu, self.user, self.channel = emu, user, channel

    async def task(self, kind: str | None = None, **options: Any):
        """/task; returns the ephemeral answer once it is filled in."""
        if kind:
            options["kind"] = kind
        interaction = await self.user.slash("task", options, channel=self.channel)
        message = await interaction.wait_message()
        assert message.ephemeral
        return message

    async def _wait(self, interaction, message, before: int):
        """The bot's answer to this interaction: a new ephemeral message or follow-up (a refusal, a
        note), else the message it changed."""
        response = await interaction.wait_response()
        if response.kind == "message":
            return await interaction.wait_message()
        return await self.emu.wait_for(
            lambda: (interaction.followups[0] if interaction.followups else None)
            or (message if len(message.history) > before else None),
            what=f"an answer to {interaction.describe()}",
        )

    def forged(self, custom_id: str, *, select_values: list[str] | None = None):
        """A bot message in the member's DMs carrying a component the bot never made this way (a stale
        message of an older version, or a crafted one)."""
        if select_values is None:
            item = {"type": 2, "style": 1, "label": "Old", "custom_id": custom_id}
        else:
            item = {"type": 3, "custom_id": custom_id, "options": [{"label": v, "value": v} for v in select_values]}
        payload = {"content": "An old task", "components": [{"type": 1, "components": [item]}]}
        return self.emu.post_message(self.user.dm_channel, self.emu.bot_user, payload)

    async def click(self, message, custom_id: str):
        before = len(message.history)
        return await self._wait(await self.user.click(message, custom_id), message, before)

    async def pick(self, message, custom_id: str, values: list[str]):
        before = len(message.history)
        return await self._wait(await self.user.select(message, custom_id, values), message, before)

    async def write(self, message, text: str, *, button: str = "lt:b:write:"):
        """Press Write (or Write again) and send ``text`` from the modal."""
        return await self.send_modal(await self.open_modal(message, button), message, text)

    async def open_modal(self, message, button: str = "lt:b:write:"):
        opened = await self.user.click(message, ids(message, button)[0])
        await opened.wait_modal()
        return opened

    async def send_modal(self, opened, message, text: str):
        before = len(message.history)
        return await self._wait(await opened.submit_modal({"lt:text": text}), message, before)

    async def review(self, message, *, spam: bool = False, scale: int = 4, flags: tuple[str, ...] = ()):
        """Answers every question of a review task page by page, then confirms. ``scale`` (1-5) for every
        scale; ``flags``: the flag questions to tick (by their words)."""
        while True:
            for arg in [cid.rsplit(":", 1)[1] for cid in ids(message, "lt:s:label:")]:
                cid = select_for(message, "label", arg)
                options = [o["label"] for o in component(message, cid)["options"]]
                if options == ["Yes", "No"]:
                    placeholder = component(message, cid).get("placeholder", "")
                    value = "4" if spam and "spam" in placeholder.lower() else "0"
                else:
                    value = str(scale - 1)
                await self.pick(message, cid, [value])
            flag_select = select_for(message, "flags")
            if flag_select and flags:
                chosen = [o["value"] for o in component(message, flag_select)["options"] if o["label"] in flags]
                await self.pick(message, flag_select, chosen)
            more = [cid for cid in ids(message, "lt:b:page:") if component(message, cid)["label"].startswith("More")]
            if not more:
                return await self.click(message, ids(message, "lt:b:confirm:")[0])
            await self.click(message, more[0])

    async def rank(self, message, best_first: list[str]):
        """Picks the replies in this order through the select, then confirms."""
        for letter in best_first:
            cid = select_for(message, "rank")
            if cid is None:  # the last one took its place by itself
                break
            await self.pick(message, cid, [letter])
        return await self.click(message, ids(message, "lt:b:rankok:")[0])


@pytest.fixture
def clicker(emulator):  # noqa: F811
    def make(user, channel=None) -> Clicker:
        return Clicker(emulator, user, channel)

    return make
