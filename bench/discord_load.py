"""Discord load benchmark: emulated members against the real bot process, default SQLite database.

    python bench/discord_load.py [--members 200] [--seconds 30] [--think 1.0] [--seed 1]
                                 [--processes N --postgres [URL]]

The emulator runs in this process; the bot is started as an operator starts it (`oabot run`) in its
own process with a fresh SQLite file, seeded with a small campaign (accepted prompts, replies waiting
for review) and two task channels whose posts appear a few seconds after start.

With --postgres the database is a fresh one on a PostgreSQL server (URL, else OABOT_TEST_POSTGRES_URL,
else a throwaway server from .ci/postgres). With --processes N (needs --postgres) the bot runs as N
processes with one shard each, the emulator has N guilds, one per shard, each with its two task
channels, and members are spread over the guilds, reacting on their guild's posts. Their slash commands
go to DMs, which Discord delivers on shard 0, unless --guild-commands sends them to their guild's
#general (then each shard's process answers its guild, but a whole guild shares one channel's rate limits).

Each member then loops for the given time, thinking 0..2*think seconds between actions:
  - /task prompt in DMs, Write, and the modal with a new prompt;
  - /task review in DMs and the review's selects page by page, then Confirm;
  - reactions (👍 / 👎 / 🚩, added or taken back) on the bot's task posts in the channels.

Prints one JSON object: interactions_per_s (interactions answered per second), p50/p99_first_response_ms
(from the interaction's creation to the bot's first answer: message, defer, update or modal),
missed_deadlines (not answered within Discord's 3 s), reactions_per_s, lost_events (reactions whose
final state the database does not hold, and submissions answered as recorded that it does not hold),
the load average and calibration_ms (median of five timings of sum(range(10**6)) here; the issue's
targets assume 10 ms), and the processes and database it ran with.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.calibration import calibration_ms  # noqa: E402
from emulator import Emulator  # noqa: E402
from emulator.core import EmulatorTimeout  # noqa: E402

DEADLINE = 3.0
VOTES = ("👍", "👎", "🚩")


@dataclass
class Figures:
    latencies: list[float] = field(default_factory=list)
    missed: int = 0
    reactions: int = 0
    prompts: list[str] = field(default_factory=list)
    reviews: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def seed_database(url: str, task_channels: list[tuple[int, str, int]]) -> None:
    """A small campaign: accepted prompts growing, each with two replies waiting for review."""
    from sqlalchemy import insert

    from bot.config import LabellingSettings
    from bot.labelling.service import LabellingService
    from storage import db
    from storage.enums import TaskKind
    from storage.models import TaskChannel

    engine = db.create_engine(url)
    await db.upgrade(engine)
    sessions = db.session_factory(engine)
    labelling = LabellingService(sessions, LabellingSettings(reviews_initial_prompt=1))
    for tree in range(10):
        author = await labelling.get_or_create_user(10_000 + tree)
        offer = await labelling.request_task(author.id, kinds=TaskKind.INITIAL_PROMPT)
        await labelling.submit_initial_prompt(offer.task_id, author.id, f"Seed question number {tree}: why is the sky blue?")
        reviewer = await labelling.get_or_create_user(20_000 + tree)
        review = await labelling.request_task(reviewer.id, kinds=TaskKind.LABEL_INITIAL_PROMPT)
        await labelling.submit_labels(review.task_id, reviewer.id, {"spam": 0.0})
        for writer_number in range(2):
            writer = await labelling.get_or_create_user(30_000 + tree * 10 + writer_number)
            task = await labelling.request_task(writer.id, kinds=TaskKind.ASSISTANT_REPLY)
            await labelling.submit_reply(task.task_id, writer.id, f"Seed answer {writer_number} to question {tree}.")
    async with sessions.begin() as session:
        for guild_id, kind, channel_id in task_channels:
            await session.execute(insert(TaskChannel).values(
                channel_id=channel_id, guild_id=guild_id, interval_minutes=1, kinds=[kind], language="en"))
    await engine.dispose()


class Member:
    def __init__(self, emu: Emulator, user: Any, figures: Figures, rng: random.Random, posts: list[Any],
                 guild_id: int, channel: Any | None = None) -> None:
        self.emu, self.user, self.figures, self.rng, self.posts = emu, user, figures, rng, posts
        self.guild_id = guild_id
        # Where the member runs slash commands: None for DMs.
        self.channel = channel
        self.count = 0

    async def timed(self, start: Any) -> Any | None:
        """Run one interaction; its first-response time, or a missed deadline."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        interaction = await start
        try:
            await interaction.wait_response(timeout=DEADLINE)
        except EmulatorTimeout:
            self.figures.missed += 1
            return None
        self.figures.latencies.append(loop.time() - began)
        if 10062 in interaction.errors:
            self.figures.missed += 1
        return interaction

    async def answer(self, interaction: Any, message: Any | None = None) -> Any | None:
        """The message the bot showed for an interaction: a new one, or the one it updated."""
        try:
            if interaction.response.kind in ("message", "deferred"):
                return await interaction.wait_message(timeout=10)
            if interaction.followups:
                return interaction.followups[0]
            return message
        except EmulatorTimeout:
            return None

    async def write_prompt(self) -> None:
        it = await self.timed(self.user.slash("task", {"kind": "prompt"}, channel=self.channel))
        task = await self.answer(it) if it else None
        write = [c for c in (task.custom_ids if task else []) if c.startswith("lt:b:write:")]
        if not write:
            return
        opened = await self.timed(self.user.click(task, write[0]))
        if opened is None or opened.response.kind != "modal":
            return
        self.count += 1
        text = f"Load test prompt {self.user.id}-{self.count}: how do tides work on {self.rng.random():.6f}?"
        # What the task message shows before the answer (a fast answer may edit it before `timed` returns).
        shown = task.embeds[0].get("title") if task.embeds else None
        done = await self.timed(opened.submit_modal({"lt:text": text}))
        if done is None:
            return
        # The bot answers by editing the task message (at once, or after a defer) or with a follow-up.
        try:
            answer = await self.emu.wait_for(
                lambda: (done.followups[0] if done.followups else None)
                or (task if task.embeds and task.embeds[0].get("title") != shown else None),
                timeout=10,
            )
        except EmulatorTimeout:
            return
        if answer.embeds and answer.embeds[0].get("title") == "Thank you, recorded!":
            self.figures.prompts.append(text)

    async def review(self) -> None:
        it = await self.timed(self.user.slash("task", {"kind": "review"}, channel=self.channel))
        message = await self.answer(it) if it else None
        if message is None or not any(c.startswith("lt:b:confirm:") for c in message.custom_ids):
            return
        task_id = int(message.embeds[0]["footer"]["text"].split()[-1])
        for _ in range(12):
            answered = False
            for cid in [c for c in message.custom_ids if c.startswith("lt:s:label:")]:
                component = message.find_component(cid)
                if component is None or any(o.get("default") for o in component["options"]):
                    continue
                value = "0" if [o["label"] for o in component["options"]] == ["Yes", "No"] else str(self.rng.randrange(5))
                before = len(message.history)
                if await self.timed(self.user.select(message, cid, [value])) is None:
                    return
                await self.emu.wait_for(lambda b=before: len(message.history) > b or None, timeout=10)
                answered = True
                break
            if answered:
                continue
            more = [c for c in message.custom_ids if c.startswith("lt:b:page:")
                    and message.find_component(c)["label"].startswith("More")]
            target = more[0] if more else next(c for c in message.custom_ids if c.startswith("lt:b:confirm:"))
            before = len(message.history)
            done = await self.timed(self.user.click(message, target))
            if done is None:
                return
            await self.emu.wait_for(lambda b=before: len(message.history) > b or None, timeout=10)
            if not more:
                if message.embeds and message.embeds[0].get("title") == "Thank you, recorded!":
                    self.figures.reviews.append(task_id)
                return

    async def react(self) -> None:
        # The posts of the member's own guild.
        posts = [p for p in self.posts if self.guild_id == self.emu.channels[p.channel_id].guild_id]
        if not posts:
            return
        post = self.rng.choice(posts)
        emoji = self.rng.choice(VOTES[:2]) if self.rng.random() < 0.9 else VOTES[2]
        if self.user.id in post.reactions.get(emoji, []):
            await self.user.unreact(post, emoji)
        else:
            await self.user.react(post, emoji)
        self.figures.reactions += 1

    async def run(self, until: float, think: float) -> None:
        loop = asyncio.get_running_loop()
        while loop.time() < until:
            roll = self.rng.random()
            try:
                if roll < 0.4:
                    await self.react()
                elif roll < 0.7:
                    await self.write_prompt()
                else:
                    await self.review()
            except Exception as exc:  # a member's failed step is reported, the others go on
                self.figures.errors.append(f"{type(exc).__name__}: {exc}"[:200])
            await asyncio.sleep(self.rng.uniform(0, 2 * think))


