"""`oabot export --format ratings`: rated chat replies in TRL's KTO layout, pseudonymous, without opt-outs."""

from __future__ import annotations

import json

from bot.chat.service import ChatService
from bot.config import ChatSettings
from bot.labelling.export import export
from bot.labelling.pseudonyms import pseudonym
from storage.enums import ChatMessageState


async def answered(chat: ChatService, user: int, question: str, answer: str) -> int:
    accepted = await chat.accept_message(user, question)
    await chat.start_generation(accepted.reply_id)
    await chat.finish_reply(accepted.reply_id, answer)
    return accepted.reply_id


async def test_ratings_are_kto_lines(sessions, tiny_runner, tmp_path):
    chat = ChatService(sessions, ChatSettings(system_prompt="Be brief."), tiny_runner)
    good = await answered(chat, 1, "Capital of France?", "Paris.")
    bad = await answered(chat, 1, "And of Italy?", "Madrid.")
    await chat.rate(1, good, 1)
    await chat.rate(1, bad, -1)
    unrated = await answered(chat, 1, "Thanks", "You're welcome.")
    assert unrated
    # Opted out: never exported. Failed replies: not what the user judged.
    hidden = await answered(chat, 2, "Secret?", "Yes.")
    await chat.rate(2, hidden, 1)
    await chat.set_opt_out(2, True)
    accepted = await chat.accept_message(3, "Hello?")
    await chat.start_generation(accepted.reply_id)
    await chat.finish_reply(accepted.reply_id, "partial", state=ChatMessageState.FAILED)

    out = tmp_path / "ratings.jsonl"
    assert await export(sessions, "ratings", out, salt="pepper") == 2
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0] == {
        "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"}],
        "completion": [{"role": "assistant", "content": "Paris."}],
        "label": True,
        "source": "chat",
        "user_id": pseudonym(b"pepper", 1),
        "model_name": "tiny",
        "lang": "en",
        "conversation_id": lines[0]["conversation_id"],
        "message_id": str(good),
    }
    assert lines[1]["label"] is False and lines[1]["completion"][0]["content"] == "Madrid."
    assert [m["content"] for m in lines[1]["prompt"]] == ["Be brief.", "Capital of France?", "Paris.", "And of Italy?"]
