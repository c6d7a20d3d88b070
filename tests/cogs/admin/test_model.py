"""/admin model show and reload through Discord, on a real (tiny, random-weight) GGUF model."""

from __future__ import annotations

import os
from pathlib import Path

from bot.config import Settings
from model_runner.synthetic import write_random_llama_gguf


def replace_model(path: Path, write) -> None:
    """As an operator must: write the new file beside it, then move it over (the model maps its file)."""
    new = path.with_suffix(".new")
    write(new)
    os.replace(new, path)


async def test_model_show_and_reload(emulator, start_bot, tmp_path):
    emu = emulator
    model = tmp_path / "model.gguf"
    write_random_llama_gguf(model, seed=1)
    settings = Settings(database={"url": f"sqlite+aiosqlite:///{tmp_path}/bot.db"},
                        discord={"cogs": ["cogs.chat", "cogs.admin"]},
                        chat={"model_path": str(model), "threads": 1, "context_size": 512, "max_reply_tokens": 8,
                              "seed": 1})
    guild = await emu.create_guild("Campaign", channels=["general", "mod-log"])
    mod = await emu.create_user("mod", guild=guild, moderator=True)
    alice = await emu.create_user("alice", guild=guild)
    general = guild.channel("general")
    async with start_bot(settings) as bot:
        await (await mod.slash("admin log-channel", {"channel": guild.channel("mod-log")}, channel=general)
               ).wait_message()
        asked = await alice.dm("hello")
        await emu.wait_for_message(alice, lambda m: bool(m.components), after=asked, timeout=30)

        shown = await (await mod.slash("admin model show", channel=general)).wait_message()
        fields = {f["name"]: f["value"] for f in shown.embeds[0]["fields"]}
        assert shown.embeds[0]["title"] == "Chat model: model"
        assert fields["Backend"] == "llama.cpp" and fields["Model file"] == f"`{model}`"
        assert fields["Queue"] == "0 waiting, 0 generating"
        assert fields["Requests served"] == "1 (8 tokens)" and fields["Recent speed"].endswith("tokens/s")
        runner = bot.services.chat_runner
        old = runner.current

        # A broken file: a clear error, and the old model goes on answering.
        replace_model(model, lambda new: new.write_bytes(b"GGUF but not really"))
        it = await mod.slash("admin model reload", channel=general)
        answer = await it.wait_message(lambda m: "not reloaded" in m.content, timeout=30)
        assert "keeps serving" in answer.content
        assert runner.current is old
        asked = await alice.dm("still there?")
        await emu.wait_for_message(alice, lambda m: bool(m.components), after=asked, timeout=30)

        # A good new file: loaded, new chats use it, the old copy is closed, and the log says so.
        replace_model(model, lambda new: write_random_llama_gguf(new, seed=2))
        it = await mod.slash("admin model reload", channel=general)
        answer = await it.wait_message(lambda m: "Reloaded" in m.content, timeout=30)
        assert runner.current is not old
        await emu.wait_for(lambda: not old.running or None, timeout=10, what="the old model closed")
        logged = await emu.wait_for_message(guild.channel("mod-log"), lambda m: "reloaded the chat model" in m.content)
        assert logged
        asked = await alice.dm("and now?")
        await emu.wait_for_message(alice, lambda m: bool(m.components), after=asked, timeout=30)
        shown = await (await mod.slash("admin model show", channel=general)).wait_message()
        fields = {f["name"]: f["value"] for f in shown.embeds[0]["fields"]}
        assert fields["Requests served"].startswith("3 (") and "reloaded 1×" in fields["Loaded"]
