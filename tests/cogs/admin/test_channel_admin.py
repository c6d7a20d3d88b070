"""/admin channel set|off|show: moderators only, bad input changes nothing, schedules survive a restart,
and the scheduler posts by itself."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from emulator import permissions as P
from storage.models import AuditLog, BotPost, TaskChannel
from tests.cogs.conftest import database_dump
from tests.cogs.labelling.posts.conftest import eventually, posts_settings


@pytest.fixture
def make_settings(tmp_path):
    return lambda **kwargs: posts_settings(tmp_path, **kwargs)


async def test_non_moderators_are_refused_and_nothing_changes(emulator, start_bot, make_settings):
    emu = emulator
    guild = await emu.create_guild("Campaign", channels=["general", "tasks"])
    general, tasks = guild.channel("general"), guild.channel("tasks")
    member = await emu.create_user("member", guild=guild)
    async with start_bot(make_settings()) as bot:
        sessions = bot.services.sessions
        # A careless server admin shows /admin to everyone: the check on every call still refuses.
        await emu.set_command_permissions(guild, "admin", roles=[guild.everyone])
        before = await database_dump(sessions)
        attempts = [("admin channel set", {"channel": tasks, "interval": 5, "kinds": "review"}),
                    ("admin channel set", {"channel": tasks}),
                    ("admin channel off", {"channel": tasks}),
                    ("admin channel show", {})]
        for name, options in attempts:
            answer = await (await member.slash(name, options, channel=general)).wait_message()
            assert answer.ephemeral and "for the server's moderators" in answer.content
        assert await database_dump(sessions) == before
        assert bot.jobs.scheduler.get_job(f"posts:{tasks.id}") is None
        async with sessions() as session:
            refused = (await session.scalars(select(AuditLog).where(AuditLog.action == "refused_not_moderator"))).all()
        assert [r.details["command"] for r in refused] == [name for name, _ in attempts]
        assert refused[0].details["options"] == {"channel": str(tasks.id), "interval": "5", "kinds": "review"}


async def test_bad_input_and_missing_permissions_change_nothing(emulator, start_bot, make_settings):
    emu = emulator
    guild = await emu.create_guild("Campaign", channels=["general", "tasks"])
    general, tasks = guild.channel("general"), guild.channel("tasks")
    mod = await emu.create_user("mod", guild=guild, moderator=True)
    async with start_bot(make_settings()) as bot:
        sessions = bot.services.sessions
        before = await database_dump(sessions)
        for options, words in (({"kinds": "memes"}, "Kinds must be one or more of"),
                               ({"language": "not a tag"}, "not a language tag")):
            answer = await (await mod.slash("admin channel set", {"channel": tasks, **options},
                                            channel=general)).wait_message()
            assert words in answer.content and "Nothing was changed" in answer.content
        answer = await (await mod.slash("admin channel off", {}, channel=general)).wait_message()
        assert "not a task channel" in answer.content
        # Without Manage Messages the bot could not take reactions off a member's own text.
        await emu.set_bot_permissions(guild, P.DEFAULT_BOT & ~P.MANAGE_MESSAGES)
        answer = await (await mod.slash("admin channel set", {"channel": tasks}, channel=general)).wait_message()
        assert "I need these permissions" in answer.content and "Manage Messages" in answer.content
        assert await database_dump(sessions) == before


async def test_schedules_survive_a_restart_and_the_scheduler_posts(emulator, start_bot, make_settings):
    emu = emulator
    guild = await emu.create_guild("Campaign", channels=["general", "tasks", "more"])
    general, tasks, more = guild.channel("general"), guild.channel("tasks"), guild.channel("more")
    mod = await emu.create_user("mod", guild=guild, moderator=True)
    settings = make_settings(posts={"first_post_delay_seconds": 0.2})
    async with start_bot(settings) as bot:
        answer = await (await mod.slash("admin channel set", {"channel": tasks, "interval": 45, "kinds": "prompt",
                                                              "language": "de"}, channel=general)).wait_message()
        assert "every **45 min**" in answer.content and "language **de**" in answer.content
        # The scheduler's first run posts a call for prompts, in German-language trees.
        call = await emu.wait_for_message(tasks, lambda m: bool(m.embeds), timeout=10)
        assert call.embeds[0]["title"] == "Write a prompt" and "Language: **de**" in call.embeds[0]["description"]
        await (await mod.slash("admin channel set", {"channel": more, "interval": 10}, channel=general)).wait_message()
        await eventually(lambda: _posts(bot.services.sessions, more.id))
        answer = await (await mod.slash("admin channel off", {}, channel=general)).wait_message()
        assert "several task channels" in answer.content
        await (await mod.slash("admin channel off", {"channel": more}, channel=general)).wait_message()
        assert bot.jobs.scheduler.get_job(f"posts:{more.id}") is None
    # After a restart the job is rebuilt from the database; its next post keeps the rhythm.
    async with start_bot(settings) as bot:
        job = bot.jobs.scheduler.get_job(f"posts:{tasks.id}")
        assert job is not None and job.trigger.interval.total_seconds() == 45 * 60
        async with bot.services.sessions() as session:
            row = await session.get(TaskChannel, tasks.id)
            assert row.kinds == ["prompt"] and row.language == "de"
        assert (job.next_run_time - row.last_posted_at).total_seconds() >= 45 * 60 - 1
        shown = await (await mod.slash("admin channel show", channel=general)).wait_message()
        assert shown.content.startswith(f"<#{tasks.id}>: every **45 min**, calls for prompts, language **de**")
        assert bot.jobs.scheduler.get_job(f"posts:{more.id}") is None


async def _posts(sessions, channel_id: int) -> int:
    async with sessions() as session:
        return len((await session.scalars(select(BotPost.id).where(BotPost.channel_id == channel_id))).all())
