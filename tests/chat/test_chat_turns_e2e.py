"""Chat turns end to end, the hard cases: clean stops and restarts, replayed gateway events, the
3-second deadline, stale buttons, overlong messages, command errors."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from cogs.streaming import CURSOR
from storage.models import ChatMessage, User

LONG_STORY = "Write a long story about a lighthouse keeper and her cat. Use many details."


async def finished_reply(emu, user, after):
    return await emu.wait_for_message(
        user, lambda m: bool(m.components) or "*Sorry," in m.content, after=after, timeout=90
    )


def reply_id_of(message) -> int:
    return int(next(cid for cid in message.custom_ids if cid.startswith("chat:up:")).split(":")[-1])


def button_style(message, custom_id: str) -> int | None:
    for row in message.components:
        for component in row.get("components", []):
            if component.get("custom_id") == custom_id:
                return component.get("style")
    return None


def no_cursor_anywhere(emu) -> bool:
    return not any(m.content.endswith(CURSOR) for m in emu.messages.values() if not m.deleted)


async def test_a_clean_stop_mid_reply_is_finished_in_the_same_message_after_the_restart(
    emulator, start_bot, make_settings
):
    emu = emulator
    ivy = await emu.create_user("ivy")
    settings = make_settings(max_reply_tokens=200, preset="k50", shutdown_grace_seconds=0,
                             edit_interval_seconds=0.5)
    async with start_bot(settings) as bot:
        asked = await ivy.dm(LONG_STORY)
        streaming = await emu.wait_for_message(ivy, lambda m: m.content.endswith(CURSOR), after=asked, timeout=60)
        await bot.close()  # what SIGTERM does (bot.app.serve)
        # Not a failure: the reply is put aside with a note, and no message keeps the cursor.
        assert streaming.content.endswith("*I'm restarting; I'll finish this reply right here as soon as I'm back.*")
        assert no_cursor_anywhere(emu)
        async with bot.services.sessions() as session:
            reply = await session.scalar(select(ChatMessage).where(ChatMessage.role == "assistant"))
            assert reply.state == "generating" and reply.discord_page_ids == [streaming.id]

    async with start_bot(settings) as bot:
        await emu.wait_for(lambda: bool(streaming.components), timeout=90)
        assert streaming.content.startswith("*I was restarted while answering you; here is my reply.*")
        assert "restarting" not in streaming.content
        # Finished where it started: no other message answers the question.
        assert [m.id for m in emu.bot_messages(ivy) if m.id > asked.id] == [streaming.id]
        assert no_cursor_anywhere(emu)
        async with bot.services.sessions() as session:
            reply = await session.scalar(select(ChatMessage).where(ChatMessage.role == "assistant"))
            assert reply.state == "complete" and reply.discord_message_id == streaming.id


async def test_a_clean_stop_lets_a_running_reply_finish_and_stores_what_arrives_meanwhile(
    emulator, start_bot, make_settings
):
    emu = emulator
    jay, kay = await emu.create_user("jay"), await emu.create_user("kay")
    settings = make_settings(max_reply_tokens=100, preset="k50", shutdown_grace_seconds=120)
    async with start_bot(settings) as bot:
        asked = await jay.dm(LONG_STORY)
        await emu.wait_for_message(jay, lambda m: m.content.endswith(CURSOR), after=asked, timeout=60)
        stopping = asyncio.ensure_future(bot.close())
        late = await kay.dm("What is the capital of France?")
        note = await emu.wait_for_message(kay, after=late, timeout=60)
        assert "restarting" in note.content
        await stopping
        answer = await finished_reply(emu, jay, asked)
        assert answer.components and "restarting" not in answer.content

    async with start_bot(settings):
        answer = await finished_reply(emu, kay, note)
        assert answer.content.startswith("*I was restarted") and "paris" in answer.content.lower()


async def test_a_replayed_message_create_is_answered_once(emulator, start_bot, make_settings):
    emu = emulator
    lou = await emu.create_user("lou")
    async with start_bot(make_settings()) as bot:
        emu.gateway.duplicate_next("MESSAGE_CREATE")
        asked = await lou.dm("What is the capital of France?")
        await finished_reply(emu, lou, asked)
        follow = await lou.dm("Thanks!")
        await finished_reply(emu, lou, follow)
        assert len([m for m in emu.bot_messages(lou) if asked.id < m.id < follow.id]) == 1
        async with bot.services.sessions() as session:
            users = await session.scalar(select(func.count()).select_from(ChatMessage).where(ChatMessage.role == "user"))
            assert users == 2


async def test_buttons_answer_in_time_and_stale_ones_change_nothing(emulator, start_bot, make_settings):
    emu = emulator
    max_ = await emu.create_user("max")
    async with start_bot(make_settings(max_reply_tokens=120, preset="k50")) as bot:
        asked = await max_.dm("Tell me about the sea.")
        first = await finished_reply(emu, max_, asked)
        rid = reply_id_of(first)
        # A double click on Regenerate: both answer at once; the second is refused.
        clicks = await asyncio.gather(max_.click(first, f"chat:regen:{rid}"), max_.click(first, f"chat:regen:{rid}"))
        for click in clicks:
            assert (await click.wait_response()).kind == "deferred_update"
        refusal = await clicks[1].wait_followup()
        assert refusal.ephemeral and "still being written" in refusal.content
        second = await finished_reply(emu, max_, first)
        await emu.wait_for(lambda: f"chat:keep:{rid}" in first.custom_ids)

        # Keep the first, then change one's mind: the other answer's Keep button follows.
        keep = await max_.click(first, f"chat:keep:{rid}")
        await keep.wait_response()
        await emu.wait_for(lambda: button_style(first, f"chat:keep:{rid}") == 3)  # green: chosen
        keep_second = await max_.click(second, f"chat:keep:{reply_id_of(second)}")
        await keep_second.wait_response()
        await emu.wait_for(lambda: button_style(first, f"chat:keep:{rid}") == 1)  # no longer chosen

        # A newer turn: the old answers keep only 👍 / 👎.
        newer = await max_.dm("And the mountains?")
        latest = await finished_reply(emu, max_, newer)
        for old in (first, second):
            await emu.wait_for(lambda old=old: f"chat:keep:{reply_id_of(old)}" not in old.custom_ids)
            assert old.custom_ids == [f"chat:up:{reply_id_of(old)}", f"chat:down:{reply_id_of(old)}"]
        # After /chat reset the latest answer's Regenerate is stale: a click is refused and changes nothing.
        await (await max_.slash("chat reset")).wait_response()
        async with bot.services.sessions() as session:
            before = (await session.execute(select(ChatMessage.id, ChatMessage.kept, ChatMessage.state))).all()
        stale = await max_.click(latest, f"chat:regen:{reply_id_of(latest)}")
        assert "latest reply of your current conversation" in (await stale.wait_followup()).content
        async with bot.services.sessions() as session:
            assert (await session.execute(select(ChatMessage.id, ChatMessage.kept, ChatMessage.state))).all() == before
        assert all(not it.errors for it in emu.interactions.values())  # every deadline met


async def test_a_message_longer_than_the_context_gets_a_clear_answer(emulator, start_bot, make_settings):
    emu = emulator
    ned = await emu.create_user("ned")
    async with start_bot(make_settings(context_size=256, max_reply_tokens=48)) as bot:
        asked = await ned.dm("Please read this. " * 100)
        answer = await emu.wait_for_message(ned, after=asked)
        assert "too long for me to read at once" in answer.content
        assert "characters" in answer.content and "yours has 1799" in answer.content
        async with bot.services.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(ChatMessage)) == 0


async def test_commands_answer_politely_even_when_they_fail(emulator, start_bot, make_settings):
    emu = emulator
    oda = await emu.create_user("oda")
    async with start_bot(make_settings()) as bot:
        # Discord still offers a preset this version of the bot no longer has (an outdated command list).
        chat = next(c for c in emu.commands.values() if c.name == "chat")
        preset = next(o for o in chat.options if o["name"] == "preset")
        preset["options"][0]["choices"].append({"name": "legacy", "value": "legacy"})
        stale = await oda.slash("chat preset", {"name": "legacy"})
        answer = await stale.wait_response()
        assert answer.ephemeral and "could not use the value" in answer.message.content
        assert not stale.errors

        # First seen through a slash command: stored with the name Discord shows.
        done = await oda.slash("chat system", {"prompt": "Be kind."})
        await done.wait_response()
        async with bot.services.sessions() as session:
            assert await session.scalar(select(User.display_name).where(User.discord_id == oda.id)) == "oda"
