"""DM chat through a real OpenAI-compatible server (llama-cpp-python's, serving SmolLM2): the server
stops mid-reply, the user gets a polite message, and the next turn works once it is back."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from cogs.streaming import CURSOR
from storage.models import ChatMessage
from tests.model_runner.llama_server import LlamaServer, free_port

pytestmark = pytest.mark.slow


async def test_a_server_that_dies_mid_reply_gets_an_apology_and_the_next_turn_works(
    emulator, start_bot, make_settings, smollm2
):
    pytest.importorskip("llama_cpp.server.app", reason="pip install 'llama-cpp-python[server]' (dev extra)")
    emu = emulator
    pia = await emu.create_user("pia")
    server = LlamaServer(smollm2, free_port())
    await server.start()
    try:
        settings = make_settings(backend="openai", openai_base_url=server.base_url, openai_model="smollm2",
                                 max_reply_tokens=300, preset="k50", edit_interval_seconds=0.5)
        async with start_bot(settings) as bot:
            asked = await pia.dm("Write a long story about a dragon who bakes bread.")
            await emu.wait_for_message(pia, lambda m: m.content.endswith(CURSOR), after=asked, timeout=60)
            await server.stop()
            failed = await emu.wait_for_message(pia, lambda m: "*Sorry," in m.content, after=asked, timeout=60)
            assert "something went wrong" in failed.content and not failed.content.endswith(CURSOR)
            assert not failed.components

            await server.start()
            again = await pia.dm("What is the capital of France?")
            answer = await emu.wait_for_message(pia, lambda m: bool(m.components), after=again, timeout=60)
            assert "paris" in answer.content.lower()
            async with bot.services.sessions() as session:
                states = (await session.scalars(select(ChatMessage.state).where(ChatMessage.role == "assistant")
                                                .order_by(ChatMessage.id))).all()
                assert states == ["failed", "complete"]
    finally:
        await server.stop()
