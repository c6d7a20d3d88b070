"""A small finished campaign for the moderator tests: members in the emulator with matching users in the
database, two exportable trees whose messages the bot posted in #campaign, reactions and flags."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.config import Settings
from bot.labelling.service import LabellingService
from storage.enums import Role, TaskKind, TaskState, TreeState
from storage.models import (
    Label,
    Message,
    MessageTree,
    ModerationFlag,
    Ranking,
    Reaction,
    ScoreEvent,
    Task,
    User,
)

T0 = datetime.now(UTC) - timedelta(days=3)


def admin_settings(tmp_path, cogs: tuple[str, ...] = ("cogs.admin",), **discord: Any) -> Settings:
    return Settings(database={"url": f"sqlite+aiosqlite:///{tmp_path}/bot.db"},
                    discord={"cogs": list(cogs), **discord}, chat={"enabled": False})


@dataclass
class World:
    guild: Any
    campaign: Any  # the channel the bot posted tree messages in
    general: Any
    mod_log: Any
    mod: Any
    members: dict[str, Any]
    ids: dict[str, int] = field(default_factory=dict)  # our ids by name: users, trees (t1, t2), messages
    posts: dict[str, Any] = field(default_factory=dict)  # emulator messages of bot posts, by message name

    def link(self, name: str) -> str:
        post = self.posts[name]
        return f"https://discord.com/channels/{self.guild.id}/{post.channel_id}/{post.id}"


async def build_world(emu, sessions) -> World:
    """Members alice..erin and a troll; t1: P1 -> A1 (rank 0), A2 (rank 1) -> P2; t2: P3 -> A3 (by troll)."""
    guild = await emu.create_guild("Campaign", channels=["general", "campaign", "mod-log"])
    mod = await emu.create_user("mod", guild=guild, moderator=True)
    members = {name: await emu.create_user(name, guild=guild) for name in ("alice", "bob", "carol", "dave", "troll")}
    world = World(guild, guild.channel("campaign"), guild.channel("general"), guild.channel("mod-log"), mod, members)
    async with sessions() as s:
        users = {}
        for name, member in members.items():
            users[name] = User(discord_id=member.id, display_name=name, created_at=T0)
            s.add(users[name])
        await s.flush()
        world.ids.update({name: user.id for name, user in users.items()})

        async def tree(name: str) -> MessageTree:
            t = MessageTree(state=TreeState.READY_FOR_EXPORT, lang="en", created_at=T0)
            s.add(t)
            await s.flush()
            world.ids[name] = t.id
            return t

        async def message(name: str, t: MessageTree, parent: str | None, role: str, author: str, **kw) -> None:
            m = Message(tree_id=t.id, parent_id=world.ids[parent] if parent else None, role=role,
                        text=kw.pop("text", f"text of {name}"), author_id=world.ids[author], lang="en",
                        depth=kw.pop("depth", 0), review_count=2, review_result=True, created_at=T0, **kw)
            s.add(m)
            await s.flush()
            world.ids[name] = m.id

        t1, t2 = await tree("t1"), await tree("t2")
        await message("P1", t1, None, Role.PROMPTER, "alice", text="Why is the sky blue?")
        await message("A1", t1, "P1", Role.ASSISTANT, "bob", depth=1, rank=0, text="Rayleigh scattering.")
        await message("A2", t1, "P1", Role.ASSISTANT, "carol", depth=1, rank=1, text="Because of the sea.")
        await message("P2", t1, "A2", Role.PROMPTER, "dave", depth=2, text="Are you sure?")
        await message("P3", t2, None, Role.PROMPTER, "alice", text="Name a prime number.")
        await message("A3", t2, "P3", Role.ASSISTANT, "troll", depth=1, text="BUY CHEAP FOLLOWERS NOW")
        for name in ("bob", "carol", "dave"):
            s.add(Reaction(message_id=world.ids["A3"], user_id=world.ids[name], emoji="red_flag", created_at=T0))
        s.add(Reaction(message_id=world.ids["A3"], user_id=world.ids["alice"], emoji="-1", created_at=T0))
        s.add(ModerationFlag(message_id=world.ids["A3"], flag_count=3, created_at=T0, updated_at=T0))
        s.add(Reaction(message_id=world.ids["A2"], user_id=world.ids["alice"], emoji="red_flag", created_at=T0))
        s.add(ModerationFlag(message_id=world.ids["A2"], flag_count=1, created_at=T0, updated_at=T0))
        # Carol earned points with A2; deleting A2 takes them back.
        s.add(ScoreEvent(user_id=world.ids["carol"], points=4, reason="assistant_reply", message_id=world.ids["A2"],
                         created_at=T0))
        users["carol"].points = 4
        s.add(Label(message_id=world.ids["A1"], user_id=world.ids["carol"], name="quality", value=0.75,
                    created_at=T0))
        s.add(Ranking(parent_id=world.ids["P1"], user_id=world.ids["dave"], ordered_ids=[world.ids["A1"],
                      world.ids["A2"]], agreement=0.8, created_at=T0))
        # The troll still holds an open task; banning withdraws it.
        s.add(Task(kind=TaskKind.LABEL_ASSISTANT_REPLY, user_id=world.ids["troll"], target_message_id=world.ids["A1"],
                   tree_id=t1.id, lang="en", state=TaskState.OFFERED, created_at=datetime.now(UTC),
                   expires_at=datetime.now(UTC) + timedelta(days=1)))
        s.add(Task(kind=TaskKind.ASSISTANT_REPLY, user_id=world.ids["bob"], target_message_id=world.ids["P1"],
                   tree_id=t1.id, lang="en", state=TaskState.DONE, created_at=T0, expires_at=T0 + timedelta(days=2),
                   done_at=T0 + timedelta(minutes=5)))
        await s.commit()
    # The bot posted each message in #campaign (issue 10's posts); reactions and links point at these.
    for name in ("P1", "A1", "A2", "P2", "P3", "A3"):
        post = emu.post_message(world.campaign, emu.bot_user, {"content": f"message {name}"})
        world.posts[name] = post
        await LabellingService(sessions).record_discord_location(world.ids[name], world.campaign.id, post.id)
    return world


@pytest.fixture
def world_of(emulator):  # noqa: F811 (the emulator fixture comes from tests/cogs/conftest.py)
    async def make(bot) -> World:
        return await build_world(emulator, bot.services.sessions)

    return make
