"""The chat service with the tiny random model: storage, budgeting, generation rules, feedback,
preferences, limits, replays and restarts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from bot.chat.locks import KeyedLocks
from bot.chat.sampling import offset_seed, reply_params
from bot.chat.service import (
    ChatService,
    Duplicate,
    InvalidInput,
    MessageTooLong,
    NotCurrent,
    NotYours,
    RateLimited,
    budget_context,
)
from bot.chat.text import storable
from bot.config import ChatSettings
from model_runner import LlamaCppRunner
from storage.enums import ChatMessageState
from storage.models import ChatMessage, ChatPreference, User


def service(sessions, runner, **overrides) -> ChatService:
    overrides.setdefault("context_size", 1024)
    overrides.setdefault("max_reply_tokens", 64)
    return ChatService(sessions, ChatSettings(**overrides), runner)


async def turn(chat: ChatService, user: int, text: str, **kwargs):
    """Accept a message and read its context: the generation, not started."""
    accepted = await chat.accept_message(user, text, **kwargs)
    return await chat.start_generation(accepted.reply_id)


async def regenerate(chat: ChatService, user: int, reply_id: int):
    accepted = await chat.regenerate(user, reply_id)
    return await chat.start_generation(accepted.reply_id)


async def reply(chat: ChatService, generation, text: str) -> None:
    """Finish a reply with a chosen text (the storage rules, without sampling)."""
    await chat.finish_reply(generation.turn.reply_id, text, prompt_tokens=10, completion_tokens=len(text))


async def stored(sessions, reply_id: int) -> ChatMessage:
    async with sessions() as session:
        return await session.get(ChatMessage, reply_id)


def test_budget_keeps_newest_turns_and_system_prompt():
    history = [("user", "a " * 50, 50), ("assistant", "b " * 50, 50), ("user", "c " * 10, 10)]
    messages, dropped = budget_context("sys", history, max_prompt_tokens=80, system_tokens=1)
    assert messages[0] == {"role": "system", "content": "sys"}
    assert [m["role"] for m in messages[1:]] == ["user"]
    assert dropped == 2
    everything, none_dropped = budget_context(None, history, max_prompt_tokens=1000, system_tokens=0)
    assert len(everything) == 3 and none_dropped == 0


async def test_conversation_turns_and_reset(sessions, tiny_runner):
    chat = service(sessions, tiny_runner)
    first = await turn(chat, 1, "Hello there")
    assert first.turn.messages == [
        {"role": "system", "content": ChatSettings().system_prompt},
        {"role": "user", "content": "Hello there"},
    ]
    await reply(chat, first, "Hi! How can I help?")
    second = await turn(chat, 1, "Tell me a joke")
    assert [m["content"] for m in second.turn.messages[1:]] == ["Hello there", "Hi! How can I help?", "Tell me a joke"]
    assert second.turn.conversation_key == first.turn.conversation_key
    assert second.stale == []  # the first reply was never posted in Discord

    assert await chat.reset(1) is True
    third = await turn(chat, 1, "New topic")
    assert third.turn.conversation_id != first.turn.conversation_id
    assert [m["content"] for m in third.turn.messages[1:]] == ["New topic"]
    assert await chat.reset(2) is False


async def test_a_quick_second_message_sees_the_first_reply(sessions, tiny_runner):
    # Accepted while the first reply is still being written, its context is read when its turn comes.
    chat = service(sessions, tiny_runner)
    first = await chat.accept_message(1, "first")
    second = await chat.accept_message(1, "second")
    generation = await chat.start_generation(first.reply_id)
    await chat.finish_reply(first.reply_id, "answer one")
    later = await chat.start_generation(second.reply_id)
    assert [m["content"] for m in later.turn.messages[1:]] == ["first", "answer one", "second"]
    async with sessions() as session:
        question = await session.get(ChatMessage, later.turn.user_message_id)
        assert question.parent_id == generation.turn.reply_id  # the export's chain follows the answer


async def test_old_turns_dropped_to_fit_context(sessions, tiny_runner):
    chat = service(sessions, tiny_runner, context_size=400, max_reply_tokens=40)
    for i in range(6):
        generation = await turn(chat, 1, f"question {i} " + "word " * 10)
        await reply(chat, generation, "answer " * 10)
    last = await turn(chat, 1, "last question")
    assert last.turn.dropped_messages > 0
    assert last.turn.messages[1]["role"] == "user"
    assert last.turn.messages[-1]["content"] == "last question"


async def test_a_message_longer_than_the_context_is_refused_naming_the_limit(sessions, tiny_runner):
    chat = service(sessions, tiny_runner, context_size=300, max_reply_tokens=40, system_prompt="Be brief.")
    with pytest.raises(MessageTooLong) as refused:
        await chat.accept_message(1, "x" * 1000)
    # One token per byte: 300 - 40 - the template and system prompt leave about 220 characters.
    assert 200 <= refused.value.max_chars <= 240
    assert f"about {refused.value.max_chars} characters" in refused.value.message
    assert "yours has 1000" in refused.value.message
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(ChatMessage)) == 0
    fits = await turn(chat, 1, "x" * (refused.value.max_chars - 10))
    assert fits.turn.messages[-1]["content"].startswith("xxx")


async def test_empty_message_refused_and_nothing_stored(sessions, tiny_runner):
    chat = service(sessions, tiny_runner)
    with pytest.raises(InvalidInput):
        await chat.accept_message(1, "   ")
    async with sessions() as session:
        assert (await session.scalars(select(ChatMessage))).all() == []


async def test_control_characters_are_never_stored(sessions, tiny_runner):
    chat = service(sessions, tiny_runner)
    generation = await turn(chat, 1, "hi\x00 there\x07\ud800\n\tok")
    await reply(chat, generation, "an\x00swer\x1b")
    async with sessions() as session:
        texts = (await session.scalars(select(ChatMessage.text).order_by(ChatMessage.id))).all()
    assert texts == ["hi there\n\tok", "answer"]
    assert storable("a\r\nb\x7f") == "a\r\nb"


async def test_rate_limit_counts_model_calls_when_messages_arrive(sessions, tiny_runner):
    chat = service(sessions, tiny_runner, rate_limit_messages=3, rate_limit_window_minutes=10)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    # Not one reply is written yet: the limit still counts the accepted messages.
    for i in range(3):
        await chat.accept_message(1, f"m{i}", now=start + timedelta(minutes=i))
    with pytest.raises(RateLimited) as limited:
        await chat.accept_message(1, "too many", now=start + timedelta(minutes=5))
    assert limited.value.retry_at == start + timedelta(minutes=10)
    # Another user is not affected, and the window moves on.
    await chat.accept_message(2, "hi", now=start + timedelta(minutes=5))
    await chat.accept_message(1, "later", now=start + timedelta(minutes=10, seconds=1))


async def test_a_replayed_discord_message_is_stored_once(sessions, tiny_runner):
    chat = service(sessions, tiny_runner)
    await chat.accept_message(1, "hello", discord_message_id=555)
    with pytest.raises(Duplicate):
        await chat.accept_message(1, "hello", discord_message_id=555)
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(ChatMessage)) == 2  # message + reply


async def test_feedback_only_by_owner(sessions, tiny_runner):
    chat = service(sessions, tiny_runner)
    generation = await turn(chat, 1, "hi")
    await reply(chat, generation, "hello")
    reply_id = generation.turn.reply_id
    assert await chat.rate(1, reply_id, 1) == 1
    with pytest.raises(NotYours):
        await chat.rate(2, reply_id, -1)
    assert await chat.rate(1, reply_id, 1) == 0  # pressing 👍 again takes it back
    assert await chat.rate(1, reply_id, -1) == -1
    assert (await stored(sessions, reply_id)).feedback == -1


async def test_regenerate_and_keep_record_preference_pairs(sessions, tiny_runner):
    chat = service(sessions, tiny_runner)
    first = await turn(chat, 1, "Name a colour")
    await reply(chat, first, "Blue")
    second = await regenerate(chat, 1, first.turn.reply_id)
    assert second.turn.user_message_id == first.turn.user_message_id
    assert second.turn.messages == first.turn.messages
    assert second.turn.regeneration and not first.turn.regeneration
    await reply(chat, second, "Red")
    third = await regenerate(chat, 1, second.turn.reply_id)
    await reply(chat, third, "Green")

    with pytest.raises(NotYours):
        await chat.keep(2, first.turn.reply_id)
    result = await chat.keep(1, first.turn.reply_id)
    assert result.pairs_recorded == 2
    # Changing one's mind replaces the pairs rather than contradicting them.
    assert (await chat.keep(1, second.turn.reply_id)).pairs_recorded == 2
    async with sessions() as session:
        pairs = {(p.chosen_id, p.rejected_id) for p in (await session.scalars(select(ChatPreference))).all()}
    assert pairs == {(second.turn.reply_id, first.turn.reply_id), (second.turn.reply_id, third.turn.reply_id)}

    follow = await turn(chat, 1, "Why?")
    assert [m["content"] for m in follow.turn.messages[1:]] == ["Name a colour", "Red", "Why?"]
    # The older answers' buttons are stale now; clicking them changes nothing.
    with pytest.raises(NotCurrent):
        await chat.regenerate(1, second.turn.reply_id)
    with pytest.raises(NotCurrent):
        await chat.keep(1, first.turn.reply_id)
    async with sessions() as session:
        kept = (await session.scalars(select(ChatMessage.id).where(ChatMessage.kept.is_(True),
                                                                  ChatMessage.role == "assistant"))).all()
    assert second.turn.reply_id in kept and first.turn.reply_id not in kept


async def test_identical_alternatives_never_become_a_pair(sessions, tiny_runner):
    chat = service(sessions, tiny_runner)
    first = await turn(chat, 1, "Say hi")
    await reply(chat, first, "Hi!")
    again = await regenerate(chat, 1, first.turn.reply_id)
    await reply(chat, again, " Hi! ")
    assert (await chat.keep(1, first.turn.reply_id)).pairs_recorded == 0
    await turn(chat, 1, "next")  # continuing would record the shown choice: still nothing
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(ChatPreference)) == 0


async def test_stale_buttons_of_the_previous_turn_are_reported(sessions, tiny_runner):
    chat = service(sessions, tiny_runner)
    first = await turn(chat, 1, "one")
    await reply(chat, first, "answer")
    await chat.record_pages(first.turn.reply_id, [9001, 9002])
    await chat.rate(1, first.turn.reply_id, 1)
    second = await turn(chat, 1, "two")
    assert [(s.reply_id, s.discord_message_id, s.feedback) for s in second.stale] == [
        (first.turn.reply_id, 9002, 1)]


async def test_continuing_after_regenerate_keeps_the_shown_alternative(sessions, tiny_runner):
    chat = service(sessions, tiny_runner)
    first = await turn(chat, 1, "Pick a number")
    await reply(chat, first, "4")
    again = await regenerate(chat, 1, first.turn.reply_id)
    await reply(chat, again, "7")
    await turn(chat, 1, "Thanks")
    async with sessions() as session:
        pairs = [(p.chosen_id, p.rejected_id) for p in (await session.scalars(select(ChatPreference))).all()]
    assert pairs == [(again.turn.reply_id, first.turn.reply_id)]


async def test_failed_regeneration_restores_previous_answer(sessions, tiny_runner):
    chat = service(sessions, tiny_runner)
    first = await turn(chat, 1, "hi")
    await reply(chat, first, "hello")
    again = await regenerate(chat, 1, first.turn.reply_id)
    await chat.finish_reply(again.turn.reply_id, "", state=ChatMessageState.FAILED)
    follow = await turn(chat, 1, "and?")
    assert [m["content"] for m in follow.turn.messages[1:]] == ["hi", "hello", "and?"]


async def test_interrupted_replies_after_restart(sessions, tiny_runner):
    chat = service(sessions, tiny_runner)
    start = datetime.now(UTC)
    old = await chat.accept_message(1, "asked long ago", channel_id=5, now=start - timedelta(hours=3))
    recent = await chat.accept_message(2, "a question before the crash", channel_id=6)
    await chat.record_pages(recent.reply_id, [71, 72])
    resumed = await chat.interrupted_replies()
    assert [(r.channel_id, r.reply_id, r.user_discord_id, r.page_ids) for r in resumed] == [
        (6, recent.reply_id, 2, (71, 72))]
    generation = await chat.start_generation(recent.reply_id)
    assert generation.turn.messages[-1] == {"role": "user", "content": "a question before the crash"}
    assert (await stored(sessions, old.reply_id)).state == ChatMessageState.FAILED


async def test_settings_system_prompt_preset_optout_and_export(sessions, tiny_runner):
    chat = service(sessions, tiny_runner, max_system_prompt_chars=20)
    with pytest.raises(InvalidInput):
        await chat.set_system_prompt(1, "x" * 21)
    with pytest.raises(InvalidInput):
        await chat.set_preset(1, "wild")
    await chat.set_system_prompt(1, "Talk like a pirate", display_name="Pat")
    await chat.set_preset(1, "nucleus9")
    generation = await turn(chat, 1, "hi")
    assert generation.turn.messages[0]["content"] == "Talk like a pirate"
    assert generation.turn.preset == "nucleus9"
    assert (await chat.set_system_prompt(1, "")).custom_system_prompt is False
    assert (await chat.set_opt_out(1, True)).opted_out is True
    async with sessions() as session:
        # First seen through a slash command: the name is known from the start.
        assert await session.scalar(select(User.display_name).where(User.discord_id == 1)) == "Pat"

    await reply(chat, generation, "Arr")
    exported = (await chat.export_user(1)).decode().strip().splitlines()
    assert len(exported) == 1 and '"Arr"' in exported[0]
    assert await chat.export_user(99) == b""


# ----- generation rules, with the tiny model ---------------------------------------------------


async def test_generation_streams_and_stores_the_outcome(sessions, tiny_runner):
    chat = service(sessions, tiny_runner, max_reply_tokens=20, preset="k50-precise", seed=3)
    generation = await turn(chat, 1, "hello")
    shown = [text async for text in generation]
    outcome = generation.outcome
    assert shown and all(b.startswith(a) for a, b in zip(shown, shown[1:], strict=False))
    row = await stored(sessions, generation.turn.reply_id)
    if outcome.complete:
        assert row.state == "complete" and row.text == storable(shown[-1])
        assert row.completion_tokens and row.prompt_tokens == await tiny_runner.count_tokens(generation.turn.messages)
    else:  # the random model may end its turn at once: an empty reply is a failure, not a blank message
        assert outcome.problem == "empty" and row.state == "failed"


async def test_an_empty_reply_is_a_failure(sessions, tiny_runner):
    chat = service(sessions, tiny_runner)
    generation = await turn(chat, 1, "hello")
    # One byte token at most: an ASCII byte is a stop string, any other byte is an incomplete character
    # (several bytes together could make a character beyond these stop strings).
    generation.params = generation.params.with_(stop=tuple(chr(b) for b in range(256)) + ("\ufffd",), max_tokens=1)
    async for _ in generation:
        pass
    assert generation.outcome.problem == "empty"
    assert (await stored(sessions, generation.turn.reply_id)).state == "failed"


async def test_a_reply_that_takes_too_long_is_cancelled(sessions, smollm2):
    # SmolLM2 writes 1,500 tokens in several seconds on any CPU: well past a 1-second limit.
    async with LlamaCppRunner(smollm2, n_ctx=2048, n_threads=1, n_parallel=1) as runner:
        chat = service(sessions, runner, context_size=2048, reply_timeout_seconds=1, max_reply_tokens=1500)
        generation = await turn(chat, 1, "Tell me a very long story.")
        generation.params = generation.params.with_(ignore_eos=True)
        async for _ in generation:
            pass
    assert generation.outcome.problem == "timeout"
    assert (await stored(sessions, generation.turn.reply_id)).state == "cancelled"


async def test_a_suspended_reply_stays_to_be_finished_after_the_restart(sessions, tiny_runner):
    chat = service(sessions, tiny_runner, max_reply_tokens=900)
    generation = await turn(chat, 1, "long story", channel_id=4)
    generation.params = generation.params.with_(ignore_eos=True)
    async for _ in generation:
        generation.suspend()
    assert generation.outcome.suspended
    assert (await stored(sessions, generation.turn.reply_id)).state == "generating"
    assert [r.reply_id for r in await chat.interrupted_replies()] == [generation.turn.reply_id]


async def test_leaving_the_stream_early_fails_the_reply(sessions, tiny_runner):
    chat = service(sessions, tiny_runner, max_reply_tokens=900)
    generation = await turn(chat, 1, "long story")
    generation.params = generation.params.with_(ignore_eos=True)
    async for _ in generation:
        break  # e.g. Discord refused an edit
    await generation.close()
    assert generation.outcome.problem == "failed"
    assert (await stored(sessions, generation.turn.reply_id)).state == "failed"


def test_seeds_and_the_regeneration_temperature_floor():
    assert offset_seed(None, 5) is None
    assert offset_seed(10, 5) == 15 and offset_seed(2**32 - 2, 2) == 1
    first = reply_params("k50-precise", max_tokens=10, seed=1, reply_id=7, regeneration=False,
                         regeneration_min_temperature=0.7)
    again = reply_params("k50-precise", max_tokens=10, seed=1, reply_id=8, regeneration=True,
                         regeneration_min_temperature=0.7)
    assert first.temperature == 0.1 and again.temperature == 0.7
    assert first.seed != again.seed
    hot = reply_params("k50-creative", max_tokens=10, seed=None, reply_id=8, regeneration=True,
                       regeneration_min_temperature=0.7)
    assert hot.temperature == 0.85 and hot.seed is None


async def test_a_regeneration_samples_a_different_answer(sessions, tiny_runner):
    chat = service(sessions, tiny_runner, preset="k50-precise", seed=1, max_reply_tokens=24)
    first = await turn(chat, 1, "hello")
    first.params = first.params.with_(ignore_eos=True)
    [_ async for _ in first]
    again = await regenerate(chat, 1, first.turn.reply_id)
    again.params = again.params.with_(ignore_eos=True)
    [_ async for _ in again]
    assert first.outcome.complete and again.outcome.complete
    assert first.outcome.text != again.outcome.text


async def test_per_user_locks_are_forgotten_when_idle():
    locks = KeyedLocks()
    order: list[str] = []

    async def work(name: str) -> None:
        async with locks(1):
            order.append(f"{name} in")
            await asyncio.sleep(0)
            order.append(f"{name} out")

    await asyncio.gather(work("a"), work("b"))
    assert order == ["a in", "a out", "b in", "b out"]
    assert len(locks) == 0
    for user in range(100):
        async with locks(user):
            pass
    assert len(locks) == 0
