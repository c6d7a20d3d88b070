"""The gateway drops the bot, which resumes, and the emulator replays the last 10,000 events it had
already delivered (as when the client's acknowledgements were lost): reactions, the members' prompt
submissions (interactions) and DMs to the chat all arrive a second time. Nothing is counted twice: the
post reactions and votes are those of the final state, every acknowledged prompt is stored once, every
DM gets one stored message and one answer.

FAULTS_REPLAY_EVENTS sets how many reaction events are sent (default 10,000; the replay is the gateway's
whole resume buffer, 10,000 frames). On SQLite, and on PostgreSQL when OABOT_TEST_POSTGRES_URL gives a server."""

from __future__ import annotations

import logging
import os
import random
from collections import Counter

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bench.discord_load import Figures, Member
from bot.config import Settings
from bot.labelling.post_reactions import VOTE_EMOJI
from emulator.pytest_plugin import emulator  # noqa: F401  (fixture)
from model_runner import bundled_smollm2_path
from storage.enums import ChatRole
from storage.models import ChatMessage
from tests.cogs.labelling.posts.conftest import COGS, FLOW
from tests.faults.fault_harness import held_reactions, shown_reactions, stored_texts, vote_mismatches

EVENTS = int(os.environ.get("FAULTS_REPLAY_EVENTS", "10000"))
REACTIONS = ("MESSAGE_REACTION_ADD", "MESSAGE_REACTION_REMOVE")


def settings_for(database_url: str) -> Settings:
    model = bundled_smollm2_path()
    chat = ({"model_path": str(model), "threads": 1, "context_size": 1024, "max_reply_tokens": 4, "seed": 1}
            if model else {"enabled": False})
    return Settings(database={"url": database_url},
                    discord={"cogs": [*COGS, "cogs.chat"] if model else COGS},
                    chat=chat, labelling=FLOW, posts={"first_post_delay_seconds": 3600})


# 10,000 events twice over take minutes on a loaded 2-core machine.
@pytest.mark.timeout(900)
async def test_resume_replaying_10000_events_counts_nothing_twice(emulator, start_bot, database_url, caplog):  # noqa: F811
    emu = emulator
    guild = await emu.create_guild("Replay", channels=["general", "one", "two"])
    mod = await emu.create_user("mod", guild=guild, moderator=True)
    members = [await emu.create_user(f"member{i}", guild=guild) for i in range(40)]
    settings = settings_for(database_url)
    async with start_bot(settings) as bot:
        labelling = bot.services.labelling
        # Posts with a subject: an accepted prompt (written and reviewed through the engine).
        from tests.cogs.labelling.posts.test_reaction_replay import accepted_prompt
        await accepted_prompt(labelling, "Which metals conduct heat best, and why?")
        posts = []
        for name in ("one", "two"):
            channel = guild.channel(name)
            await (await mod.slash("admin channel set", {"channel": channel, "kinds": "reply"},
                                   channel=guild.channel("general"))).wait_message()
            ref = await bot.get_cog("Posts").post_next(channel.id)
            posts.append(emu.get_message(ref.discord_message_id))

        handled = Counter()
        reactions = bot.get_cog("PostReactions").reactions
        original = reactions.react

        async def counting(*args, **kwargs):
            try:
                return await original(*args, **kwargs)
            finally:
                handled["reactions"] += 1

        reactions.react = counting
        rng = random.Random(1403)

        async def toggle(count: int) -> None:
            for _ in range(count):
                member, post, emoji = rng.choice(members), rng.choice(posts), rng.choice(list(VOTE_EMOJI))
                if member.id in post.reactions.get(emoji, []):
                    await member.unreact(post, emoji)
                else:
                    await member.react(post, emoji)

        await toggle(EVENTS * 2 // 5)
        # Submissions and chat in the middle of the stream, so the replayed window holds them.
        figures = Figures()
        writers = [Member(emu, user, figures, random.Random(i), posts, guild.id) for i, user in enumerate(members[:6])]
        for writer in writers:
            await writer.write_prompt()
        chatting = members[6:9] if bot.get_cog("Chat") else []
        for i, user in enumerate(chatting):
            asked = await user.dm(f"Say hello number {i}.")
            await emu.wait_for_message(user, lambda m: bool(m.components) or "*Sorry," in m.content, after=asked,
                                       timeout=120)
        await toggle(EVENTS - EVENTS * 2 // 5)
        live = sum(1 for name in REACTIONS for e in emu.gateway.events(name) if e.data["user_id"] != str(emu.bot_user.id))
        await emu.wait_for(lambda: handled["reactions"] >= live or None, timeout=300, what="every live reaction handled")

        session = next(iter(emu.gateway.sessions.values()))
        buffered = list(session.buffer)
        replayed = Counter(frame["t"] for frame in buffered)
        replayed_reactions = sum(1 for f in buffered if f["t"] in REACTIONS and f["d"]["user_id"] != str(emu.bot_user.id))
        assert replayed["INTERACTION_CREATE"] >= 3 * len(writers) and replayed["MESSAGE_CREATE"] >= len(chatting)
        resumes = emu.gateway.resume_count
        emu.gateway.replay_on_resume(len(buffered))
        emu.gateway.drop(abrupt=True)
        await emu.wait_for(lambda: emu.gateway.resume_count > resumes and emu.gateway.connected or None, timeout=60)
        await emu.wait_for(lambda: handled["reactions"] >= live + replayed_reactions or None, timeout=300,
                           what="every replayed reaction handled")
        await bot.get_cog("Posts").wait_for_edits()

        expected = shown_reactions(posts, emu.bot_user.id, frozenset(VOTE_EMOJI))
        held = await held_reactions(database_url)
        assert set(held) == expected and max(held.values()) == 1
        assert await vote_mismatches(database_url) == []
        stored = await stored_texts(database_url, figures.prompts)
        assert figures.prompts and all(stored[text] == 1 for text in figures.prompts), stored
        async with bot.services.sessions() as db:
            by_role = dict((await db.execute(select(ChatMessage.role, func.count()).group_by(ChatMessage.role))).all())
        assert by_role.get(ChatRole.USER, 0) == len(chatting) and by_role.get(ChatRole.ASSISTANT, 0) == len(chatting)
        for user in chatting:  # one answer per DM, none sent again for the replayed message
            answers = [m for m in emu.dm_channel(user).visible_messages() if m.author.id == emu.bot_user.id]
            assert len(answers) == 1
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert errors == []  # a replayed interaction is dropped, not answered again (40060)
        print(f"\nreplay on {make_url(database_url).get_backend_name()}: {sum(replayed.values())} events replayed "
              f"({replayed_reactions} reactions, {replayed['INTERACTION_CREATE']} interactions, "
              f"{replayed['MESSAGE_CREATE']} messages); prompts acknowledged {len(figures.prompts)}, "
              f"found {len(stored)}, duplicated 0; chat DMs {len(chatting)}, "
              f"answered {by_role.get(ChatRole.ASSISTANT, 0)}; post reactions held {len(held)} = shown, doubled 0")
