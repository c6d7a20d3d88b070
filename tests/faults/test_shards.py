"""Shards over processes: two `oabot run` processes, each with one shard of two, on one PostgreSQL
database and one emulator. Each gets only its own guilds' events, posts only in its own guilds' task
channels, and members are answered by whichever process holds their guild (DMs: shard 0)."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from sqlalchemy import insert, select

from bot.config import LabellingSettings
from bot.labelling.service import LabellingService
from emulator import Emulator
from storage import db
from storage.enums import TaskKind
from storage.models import BotPost, JobLease, PostReaction, TaskChannel, User
from tests.faults.shard_cluster import (
    BotProcess,
    config_text,
    fresh_database,
    holder_pid,
    needs_postgres,
    ready_shards,
    start_bot_process,
)


def guild_of_event(event) -> int | None:
    data = event.data
    if event.event == "GUILD_CREATE":
        return int(data["id"])
    return int(data["guild_id"]) if isinstance(data, dict) and data.get("guild_id") else None


@needs_postgres
async def test_each_process_serves_only_the_guilds_of_its_shards():
    emu = Emulator(shards=2)
    await emu.start()
    workdir = Path(tempfile.mkdtemp(prefix="oabot-shards-"))
    processes: list[BotProcess] = []
    try:
        guilds = [await emu.create_guild(f"Shard {shard}", channels=["general", "tasks"], shard=shard)
                  for shard in range(2)]
        member = await emu.create_user("member", guild=guilds[0])
        await emu.add_member(guilds[1], member)
        channels = [guild.channel("tasks") for guild in guilds]
        async with fresh_database() as url:
            engine = db.create_engine(url)
            await db.upgrade(engine)
            sessions = db.session_factory(engine)
            # Prompts waiting for review, for the channels' review posts to show.
            labelling = LabellingService(sessions, LabellingSettings())
            for number in range(2):
                author = await labelling.get_or_create_user(10_000 + number)
                offer = await labelling.request_task(author.id, kinds=TaskKind.INITIAL_PROMPT)
                await labelling.submit_initial_prompt(offer.task_id, author.id, f"Why is the sea salty? ({number})")
            async with sessions.begin() as session:
                for guild, channel in zip(guilds, channels, strict=True):
                    await session.execute(insert(TaskChannel).values(
                        channel_id=channel.id, guild_id=guild.id, interval_minutes=60, kinds=["review"],
                        language="en"))
            for shard in range(2):
                config = config_text(emu, url, shard_ids=[shard], shard_count=2,
                                     extra="[posts]\nfirst_post_delay_seconds = 1\n")
                processes.append(await start_bot_process(f"shard{shard}", workdir, config, emu.token))
            await emu.wait_for(lambda: ready_shards(emu) == {(0, 2), (1, 2)}, timeout=120, what="both shards")
            await emu.wait_for_commands("help", timeout=60)

            # The gateway hands each session its own guild only, and each bot sees just that guild.
            for session in emu.gateway.sessions.values():
                seen = {guild_of_event(e) for e in emu.gateway.events() if e.session_id == session.id} - {None}
                assert seen == {guilds[session.shard[0]].id}
            for shard, process in enumerate(processes):
                await emu.wait_for(lambda p=process: p.messages("connected as"), timeout=30, what="on_ready")
                [(_, ready)] = process.messages("connected as")
                assert ready.endswith(f"in 1 guilds, shards [{shard}] of 2"), ready

            # Each task channel gets its review post once, from the process holding its guild.
            posts = [await emu.wait_for_message(channel, lambda m: bool(m.embeds), timeout=60) for channel in channels]
            async with sessions() as session:
                leases = {row.name: row.holder for row in await session.scalars(select(JobLease))}
            for channel, process in zip(channels, processes, strict=True):
                assert holder_pid(leases[f"posts:{channel.id}"]) == process.pid
                assert len(emu.calls_to("POST /channels/{channel_id}/messages")) == 2
                assert len([m for m in channel.visible_messages() if m.author.id == emu.bot_user.id]) == 1

            # A vote in each guild is counted once, by the process that got it.
            for post in posts:
                await member.react(post, "👍")

            async def votes() -> list[tuple[int, str]]:
                async with sessions() as session:
                    rows = await session.execute(
                        select(BotPost.discord_message_id, PostReaction.emoji).join(PostReaction, PostReaction.post_id == BotPost.id)
                        .join(User, User.id == PostReaction.user_id).where(User.discord_id == member.id))
                    return sorted(tuple(row) for row in rows)

            expected = sorted((post.id, "👍") for post in posts)
            async with asyncio.timeout(30):
                while await votes() != expected:  # noqa: ASYNC110  (the database has no change event)
                    await asyncio.sleep(0.1)

            # Slash commands in a guild reach its shard's process; DMs reach shard 0's.
            for channel in (channels[1], None):
                interaction = await member.slash("help", channel=channel)
                answer = await interaction.wait_message(timeout=15)
                assert answer.embeds or answer.content

            for process in processes:
                assert await process.stop() == 0
                assert process.problems() == []
            await engine.dispose()
    finally:
        for process in processes:
            if process.process.returncode is None:
                process.kill()
                await process.process.wait()
        await emu.stop()
