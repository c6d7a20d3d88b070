"""The chat service without Discord or a model: storage, budgeting, feedback, preferences, limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.chat.service import (
    ChatService,
    InvalidInput,
    NotCurrent,
    NotYours,
    RateLimited,
    budget_context,
)
from bot.config import ChatSettings
from storage.enums import ChatMessageState
from storage.models import ChatMessage, ChatPreference


async def words(text: str) -> int:
    return len(text.split())


def service(sessions, **overrides) -> ChatService:
    return ChatService(sessions, ChatSettings(**overrides), words, "tiny-model")


async def reply(chat: ChatService, turn, text: str) -> None:
    await chat.finish_reply(turn.reply_id, text, prompt_tokens=10, completion_tokens=len(text.split()))


def test_budget_keeps_newest_turns_and_system_prompt():
    history = [("user", "a " * 50, 50), ("assistant", "b " * 50, 50), ("user", "c " * 10, 10)]
    messages, dropped = budget_context("sys", history, max_prompt_tokens=80, system_tokens=1)
    assert messages[0] == {"role": "system", "content": "sys"}
    assert [m["role"] for m in messages[1:]] == ["user"]
    assert dropped == 2
    everything, none_dropped = budget_context(None, history, max_prompt_tokens=1000, system_tokens=0)
    assert len(everything) == 3 and none_dropped == 0
    # The newest message survives even when it alone is over budget.
    alone, _ = budget_context(None, [("user", "x", 500)], max_prompt_tokens=10, system_tokens=0)
    assert alone == [{"role": "user", "content": "x"}]


async def test_conversation_turns_and_reset(sessions):
    chat = service(sessions)
    first = await chat.begin_turn(1, "Hello there")
    assert first.messages == [
        {"role": "system", "content": ChatSettings().system_prompt},
        {"role": "user", "content": "Hello there"},
    ]
    await reply(chat, first, "Hi! How can I help?")
    second = await chat.begin_turn(1, "Tell me a joke")
    assert [m["content"] for m in second.messages[1:]] == ["Hello there", "Hi! How can I help?", "Tell me a joke"]
    assert second.conversation_id == first.conversation_id
    assert second.conversation_key == first.conversation_key

    assert await chat.reset(1) is True
    third = await chat.begin_turn(1, "New topic")
    assert third.conversation_id != first.conversation_id
    assert [m["content"] for m in third.messages[1:]] == ["New topic"]
    assert await chat.reset(2) is False


async def test_old_turns_dropped_to_fit_context(sessions):
    chat = service(sessions, context_size=120, max_reply_tokens=40)
    for i in range(6):
        turn = await chat.begin_turn(1, f"question {i} " + "word " * 10)
        await reply(chat, turn, "answer " * 10)
    turn = await chat.begin_turn(1, "last question")
    assert turn.dropped_messages > 0
    assert turn.messages[1]["role"] == "user"
    assert turn.messages[-1]["content"] == "last question"


async def test_empty_message_refused_and_nothing_stored(sessions):
    chat = service(sessions)
    with pytest.raises(InvalidInput):
        await chat.begin_turn(1, "   ")
    async with sessions() as session:
        assert (await session.scalars(select(ChatMessage))).all() == []


async def test_rate_limit_counts_model_calls(sessions):
    chat = service(sessions, rate_limit_messages=3, rate_limit_window_minutes=10)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(3):
        turn = await chat.begin_turn(1, f"m{i}", now=start + timedelta(minutes=i))
        await reply(chat, turn, "ok")
    with pytest.raises(RateLimited) as limited:
        await chat.begin_turn(1, "too many", now=start + timedelta(minutes=5))
    assert limited.value.retry_at == start + timedelta(minutes=10)
    # Another user is not affected, and the window moves on.
    await chat.begin_turn(2, "hi", now=start + timedelta(minutes=5))
    await chat.begin_turn(1, "later", now=start + timedelta(minutes=10, seconds=1))


async def test_feedback_only_by_owner(sessions):
    chat = service(sessions)
    turn = await chat.begin_turn(1, "hi")
    await reply(chat, turn, "hello")
    assert await chat.rate(1, turn.reply_id, 1) == 1
    with pytest.raises(NotYours):
        await chat.rate(2, turn.reply_id, -1)
    assert await chat.rate(1, turn.reply_id, 1) == 0  # pressing 👍 again takes it back
    assert await chat.rate(1, turn.reply_id, -1) == -1
    async with sessions() as session:
        assert (await session.get(ChatMessage, turn.reply_id)).feedback == -1


async def test_regenerate_and_keep_record_preference_pairs(sessions):
    chat = service(sessions)
    turn = await chat.begin_turn(1, "Name a colour")
    await reply(chat, turn, "Blue")
    second = await chat.regenerate(1, turn.reply_id)
    assert second.user_message_id == turn.user_message_id
    assert second.messages == turn.messages
    await reply(chat, second, "Red")
    third = await chat.regenerate(1, second.reply_id)
    await reply(chat, third, "Green")

    with pytest.raises(NotYours):
        await chat.keep(2, turn.reply_id)
    result = await chat.keep(1, turn.reply_id)
    assert result.pairs_recorded == 2
    # Changing one's mind replaces the pairs rather than contradicting them.
    assert (await chat.keep(1, second.reply_id)).pairs_recorded == 2
    async with sessions() as session:
        pairs = {(p.chosen_id, p.rejected_id) for p in (await session.scalars(select(ChatPreference))).all()}
    assert pairs == {(second.reply_id, turn.reply_id), (second.reply_id, third.reply_id)}

    follow = await chat.begin_turn(1, "Why?")
    assert [m["content"] for m in follow.messages[1:]] == ["Name a colour", "Red", "Why?"]
    with pytest.raises(NotCurrent):
        await chat.regenerate(1, second.reply_id)


async def test_continuing_after_regenerate_keeps_the_shown_alternative(sessions):
    chat = service(sessions)
    turn = await chat.begin_turn(1, "Pick a number")
    await reply(chat, turn, "4")
    again = await chat.regenerate(1, turn.reply_id)
    await reply(chat, again, "7")
    await chat.begin_turn(1, "Thanks")
    async with sessions() as session:
        pairs = [(p.chosen_id, p.rejected_id) for p in (await session.scalars(select(ChatPreference))).all()]
    assert pairs == [(again.reply_id, turn.reply_id)]


async def test_failed_regeneration_restores_previous_answer(sessions):
    chat = service(sessions)
    turn = await chat.begin_turn(1, "hi")
    await reply(chat, turn, "hello")
    again = await chat.regenerate(1, turn.reply_id)
    await chat.finish_reply(again.reply_id, "", state=ChatMessageState.FAILED)
    follow = await chat.begin_turn(1, "and?")
    assert [m["content"] for m in follow.messages[1:]] == ["hi", "hello", "and?"]


async def test_interrupted_replies_after_restart(sessions):
    chat = service(sessions)
    start = datetime.now(UTC)
    old = await chat.begin_turn(1, "asked long ago", channel_id=5, now=start - timedelta(hours=3))
    recent = await chat.begin_turn(2, "a question before the crash", channel_id=6)
    resumed = await chat.interrupted_turns()
    assert [(channel, turn.reply_id) for channel, turn in resumed] == [(6, recent.reply_id)]
    assert resumed[0][1].messages[-1] == {"role": "user", "content": "a question before the crash"}
    async with sessions() as session:
        assert (await session.get(ChatMessage, old.reply_id)).state == ChatMessageState.FAILED
        assert (await session.get(ChatMessage, old.user_message_id)).text == "asked long ago"


async def test_settings_system_prompt_preset_optout_and_export(sessions):
    chat = service(sessions, max_system_prompt_chars=20)
    with pytest.raises(InvalidInput):
        await chat.set_system_prompt(1, "x" * 21)
    with pytest.raises(InvalidInput):
        await chat.set_preset(1, "wild")
    await chat.set_system_prompt(1, "Talk like a pirate")
    await chat.set_preset(1, "nucleus9")
    turn = await chat.begin_turn(1, "hi")
    assert turn.messages[0]["content"] == "Talk like a pirate"
    assert turn.preset == "nucleus9"
    assert (await chat.set_system_prompt(1, "")).custom_system_prompt is False
    assert (await chat.set_opt_out(1, True)).opted_out is True

    await reply(chat, turn, "Arr")
    exported = (await chat.export_user(1)).decode().strip().splitlines()
    assert len(exported) == 1 and '"Arr"' in exported[0]
    assert await chat.export_user(99) == b""
