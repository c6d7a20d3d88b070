"""The `oabot` command as a user runs it: a real process, from a directory outside the source tree."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

OABOT = [sys.executable, "-c", "import sys; from bot.cli import main; sys.exit(main())"]


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("OABOT_", "DISCORD_TOKEN"))}
    environment.update(env)
    # PYTHONSAFEPATH keeps the source tree off sys.path: the installed package must carry everything.
    environment["PYTHONSAFEPATH"] = "1"
    return subprocess.run(OABOT + args, cwd=cwd, env=environment, capture_output=True, text=True, timeout=120)


def test_version_and_help(tmp_path):
    assert run(["--version"], tmp_path).stdout.startswith("oabot ")
    for args in (["--help"], ["run", "--help"], ["db", "--help"], ["db", "upgrade", "--help"]):
        result = run(args, tmp_path)
        assert result.returncode == 0, result.stderr
        assert "usage:" in result.stdout


def test_run_without_token_exits_2_with_advice(tmp_path):
    result = run(["run"], tmp_path)
    assert result.returncode == 2
    assert "DISCORD_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr


def test_broken_config_exits_2_naming_the_key(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("[labelling]\nmax_children = -3\n")
    result = run(["run", "--config", str(config)], tmp_path, DISCORD_TOKEN="x")
    assert result.returncode == 2
    assert "labelling.max_children" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_db_upgrade_from_installed_copy(tmp_path):
    database = tmp_path / "deep" / "bot.db"
    config = tmp_path / "c.toml"
    config.write_text(f'[database]\nurl = "sqlite+aiosqlite:///{database}"\n')

    first = run(["db", "upgrade", "--config", str(config)], tmp_path)
    assert first.returncode == 0, first.stderr
    with sqlite3.connect(database) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        version = connection.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    assert {"users", "messages", "reactions"} <= tables

    second = run(["db", "upgrade", "--config", str(config)], tmp_path)
    assert second.returncode == 0, second.stderr
    current = run(["db", "current", "--config", str(config)], tmp_path)
    assert f"{version} (up to date)" in current.stdout

    down = run(["db", "downgrade", "base", "--config", str(config)], tmp_path)
    assert down.returncode == 0, down.stderr
    assert "base" in run(["db", "current", "--config", str(config)], tmp_path).stdout


def test_duplicate_vote_refused_by_the_database(tmp_path):
    database = tmp_path / "bot.db"
    config = tmp_path / "c.toml"
    config.write_text(f'[database]\nurl = "sqlite+aiosqlite:///{database}"\n')
    assert run(["db", "upgrade", "--config", str(config)], tmp_path).returncode == 0
    with sqlite3.connect(database) as connection:
        connection.execute("PRAGMA foreign_keys=ON")
        connection.execute(
            "INSERT INTO users (id, discord_id, display_name, locale, banned, opted_out, synthetic, streak_days,"
            " created_at) VALUES (1, 10, 'a', 'en', 0, 0, 0, 0, '2026-01-01')"
        )
        connection.execute(
            "INSERT INTO message_trees (id, state, lang, created_at, updated_at) VALUES (1, 'growing', 'en',"
            " '2026-01-01', '2026-01-01')"
        )
        connection.execute(
            "INSERT INTO messages (id, tree_id, role, text, lang, depth, review_count, synthetic, deleted, created_at)"
            " VALUES (1, 1, 'prompter', 'hi', 'en', 0, 0, 0, 0, '2026-01-01')"
        )
        vote = "INSERT INTO reactions (message_id, user_id, emoji, created_at) VALUES (1, 1, '+1', '2026-01-01')"
        connection.execute(vote)
        with pytest.raises(sqlite3.IntegrityError):
            connection.execute(vote)


def test_run_with_a_missing_model_file_exits_2(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(f'[chat]\nmodel_path = "{tmp_path}/nope.gguf"\n')
    result = run(["run", "--config", str(config)], tmp_path, DISCORD_TOKEN="x")
    assert result.returncode == 2
    assert "nope.gguf" in result.stderr and "does not exist" in result.stderr
    assert "Traceback" not in result.stderr
