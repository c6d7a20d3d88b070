"""The chat service on PostgreSQL: text with NUL and other control characters is stored, a replayed
Discord message is refused by the unique index, ratings export. Needs OABOT_TEST_POSTGRES_URL."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import select

from bot.chat.service import ChatService, Duplicate
from bot.config import ChatSettings
from bot.labelling.export import export
from storage import db
from storage.models import ChatMessage, ChatPreference
from tests.storage.test_postgres import SERVER, engine  # noqa: F401  (fixture)

pytestmark = pytest.mark.skipif(SERVER is None, reason="no PostgreSQL server given (.ci/run starts one)")


async def test_chat_on_postgres(engine, tiny_runner, tmp_path):  # noqa: F811
    await db.upgrade(engine)
    sessions = db.session_factory(engine)
    chat = ChatService(sessions, ChatSettings(context_size=1024, max_reply_tokens=64), tiny_runner)
    accepted = await chat.accept_message(1, "nul\x00 and bell\x07 here", discord_message_id=42)
    await chat.start_generation(accepted.reply_id)
    await chat.finish_reply(accepted.reply_id, "reply with \x00 inside")
    await chat.rate(1, accepted.reply_id, 1)
    # The same gateway event twice at once: one is stored, the other refused.
    outcomes = await asyncio.gather(
        chat.accept_message(2, "hello", discord_message_id=43),
        chat.accept_message(3, "hello", discord_message_id=43),
        return_exceptions=True,
    )
    assert sorted(type(o).__name__ for o in outcomes) == ["AcceptedMessage", "Duplicate"]
    with pytest.raises(Duplicate):
        await chat.accept_message(1, "again", discord_message_id=42)
    async with sessions() as session:
        texts = (await session.scalars(select(ChatMessage.text).order_by(ChatMessage.id))).all()
    assert texts[:2] == ["nul and bell here", "reply with  inside"]
    out = tmp_path / "ratings.jsonl"
    assert await export(sessions, "ratings", out, salt="s") == 1
    assert json.loads(out.read_text())["completion"][0]["content"] == "reply with  inside"


async def test_chat_preferences_on_postgres(engine, tiny_runner):  # noqa: F811
    await db.upgrade(engine)
    sessions = db.session_factory(engine)
    chat = ChatService(sessions, ChatSettings(context_size=1024, max_reply_tokens=64), tiny_runner)
    first = await chat.accept_message(7, "Name a colour")
    await chat.start_generation(first.reply_id)
    await chat.finish_reply(first.reply_id, "Blue")
    again = await chat.regenerate(7, first.reply_id)
    await chat.start_generation(again.reply_id)
    await chat.finish_reply(again.reply_id, "Red")
    assert (await chat.keep(7, first.reply_id)).pairs_recorded == 1
    assert (await chat.keep(7, first.reply_id)).pairs_recorded == 0  # the same choice counts once
    async with sessions() as session:
        pairs = [(p.chosen_id, p.rejected_id) for p in (await session.scalars(select(ChatPreference))).all()]
    assert pairs == [(first.reply_id, again.reply_id)]
