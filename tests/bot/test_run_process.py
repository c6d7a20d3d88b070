"""`oabot run` as an operator starts it: a real process against the emulator, stopped by SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from emulator.pytest_plugin import emulator  # noqa: F401  (fixture)


async def test_run_answers_a_dm_and_stops_cleanly_on_sigterm(emulator, tmp_path):  # noqa: F811
    emu = emulator
    alice = await emu.create_user("alice")
    database = tmp_path / "data" / "bot.db"
    config = tmp_path / "config.toml"
    config.write_text(
        f'[discord]\napi_base_url = "{emu.rest_url}"\ngateway_url = "{emu.gateway_url}"\n'
        f'[database]\nurl = "sqlite+aiosqlite:///{database}"\n'
        "[chat]\nenabled = false\n"
        '[logging]\nformat = "json"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OABOT_")}
    env["DISCORD_TOKEN"] = emu.token
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import sys; from bot.cli import main; sys.exit(main())", "run", "--config", str(config),
        cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        waiting = asyncio.ensure_future(emu.wait_for_commands("chat", timeout=60))
        exited = asyncio.ensure_future(process.wait())
        await asyncio.wait({waiting, exited}, return_when=asyncio.FIRST_COMPLETED)
        assert not exited.done(), (await process.stderr.read()).decode()
        await waiting
        await emu.wait_until_connected(timeout=60)
        asked = await alice.dm("hello?")
        answer = await emu.wait_for_message(alice, after=asked, timeout=30)
        assert "Chat is switched off" in answer.content
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        _out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    log = err.decode()
    assert process.returncode == 0, log
    assert '"message": "shutting down"' in log
    assert "Traceback" not in log
    assert database.exists()


async def test_run_with_a_refused_token_exits_2(emulator, tmp_path):  # noqa: F811
    config = tmp_path / "config.toml"
    config.write_text(
        f'[discord]\napi_base_url = "{emulator.rest_url}"\ngateway_url = "{emulator.gateway_url}"\n'
        f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path}/bot.db"\n[chat]\nenabled = false\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OABOT_")}
    env["DISCORD_TOKEN"] = "not-the-token"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import sys; from bot.cli import main; sys.exit(main())", "run", "--config", str(config),
        cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    _out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 2
    assert "Discord refused the bot token" in err.decode()
    assert "Traceback" not in err.decode()
