"""The rough edges a new user met on a clean clone: each is now one line on stderr and exit code 2 (or just
works), never a traceback, and nothing is created or overwritten on the way."""

from __future__ import annotations

import argparse
import http.server
import logging
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import discord
import pytest

import emulator as emulator_package
from bot import cli
from bot.cli import build_parser, main
from bot.config import Settings

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def oabot(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    """The error: one line, the last one (`run` logs its start at INFO before it)."""
    lines = err.strip().splitlines()
    errors = [line for line in lines if line.startswith("oabot: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    assert "Traceback" not in err
    return errors[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    for name in [n for n in os.environ if n.startswith("OABOT_") or n == "DISCORD_TOKEN"]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def config(tmp_path, text: str) -> str:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return str(path)


# ---- export -------------------------------------------------------------------------------------------------

def test_readme_chain_simulate_then_export_on_the_same_file(capsys, tmp_path):
    db = tmp_path / "sim.db"
    code, out, err = oabot(capsys, "simulate", "--users", "8", "--seed", "7", "--db", str(db))
    assert code == 0, err
    code, out, err = oabot(capsys, "export", "--db", str(db), "--format", "oasst-trees", "-o", str(tmp_path / "t.jsonl"))
    assert code == 0, err
    assert out.startswith("wrote ") and (tmp_path / "t.jsonl").exists()


def test_export_of_a_missing_database_is_one_line_and_creates_nothing(capsys, tmp_path):
    code, _, err = oabot(capsys, "export", "--db", str(tmp_path / "nope.db"), "--format", "sft", "-o", "x.jsonl")
    assert code == 2 and "no database at" in one_line_error(err)
    assert not (tmp_path / "nope.db").exists() and not (tmp_path / "x.jsonl").exists()
    # The default database of a fresh clone (data/oabot.db) is not created either.
    code, _, err = oabot(capsys, "export", "--format", "sft", "-o", "x.jsonl")
    assert code == 2 and "--db PATH" in one_line_error(err)
    assert not (tmp_path / "data").exists()


def test_export_of_a_never_migrated_database_is_one_line(capsys, tmp_path):
    empty = tmp_path / "empty.db"
    empty.touch()
    code, _, err = oabot(capsys, "export", "--db", str(empty), "--format", "oasst-messages", "-o", "m.jsonl")
    assert code == 2 and "never set up" in one_line_error(err)


def test_unwritable_output_paths_are_refused_before_any_work(capsys, tmp_path):
    db = tmp_path / "sim.db"
    assert oabot(capsys, "simulate", "--users", "4", "--db", str(db))[0] == 0
    before = db.stat().st_mtime_ns
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    missing = blocker / "sub" / "out.jsonl"  # under a file: no folder can be made there
    code, _, err = oabot(capsys, "export", "--db", str(db), "--format", "sft", "-o", str(missing))
    assert code == 2 and "is not a folder" in one_line_error(err)
    code, _, err = oabot(capsys, "export", "--db", str(db), "--format", "sft", "-o", str(tmp_path))
    assert code == 2 and "is a folder" in one_line_error(err)
    # simulate --export checks its output first: the earlier simulation's database is left alone.
    code, _, err = oabot(capsys, "simulate", "--users", "4", "--db", str(db), "--export", str(missing))
    assert code == 2 and "is not a folder" in one_line_error(err)
    assert db.stat().st_mtime_ns == before


# ---- settings and the database --------------------------------------------------------------------------------

@pytest.mark.parametrize("url, expected", [
    ("not a url", "not a database URL"),
    ("sqlite:///bot.db", "asynchronous driver"),
    ("postgresql://user@localhost/db", "asynchronous driver"),
])
def test_unparseable_or_driverless_database_url(capsys, tmp_path, url, expected):
    code, _, err = oabot(capsys, "db", "upgrade", "--config", config(tmp_path, f'[database]\nurl = "{url}"\n'))
    line = one_line_error(err)
    assert code == 2 and "database.url" in line and expected in line


def test_database_folder_that_cannot_be_created(capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    url = f"sqlite+aiosqlite:///{blocker}/sub/bot.db"
    code, _, err = oabot(capsys, "db", "upgrade", "--config", config(tmp_path, f'[database]\nurl = "{url}"\n'))
    assert code == 2 and "cannot open the database" in one_line_error(err)


def test_postgresql_server_down(capsys, tmp_path, monkeypatch):
    pytest.importorskip("asyncpg")
    url = f"postgresql+asyncpg://nobody@127.0.0.1:{free_port()}/oabot"
    path = config(tmp_path, f'[database]\nurl = "{url}"\n[chat]\nenabled = false\n')
    code, _, err = oabot(capsys, "db", "upgrade", "--config", path)
    assert code == 2 and "cannot open the database" in one_line_error(err)
    # The bot checks its database before it connects to Discord.
    monkeypatch.setenv("DISCORD_TOKEN", "x")
    code, _, err = oabot(capsys, "run", "--config", path)
    assert code == 2 and "cannot open the database" in one_line_error(err)


def test_explicit_config_must_exist(capsys, tmp_path):
    code, _, err = oabot(capsys, "db", "current", "--config", str(tmp_path / "typo.toml"))
    assert code == 2 and "typo.toml: no such settings file" in one_line_error(err)
    code, _, err = oabot(capsys, "--config", str(tmp_path / "typo.toml"), "db", "current")
    assert code == 2 and "no such settings file" in one_line_error(err)


def test_bad_environment_value_is_reported_as_the_variable(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("OABOT_LABELLING__MAX_CHILDREN", "-3")
    code, _, err = oabot(capsys, "db", "current", "--config", config(tmp_path, "[labelling]\nmax_tree_depth = 3\n"))
    line = one_line_error(err)
    assert code == 2 and "environment variable OABOT_LABELLING__MAX_CHILDREN" in line and "c.toml" not in line


# ---- simulate ---------------------------------------------------------------------------------------------------

def test_simulate_defaults_scale_with_users(capsys, tmp_path):
    code, out, err = oabot(capsys, "simulate", "--users", "3", "--db", str(tmp_path / "s.db"))
    assert code == 0, err
    assert "campaign: 3 users (0 trolls), 1 prompts" in out


# ---- Discord and the emulator ----------------------------------------------------------------------------------

def run_against(capsys, tmp_path, api_base_url: str) -> tuple[int, str]:
    path = config(tmp_path, f'[discord]\napi_base_url = "{api_base_url}"\n[chat]\nenabled = false\n'
                            f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path}/bot.db"\n')
    code, _, err = oabot(capsys, "run", "--config", path)
    return code, one_line_error(err)


def test_discord_unreachable(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("DISCORD_TOKEN", "x")
    code, line = run_against(capsys, tmp_path, f"http://127.0.0.1:{free_port()}/api/v10")
    assert code == 2 and "cannot reach Discord at" in line


def test_wrong_api_base_url(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("DISCORD_TOKEN", "x")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        code, line = run_against(capsys, tmp_path, f"http://127.0.0.1:{server.server_port}/not-discord")
    finally:
        server.shutdown()
    assert code == 2 and "answered HTTP 404" in line and "api_base_url" in line


def test_ports_in_use(capsys, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        # The emulator this test process imported (the source tree in a checkout).
        source = str(Path(emulator_package.__file__).resolve().parents[1])
        emulator = subprocess.run([sys.executable, "-m", "emulator", "--port", port], capture_output=True,
                                  text=True, timeout=60, env={**os.environ, "PYTHONPATH": source})
        code, _, err = oabot(capsys, "playground", "--port", port, "--db", str(tmp_path / "p.db"))
    assert emulator.returncode == 2 and "Traceback" not in emulator.stderr
    assert "cannot listen on" in emulator.stderr and len(emulator.stderr.strip().splitlines()) == 1
    assert code == 2 and "cannot listen on" in one_line_error(err) and "--port" in err


def test_no_token_names_a_command_that_works_as_typed(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", [".venv/bin/oabot", "run"])
    code, _, err = oabot(capsys, "run")
    line = one_line_error(err)
    assert code == 2 and "`DISCORD_TOKEN=... .venv/bin/oabot run`" in line and ".venv/bin/oabot playground" in line
    monkeypatch.setattr(sys, "argv", ["/usr/local/bin/oabot", "run"])
    monkeypatch.setenv("PATH", "/usr/local/bin:/usr/bin")
    assert "`DISCORD_TOKEN=... oabot run`" in oabot(capsys, "run")[2]


def test_every_subcommand_and_option_has_a_description():
    def walk(parser: argparse.ArgumentParser, path: str):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    assert choice.help, f"{path} {choice.dest}"
                for name, sub in action.choices.items():
                    yield from walk(sub, f"{path} {name}")
            elif not isinstance(action, argparse._HelpAction):
                yield path, action

    missing = [f"{path} {action.option_strings or action.dest}" for path, action in walk(build_parser(), "oabot")
               if not action.help]
    assert missing == []


def test_voice_warnings_are_silenced(caplog):
    discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = True
    from bot.app import OABot

    with caplog.at_level(logging.WARNING, logger="discord"):
        OABot(Settings())
    assert not [r for r in caplog.records if "voice" in r.getMessage()]


def test_program_name_helper_defaults_to_oabot(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["-c"])
    assert cli.program() == "oabot"
