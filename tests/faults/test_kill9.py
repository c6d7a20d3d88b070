"""kill -9 of the bot in the middle of a storm of submissions and reactions, then a restart.

Members (bench/discord_load.py's: prompts through /task, reviews through /task review's selects, 👍 / 👎 /
🚩 added and taken back on the channel posts) keep going while the bot is killed and while it is down;
some react only while it is down. After the restart:
- every prompt and review a member saw "Thank you, recorded!" for is in the database, none twice;
- what post_reactions holds is exactly what the emulator shows (every reaction the gateway acknowledged,
  counted once: reactions sent while the bot was down are read back from Discord at the start), and the
  engine's votes are the ones those reactions give.
On SQLite, and on PostgreSQL when OABOT_TEST_POSTGRES_URL gives a server.
"""

from __future__ import annotations

import asyncio
import random

from sqlalchemy import text
from sqlalchemy.engine import make_url

from bench.discord_load import Figures, Member, lost_submissions, seed_database
from bot.labelling.post_reactions import VOTE_EMOJI
from emulator import Emulator
from storage import db
from tests.faults.fault_harness import (
    BotProcess,
    duplicated_texts,
    held_reactions,
    shown_reactions,
    vote_mismatches,
)

MEMBERS = 30
STORM_SECONDS = 14.0  # the bot is killed 4 s in, and restarted 4 s later
VOTES = frozenset(VOTE_EMOJI)


async def test_kill9_during_a_storm_loses_and_doubles_nothing(tmp_path, database_url):
    emu = Emulator(history_limit=20_000)
    await emu.start()
    bot = None
    try:
        guild = await emu.create_guild("Storm", channels=["general", "reviews", "replies"])
        channels = {"review": guild.channel("reviews").id, "reply": guild.channel("replies").id}
        users = [await emu.create_user(f"member{i}", guild=guild) for i in range(MEMBERS)]
        await seed_database(database_url, [(guild.id, kind, channel_id) for kind, channel_id in channels.items()])
        bot = BotProcess(emu, tmp_path, database_url, extra_config="[posts]\nfirst_post_delay_seconds = 1\n")
        await bot.start()
        await emu.wait_for_commands("task", timeout=60)
        posts = [await emu.wait_for_message(guild.channel(name), lambda m: bool(m.embeds), timeout=60)
                 for name in ("reviews", "replies")]

        figures = Figures()
        rng = random.Random(14)
        members = [Member(emu, user, figures, random.Random(rng.random()), posts, guild.id) for user in users]
        loop = asyncio.get_running_loop()
        until = loop.time() + STORM_SECONDS
        storm = asyncio.gather(*(member.run(until, 0.3) for member in members))

        await asyncio.sleep(4)
        recorded_before_kill = len(figures.prompts) + len(figures.reviews)
        await bot.kill9()
        # Reactions nobody will replay through the gateway: only the restart's reconciliation can see them.
        quiet = [await emu.create_user(f"quiet{i}", guild=guild) for i in range(4)]
        for i, user in enumerate(quiet):
            await user.react(posts[i % 2], "👍" if i < 3 else "🚩")
        await users[0].react(posts[0], "👎")
        await asyncio.sleep(4)
        await bot.start()
        await storm
        assert recorded_before_kill > 0, "the storm recorded nothing before the kill: nothing was tested"

        expected = shown_reactions(posts, emu.bot_user.id, VOTES)
        for _ in range(600):  # the restarted bot works through what is in flight and what it missed
            held = await held_reactions(database_url)
            if set(held) == expected:
                break
            await asyncio.sleep(0.1)
        assert set(held) == expected, (f"missing {sorted(expected - set(held))[:5]}, "
                                       f"extra {sorted(set(held) - expected)[:5]}")
        assert max(held.values()) == 1
        assert await vote_mismatches(database_url) == []

        # (The seeded campaign has its trees: the engine mostly offers reviews, prompts when a tree closes.)
        acknowledged = len(figures.prompts) + len(figures.reviews)
        engine = db.create_engine(database_url)
        try:
            lost = await lost_submissions(engine, figures)
            async with engine.connect() as conn:
                # A member reviews a text once: one task's labels per (text, member).
                doubled = (await conn.execute(text(
                    "SELECT message_id, user_id FROM labels GROUP BY message_id, user_id "
                    "HAVING count(DISTINCT task_id) > 1"))).all()
        finally:
            await engine.dispose()
        assert figures.reviews and lost == 0
        assert await duplicated_texts(database_url, figures.prompts) == []
        assert doubled == []
        print(f"\nkill -9 on {make_url(database_url).get_backend_name()}: submissions acknowledged {acknowledged} "
              f"(prompts {len(figures.prompts)}, reviews {len(figures.reviews)}), found {acknowledged - lost}, "
              f"duplicated 0; "
              f"reactions sent {figures.reactions + 5}, held {len(held)} = shown {len(expected)}, doubled 0")
        await bot.stop()
        assert "Traceback" not in bot.logs(), bot.logs()[-3000:]
    finally:
        if bot is not None and bot.process is not None and bot.process.returncode is None:
            await bot.kill9()
        await emu.stop()
