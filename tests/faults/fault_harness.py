"""The bot as an operator runs it (`oabot run` in its own process) against an in-process emulator, for the
fault tests that kill it or need many members; and checks on what the database holds afterwards."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from emulator import Emulator
from storage import db

ROOT = Path(__file__).resolve().parents[2]


class BotProcess:
    """`oabot run --config` in a subprocess; its stderr (the log) goes to a file per start."""

    def __init__(self, emu: Emulator, workdir: Path, db_url: str, *, extra_config: str = "") -> None:
        self.emu, self.workdir, self.starts = emu, workdir, 0
        self.config = workdir / "config.toml"
        self.config.write_text(
            f'[discord]\napi_base_url = "{emu.rest_url}"\ngateway_url = "{emu.gateway_url}"\n'
            f'[database]\nurl = "{db_url}"\n[chat]\nenabled = false\n'
            f'[logging]\nlevel = "WARNING"\n{extra_config}')
        self.process: asyncio.subprocess.Process | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / f"bot-{self.starts}.log"

    async def start(self) -> None:
        self.starts += 1
        env = {k: v for k, v in os.environ.items() if not k.startswith("OABOT_")}
        env["DISCORD_TOKEN"] = self.emu.token
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        identified = self.emu.gateway.identify_count
        with self.log_path.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-c", "import sys; from bot.cli import main; sys.exit(main())", "run", "--config",
                str(self.config), cwd=self.workdir, env=env, stderr=log)
        await self.emu.wait_for(lambda: self.emu.gateway.identify_count > identified and self.emu.gateway.connected,
                                timeout=120)

    async def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> int | None:
        if self.process is None or self.process.returncode is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), timeout=60)

    def logs(self) -> str:
        return "\n".join((self.workdir / f"bot-{n}.log").read_text(errors="replace")
                         for n in range(1, self.starts + 1) if (self.workdir / f"bot-{n}.log").exists())


async def _rows(database_url: str, query: str, **params: Any) -> list[tuple]:
    """The rows of one read-only query, on either database (an engine of its own, closed afterwards)."""
    engine = db.create_engine(database_url)
    try:
        async with engine.connect() as conn:
            return [tuple(row) for row in await conn.execute(text(query), params)]
    finally:
        await engine.dispose()


HELD_REACTIONS = ("SELECT p.discord_message_id, u.discord_id, r.emoji FROM post_reactions r "
                  "JOIN bot_posts p ON p.id = r.post_id JOIN users u ON u.id = r.user_id")
# A member's reactions on the posts whose subject is a text, and the engine's votes on texts.
POST_VOTES = ("SELECT pm.message_id, r.user_id, r.emoji FROM post_reactions r JOIN post_messages pm "
              "ON pm.post_id = r.post_id AND pm.role = 'subject' WHERE r.emoji IN ('👍', '👎', '🚩')")
ENGINE_VOTES = "SELECT message_id, user_id, emoji FROM reactions WHERE emoji IN ('+1', '-1', 'red_flag')"


def _held(rows: Iterable[tuple]) -> Counter:
    return Counter((int(m), int(u), e) for m, u, e in rows)


def _vote_mismatches(post_votes: Iterable[tuple], engine_votes: Iterable[tuple]) -> list[tuple]:
    codes = {"👍": "+1", "👎": "-1", "🚩": "red_flag"}
    held: dict[tuple[int, int], set[str]] = {}
    for message_id, user_id, emoji in post_votes:
        held.setdefault((message_id, user_id), set()).add(codes[emoji])
    stored = Counter(tuple(row) for row in engine_votes)
    wanted = Counter()
    for (message_id, user_id), votes in held.items():
        if {"+1", "-1"} <= votes:
            votes -= {"+1", "-1"}
        wanted.update((message_id, user_id, v) for v in votes)
    return sorted((set(wanted) ^ set(stored)) | {k for k, n in stored.items() if n > 1})


async def held_reactions(database_url: str) -> Counter:
    """(Discord message, member, emoji) rows of post_reactions, counted (a count above 1 is a double)."""
    return _held(await _rows(database_url, HELD_REACTIONS))


async def held_reactions_in(connection: AsyncConnection) -> Counter:
    """held_reactions() through a connection the caller holds (the running bot's engine)."""
    return _held((await connection.execute(text(HELD_REACTIONS))).all())


def shown_reactions(posts: list[Any], bot_id: int, emojis: frozenset[str]) -> set[tuple[int, int, str]]:
    """What the emulator shows on the posts: every reaction it acknowledged and that was not taken back."""
    return {(post.id, user, emoji) for post in posts for emoji, users in post.reactions.items()
            if emoji in emojis for user in users if user != bot_id}


async def vote_mismatches(database_url: str) -> list[tuple]:
    """Engine votes (reactions table) that differ from what the held post reactions give: a member's vote on
    a text is what they hold on every post about it, 👍 with 👎 cancelling."""
    return _vote_mismatches(await _rows(database_url, POST_VOTES), await _rows(database_url, ENGINE_VOTES))


async def vote_mismatches_in(connection: AsyncConnection) -> list[tuple]:
    """vote_mismatches() through a connection the caller holds."""
    return _vote_mismatches((await connection.execute(text(POST_VOTES))).all(),
                            (await connection.execute(text(ENGINE_VOTES))).all())


async def stored_texts(database_url: str, texts: list[str]) -> Counter:
    """How many times each of these texts is stored as a message."""
    wanted = set(texts)
    return Counter(row[0] for row in await _rows(database_url, "SELECT text FROM messages") if row[0] in wanted)


async def duplicated_texts(database_url: str, texts: list[str]) -> list[str]:
    counts = await stored_texts(database_url, texts)
    return [text for text in texts if counts[text] > 1]