async def lost_reactions(engine: Any, posts: list[Any], bot_id: int) -> int:
    from sqlalchemy import text

    final = {(post.id, user, emoji) for post in posts for emoji, users in post.reactions.items()
             for user in users if user != bot_id}
    async with engine.connect() as conn:
        held = {(int(m), int(u), e) for m, u, e in await conn.execute(text(
            "SELECT p.discord_message_id, u.discord_id, r.emoji FROM post_reactions r "
            "JOIN bot_posts p ON p.id = r.post_id JOIN users u ON u.id = r.user_id"))}
    return len(final ^ held)


async def lost_submissions(engine: Any, figures: Figures) -> int:
    from sqlalchemy import text

    async with engine.connect() as conn:
        texts = {row[0] for row in await conn.execute(text("SELECT text FROM messages"))}
        done = {row[0] for row in await conn.execute(text("SELECT id FROM tasks WHERE state = 'done'"))}
    return sum(text not in texts for text in figures.prompts) + sum(task not in done for task in figures.reviews)


@asynccontextmanager
async def postgres_database(server: str | None) -> AsyncIterator[str]:
    """A fresh database on the given server (else OABOT_TEST_POSTGRES_URL, else a throwaway server from
    .ci/postgres), dropped afterwards."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from storage import db

    server = server or os.environ.get("OABOT_TEST_POSTGRES_URL")
    throwaway = None
    if not server:
        started = await asyncio.to_thread(subprocess.run, [str(ROOT / ".ci" / "postgres")], capture_output=True,
                                          text=True, check=True)
        throwaway, server = started.stdout.split()
    name = f"oabot_load_{uuid.uuid4().hex[:12]}"
    admin = db.create_engine(str(make_url(server).set(database="postgres")))
    try:
        async with admin.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
        async with admin.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()
        if throwaway is not None:
            await asyncio.to_thread(subprocess.run, [str(ROOT / ".ci" / "postgres"), "stop", throwaway], check=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--think", type=float, default=1.0, help="mean seconds between a member's actions")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--processes", type=int, default=1, help="bot processes, one shard each (needs --postgres)")
    parser.add_argument("--postgres", nargs="?", const="", default=None, metavar="URL",
                        help="run on a fresh PostgreSQL database (server URL, else OABOT_TEST_POSTGRES_URL, "
                             "else a throwaway server from .ci/postgres)")
    parser.add_argument("--guild-commands", action="store_true",
                        help="members run slash commands in their guild's #general instead of in DMs")
    args = parser.parse_args()
    if args.processes < 1:
        parser.error("--processes must be at least 1")
    if args.processes > 1 and args.postgres is None:
        parser.error("several processes share one database only on PostgreSQL: add --postgres")
    report: dict[str, Any] = {"members": args.members, "seconds": args.seconds, "cpus": os.cpu_count(),
                              "processes": args.processes, "commands_in": "guild" if args.guild_commands else "dm",
                              "database": "sqlite" if args.postgres is None else "postgresql",
                              "loadavg_start": os.getloadavg(), "calibration_ms": calibration_ms()}
    workdir = Path(tempfile.mkdtemp(prefix="oabot-load-"))
    if args.postgres is None:
        await run(args, f"sqlite+aiosqlite:///{workdir / 'oabot.db'}", workdir, report)
    else:
        async with postgres_database(args.postgres or None) as url:
            await run(args, url, workdir, report)
    print(json.dumps(report))


async def start_bot(emu: Emulator, url: str, workdir: Path, shard: int, processes: int) -> tuple[Any, Path]:
    home = workdir / f"shard{shard}"
    home.mkdir()
    shards = f"shard_count = {processes}\nshard_ids = [{shard}]\n" if processes > 1 else ""
    # One process pushes the command definitions; the others would only repeat it.
    sync = "" if shard == 0 else "sync_commands = false\n"
    config = home / "config.toml"
    config.write_text(
        f'[discord]\napi_base_url = "{emu.rest_url}"\ngateway_url = "{emu.gateway_url}"\n{shards}{sync}'
        f'[database]\nurl = "{url}"\n[chat]\nenabled = false\n'
        '[posts]\nfirst_post_delay_seconds = 2\n'
        '[logging]\nlevel = "WARNING"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("OABOT_")}
    env["DISCORD_TOKEN"] = emu.token
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    log_path = home / "bot.log"
    with log_path.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "import sys; from bot.cli import main; sys.exit(main())", "run", "--config",
            str(config), cwd=home, env=env, stderr=log_file)
    return process, log_path


async def run(args: argparse.Namespace, url: str, workdir: Path, report: dict[str, Any]) -> None:
    from storage import db

    rng = random.Random(args.seed)
    emu = Emulator(history_limit=5000, shards=args.processes)
    await emu.start()
    bots: list[tuple[Any, Path]] = []
    engine = None
    try:
        guilds = [await emu.create_guild(f"Load {shard}", channels=["general", "reviews", "replies"],
                                         shard=shard if args.processes > 1 else None)
                  for shard in range(args.processes)]
        task_channels = [(guild.id, kind, guild.channel(name).id) for guild in guilds
                         for kind, name in (("review", "reviews"), ("reply", "replies"))]
        users = [await emu.create_user(f"member{i}", guild=guilds[i % len(guilds)]) for i in range(args.members)]
        await seed_database(url, task_channels)
        for shard in range(args.processes):
            bots.append(await start_bot(emu, url, workdir, shard, args.processes))
        await emu.wait_for_commands("task", timeout=120)
        await emu.wait_for(lambda: len(emu.gateway.ready_sessions) == args.processes, timeout=60,
                           what="every shard connected")
        # Each guild's two channels post at their first run (2 s after start), then every minute.
        channels = [guild.channel(name) for guild in guilds for name in ("reviews", "replies")]
        posts = [await emu.wait_for_message(channel, lambda m: bool(m.embeds), timeout=60) for channel in channels]

        def refresh_posts() -> None:
            for channel in channels:
                for message in channel.visible_messages():
                    if message.author.id == emu.bot_user.id and message.embeds and message not in posts:
                        posts.append(message)

        figures = Figures()
        members = []
        for i, user in enumerate(users):
            guild = guilds[i % len(guilds)]
            where = guild.channel("general") if args.guild_commands else None
            members.append(Member(emu, user, figures, random.Random(rng.random()), posts, guild.id, where))
        loop = asyncio.get_running_loop()
        started = loop.time()
        until = started + args.seconds
        refresher = asyncio.create_task(_every(1.0, refresh_posts, until))
        await asyncio.gather(*(member.run(until, args.think) for member in members), refresher)
        elapsed = loop.time() - started
        # Let the bot finish what is in flight, then compare what it holds with what happened.
        engine = db.create_engine(url)
        lost = 0
        for _ in range(300):
            lost = await lost_reactions(engine, posts, emu.bot_user.id)
            if lost == 0:
                break
            await asyncio.sleep(0.1)
        lost_work = await lost_submissions(engine, figures)
        latencies = sorted(figures.latencies)
        report.update(
            interactions=len(latencies),
            interactions_per_s=round(len(latencies) / elapsed, 1),
            p50_first_response_ms=round(statistics.median(latencies) * 1000, 1) if latencies else None,
            p99_first_response_ms=round(latencies[int(0.99 * (len(latencies) - 1))] * 1000, 1) if latencies else None,
            missed_deadlines=figures.missed,
            reactions=figures.reactions,
            reactions_per_s=round(figures.reactions / elapsed, 1),
            prompts_recorded=len(figures.prompts),
            reviews_recorded=len(figures.reviews),
            posts=len(posts),
            lost_events=lost + lost_work,
            lost_reactions=lost,
            lost_submissions=lost_work,
            member_errors=len(figures.errors),
            first_errors=figures.errors[:3],
            rate_limit_violations=len(emu.rate_limit_violations),
            loadavg_end=os.getloadavg(),
        )
    finally:
        if engine is not None:
            await engine.dispose()
        for process, _log in bots:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for shard, (process, log_path) in enumerate(bots):
            await asyncio.wait_for(process.wait(), timeout=60)
            log = log_path.read_text(errors="replace") if log_path.exists() else ""
            if "Traceback" in log or process.returncode not in (0, None):
                report[f"bot_log_tail_shard{shard}"] = log[-1500:]
        await emu.stop()


async def _every(period: float, action: Any, until: float) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < until:
        action()
        await asyncio.sleep(period)


if __name__ == "__main__":
    asyncio.run(main())
