"""The database out of reach for 10 s while members work: SQLite locked by another program (a backup
tool's ``BEGIN EXCLUSIVE``), PostgreSQL stopped and started again.

During the outage members submit prompts (the Write modal) and reviews (Confirm), ask for tasks, run
/leaderboard and /profile, react on the channel posts and DM the chat (with the bundled model). Every
request either waits and succeeds, or is refused with the polite "database is busy" sentence; none goes
unanswered or shows another error. (A post's Write button, whose box must open within Discord's 3 s,
cannot wait: it says the database is busy.) Afterwards:
- every submission a member saw "Thank you, recorded!" for is stored once, every refused one not at all,
  and nothing is half-written (a prompt without its done task or a done task without its prompt, labels
  without their task, a points event without its cause, a total that is not the sum of its events);
- every reaction the emulator shows is held once and the votes are the ones those reactions give (a
  reaction that found the database away was retried until stored);
- the bot is still connected and a fresh /task works.

FAULTS_DB_OUTAGE_SECONDS sets the outage (default 10).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import text

from bot.config import Settings
from bot.labelling.post_reactions import VOTE_EMOJI
from emulator.core import EmulatorTimeout
from emulator.pytest_plugin import emulator  # noqa: F401  (fixture)
from model_runner import bundled_smollm2_path
from storage.db import is_unavailable
from storage.enums import TaskKind
from tests.cogs.labelling.posts.conftest import COGS, FLOW
from tests.cogs.labelling.posts.test_reaction_replay import accepted_prompt
from tests.faults.fault_harness import held_reactions_in, shown_reactions, vote_mismatches_in
from tests.faults.postgres_server import private_server

OUTAGE = float(os.environ.get("FAULTS_DB_OUTAGE_SECONDS", "10"))
DATABASE_BUSY = "the database is busy"
RECORDED = "Thank you, recorded!"
VOTES = frozenset(VOTE_EMOJI)
WRITERS, REVIEWERS, ASKERS, BOARD_READERS, POST_WRITERS, REACTORS, REACTIONS = 6, 3, 4, 4, 2, 10, 60
# A post's Write button must open its box within Discord's 3 s: while the database is away it says so.
WRITE_ON_POST = "Write on a post"


@dataclass
class Tally:
    """What each request during the outage came to."""

    succeeded: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    recorded_prompts: list[str] = field(default_factory=list)
    refused_prompts: list[str] = field(default_factory=list)
    refused_reviews: list[int] = field(default_factory=list)  # task ids
    refused_task_takers: list[int] = field(default_factory=list)  # Discord ids of members refused a task

    def summary(self) -> str:
        return (f"requests during the outage: waited and succeeded {len(self.succeeded)}, "
                f"refused politely {len(self.refused)}")


def texts_of(message: Any) -> str:
    parts = [message.content or ""]
    for embed in message.embeds:
        parts += [embed.get("title") or "", embed.get("description") or ""]
        parts += [f.get("value", "") for f in embed.get("fields", [])]
    return "\n".join(parts)


def new_messages(interaction: Any) -> list[Any]:
    """The messages the bot sent as the answer (its response, follow-ups), once filled in."""
    return [m for m in interaction.messages if not m.loading]


async def outcome(emu: Any, interaction: Any, succeeded: Any, tally: Tally, what: str, *, within: float,
                  updated: Any = None) -> str:
    """Wait for the answer to a request: "ok" when ``succeeded(messages)`` (the new messages and the one
    the request may update), "refused" for the polite sentence; anything else is a failure (another
    error, "did not respond", no answer)."""
    def decided() -> str | None:
        if 10062 in interaction.errors:
            return "no response in time"
        shown = new_messages(interaction)
        if any(DATABASE_BUSY in texts_of(m).lower() for m in shown):
            return "refused"
        if succeeded([*shown, *([updated] if updated is not None else [])]):
            return "ok"
        if shown:
            return "wrong answer: " + " | ".join(texts_of(m)[:200] for m in shown)
        return None

    try:
        result = await emu.wait_for(decided, timeout=within, what=f"the answer to {what}")
    except EmulatorTimeout:
        result = "no answer"
    if result == "ok":
        tally.succeeded.append(what)
    elif result == "refused":
        tally.refused.append(what)
    else:
        tally.failed.append(f"{what}: {result}")
    return result


def has_task(shown: list[Any]) -> bool:
    return any(any(c.startswith("lt:b:") for c in m.custom_ids) for m in shown)


def recorded(shown: list[Any]) -> bool:
    return any(m.embeds and m.embeds[0].get("title") == RECORDED for m in shown)


def has_embed(shown: list[Any]) -> bool:
    return any(m.embeds for m in shown)


async def open_write_modal(user: Any) -> tuple[Any, Any]:
    """/task prompt and Write: the task message and the interaction answered with the modal."""
    asked = await user.slash("task", {"kind": "prompt"})
    task = await asked.wait_message(lambda m: any(c.startswith("lt:b:write:") for c in m.custom_ids), timeout=30)
    write = next(c for c in task.custom_ids if c.startswith("lt:b:write:"))
    opened = await user.click(task, write)
    await opened.wait_modal(timeout=30)
    return task, opened


async def review_until_confirm(emu: Any, user: Any, rng: random.Random) -> tuple[Any, str]:
    """/task review, every label answered: the task message and its Confirm button, not clicked yet."""
    asked = await user.slash("task", {"kind": "review"})
    message = await asked.wait_message(lambda m: any(c.startswith("lt:b:confirm:") for c in m.custom_ids),
                                       timeout=30)
    for _ in range(20):
        pending = [c for c in message.custom_ids if c.startswith("lt:s:label:")
                   and not any(o.get("default") for o in message.find_component(c)["options"])]
        more = [c for c in message.custom_ids if c.startswith("lt:b:page:")
                and message.find_component(c)["label"].startswith("More")]
        if not pending and not more:
            return message, next(c for c in message.custom_ids if c.startswith("lt:b:confirm:"))
        before = len(message.history)
        if pending:
            options = [o["label"] for o in message.find_component(pending[0])["options"]]
            await user.select(message, pending[0], ["0" if options == ["Yes", "No"] else str(rng.randrange(5))])
        else:
            await user.click(message, more[0])
        await emu.wait_for(lambda b=before: len(message.history) > b or None, timeout=30)
    raise AssertionError("the review never offered its Confirm button")


@contextlib.asynccontextmanager
async def sqlite_locked(path: Any) -> AsyncIterator[None]:
    """Another program holds the write lock (``BEGIN EXCLUSIVE``, as a backup tool or the sqlite3 shell
    would) until the block ends. Taken in a thread: it may wait for a write of the bot to finish."""
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=60)
    await asyncio.to_thread(holder.execute, "BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        await asyncio.to_thread(holder.execute, "ROLLBACK")
        holder.close()


@contextlib.asynccontextmanager
async def postgres_restarted(server: Any) -> AsyncIterator[None]:
    """The server stopped (a fast shutdown ends every session) until the block ends, then started again."""
    await server.stop()
    try:
        yield
    finally:
        await server.start()


def settings_for(url: str, *, busy_timeout: float, chat: bool, **extra: Any) -> Settings:
    model = bundled_smollm2_path() if chat else None
    chat_settings = ({"model_path": str(model), "threads": 1, "context_size": 1024, "max_reply_tokens": 4,
                      "seed": 1} if model else {"enabled": False})
    return Settings(database={"url": url, "busy_timeout_seconds": busy_timeout},
                    discord={"cogs": [*COGS, "cogs.chat"] if model else COGS}, chat=chat_settings,
                    labelling={**FLOW, "p_full_labeling_review_prompt": 0.0},
                    posts={"first_post_delay_seconds": 3600}, **extra)


async def half_written(connection: Any) -> list[str]:
    """Rows one transaction writes together, found apart."""
    checks = {
        "prompt task done without its prompt": (
            "SELECT t.id FROM tasks t WHERE t.kind = 'initial_prompt' AND t.state = 'done' AND NOT EXISTS "
            "(SELECT 1 FROM messages m WHERE m.tree_id = t.tree_id AND m.parent_id IS NULL "
            "AND m.author_id = t.user_id)"),
        "prompt without its done task": (
            "SELECT m.id FROM messages m WHERE m.parent_id IS NULL AND NOT EXISTS (SELECT 1 FROM tasks t "
            "WHERE t.kind = 'initial_prompt' AND t.state = 'done' AND t.tree_id = m.tree_id "
            "AND t.user_id = m.author_id)"),
        "labels of a task not done": (
            "SELECT l.id FROM labels l JOIN tasks t ON t.id = l.task_id WHERE t.state <> 'done'"),
        "review task done without labels": (
            "SELECT t.id FROM tasks t WHERE t.kind LIKE 'label_%' AND t.state = 'done' AND NOT EXISTS "
            "(SELECT 1 FROM labels l WHERE l.task_id = t.id)"),
        "points event of a task not done": (
            "SELECT e.id FROM score_events e JOIN tasks t ON t.id = e.task_id WHERE t.state <> 'done'"),
        "points total not the sum of its events": (
            "SELECT u.id FROM users u WHERE abs(u.points - (SELECT coalesce(sum(e.points), 0) FROM score_events e "
            "WHERE e.user_id = u.id)) > 1e-6"),
        "daily points not the sum of their events": (
            "SELECT u.id FROM users u WHERE abs((SELECT coalesce(sum(d.points), 0) FROM score_daily d "
            "WHERE d.user_id = u.id) - (SELECT coalesce(sum(e.points), 0) FROM score_events e "
            "WHERE e.user_id = u.id)) > 1e-6"),
    }
    problems = []
    for what, query in checks.items():
        rows = (await connection.execute(text(query))).all()
        if rows:
            problems.append(f"{what}: {[r[0] for r in rows][:10]}")
    return problems


async def members_work_through_an_outage(emu: Any, bot: Any, guild: Any, outage: Any, *,
                                         wait_seconds: float) -> Tally:
    """Members prepare work, then act while ``outage`` holds (the outage lasts OUTAGE seconds); returns what
    their requests came to, after checking what the database holds."""
    general = guild.channel("general")
    mod = await emu.create_user("mod", guild=guild, moderator=True)
    users = [await emu.create_user(f"member{i}", guild=guild) for i in range(40)]
    labelling = bot.services.labelling
    await accepted_prompt(labelling, "Which metals conduct heat best, and why?")
    for i in range(REVIEWERS + 2):  # prompts waiting for review, by authors who are not on the server
        author = await labelling.get_or_create_user(910_000 + i)
        offer = await labelling.request_task(author.id, kinds=TaskKind.INITIAL_PROMPT)
        await labelling.submit_initial_prompt(offer.task_id, author.id, f"Seeded question {i}: how do bees navigate?")
    posts = []
    for name, kind in (("reviews", "review"), ("replies", "reply")):
        channel = guild.channel(name)
        await (await mod.slash("admin channel set", {"channel": channel, "kinds": kind}, channel=general)).wait_message()
        ref = await bot.get_cog("Posts").post_next(channel.id)
        posts.append(emu.get_message(ref.discord_message_id))

    rng = random.Random(1411)
    pool = iter(users)

    def members(count: int) -> list[Any]:
        return [next(pool) for _ in range(count)]

    writers = [(user, *await open_write_modal(user)) for user in members(WRITERS)]
    reviewers = [(user, *await review_until_confirm(emu, user, rng)) for user in members(REVIEWERS)]
    askers, readers, post_writers = members(ASKERS), members(BOARD_READERS), members(POST_WRITERS)
    chatting = members(2) if bot.get_cog("Chat") else []
    reactors = members(REACTORS)
    tally = Tally()
    answer_within = wait_seconds + OUTAGE + 60

    given_back: list[tuple[Any, Any, str]] = []

    async def submit_prompt(user: Any, task: Any, opened: Any) -> None:
        prompt = f"Outage prompt from {user.username}: why do cats purr at {rng.random():.6f}?"
        done = await opened.submit_modal({"lt:text": prompt})
        result = await outcome(emu, done, recorded, tally, f"prompt by {user.username}", within=answer_within,
                               updated=task)
        if result == "ok":
            tally.recorded_prompts.append(prompt)
        elif result == "refused":
            tally.refused_prompts.append(prompt)
            given_back.append((user, done, prompt))

    async def confirm_review(user: Any, message: Any, confirm: str) -> None:
        clicked = await user.click(message, confirm)
        if await outcome(emu, clicked, recorded, tally, f"review by {user.username}", within=answer_within,
                         updated=message) == "refused":
            tally.refused_reviews.append(int(confirm.split(":")[3]))

    async def ask_task(user: Any) -> None:
        if await outcome(emu, await user.slash("task"), has_task, tally, f"/task by {user.username}",
                         within=answer_within) == "refused":
            tally.refused_task_takers.append(user.id)

    async def read_board(user: Any, command: str) -> None:
        await outcome(emu, await user.slash(command), has_embed, tally, f"/{command} by {user.username}",
                      within=answer_within)

    async def write_on_post(user: Any) -> None:
        clicked = await user.click(posts[1], "lp:write")
        if await outcome(emu, clicked, lambda shown: clicked.modal is not None, tally,
                         f"{WRITE_ON_POST} by {user.username}", within=answer_within) == "refused":
            tally.refused_task_takers.append(user.id)

    async def chat(user: Any) -> None:
        asked = await user.dm(f"Say hello to {user.username}.")
        try:
            answer = await emu.wait_for_message(
                user, lambda m: bool(m.components) or DATABASE_BUSY in m.content.lower() or "*Sorry," in m.content,
                after=asked, timeout=answer_within)
        except EmulatorTimeout:
            tally.failed.append(f"chat with {user.username}: no answer")
            return
        if DATABASE_BUSY in answer.content.lower():
            tally.refused.append(f"chat with {user.username}")
        elif answer.components:
            tally.succeeded.append(f"chat with {user.username}")
        else:
            tally.failed.append(f"chat with {user.username}: {answer.content[:200]}")

    async def toggle(user: Any) -> None:
        post, emoji = rng.choice(posts), rng.choice(sorted(VOTES))
        if user.id in post.reactions.get(emoji, []):
            await user.unreact(post, emoji)
        else:
            await user.react(post, emoji)

    async def at(offset: float, work: Any) -> None:
        await asyncio.sleep(offset)
        await work

    def spread() -> float:
        return rng.uniform(0, OUTAGE * 0.8)

    requests: list[asyncio.Task[None]] = []
    async with outage():
        began = asyncio.get_running_loop().time()
        requests += [asyncio.create_task(at(spread(), submit_prompt(*writer))) for writer in writers]
        requests += [asyncio.create_task(at(spread(), confirm_review(*reviewer))) for reviewer in reviewers]
        requests += [asyncio.create_task(at(spread(), ask_task(user))) for user in askers]
        requests += [asyncio.create_task(at(spread(), read_board(user, ("leaderboard", "profile")[i % 2])))
                     for i, user in enumerate(readers)]
        requests += [asyncio.create_task(at(spread(), write_on_post(user))) for user in post_writers]
        requests += [asyncio.create_task(at(spread(), chat(user))) for user in chatting]
        reactions = [asyncio.create_task(at(spread(), toggle(rng.choice(reactors)))) for _ in range(REACTIONS)]
        await asyncio.gather(*reactions)
        await asyncio.sleep(max(0.0, OUTAGE - (asyncio.get_running_loop().time() - began)))
    await asyncio.gather(*requests)

    # Reactions have no answer to wait for: the database must come to hold what the emulator shows.
    expected = shown_reactions(posts, emu.bot_user.id, VOTES)
    engine = bot.services.engine
    held: Counter = Counter()
    for _ in range(int(answer_within * 10)):
        async with engine.connect() as connection:
            held = await held_reactions_in(connection)
        if set(held) == expected:
            break
        await asyncio.sleep(0.1)
    assert set(held) == expected, f"missing {sorted(expected - set(held))[:5]}, extra {sorted(set(held) - expected)[:5]}"
    assert max(held.values(), default=1) == 1
    await bot.get_cog("Posts").wait_for_edits()

    # Still connected, and working: a fresh prompt goes through.
    assert emu.gateway.connected
    late = await emu.create_user("latecomer", guild=guild)
    task, opened = await open_write_modal(late)
    done = await opened.submit_modal({"lt:text": "After the outage: how do glaciers move?"})
    assert await outcome(emu, done, recorded, Tally(), "the latecomer's prompt", within=60,
                         updated=task) == "ok"

    async def stored_prompts() -> Counter:
        async with engine.connect() as connection:
            assert await vote_mismatches_in(connection) == []
            assert await half_written(connection) == []
            return Counter(row[0] for row in (await connection.execute(text("SELECT text FROM messages"))).all())

    stored = await stored_prompts()
    async with engine.connect() as connection:  # a refusal stored nothing: no task taken, no review recorded
        taken = (await connection.execute(text("SELECT u.discord_id FROM tasks t JOIN users u ON u.id = t.user_id"))).all()
        assert {row[0] for row in taken} & set(tally.refused_task_takers) == set()
        # (Still offered, or withdrawn since: other reviews may have decided the text meanwhile.)
        states = dict((await connection.execute(text("SELECT id, state FROM tasks"))).all())
        assert [task for task in tally.refused_reviews if states[task] == "done"] == []
    assert {prompt: stored[prompt] for prompt in tally.recorded_prompts} == dict.fromkeys(tally.recorded_prompts, 1)
    assert {prompt: stored[prompt] for prompt in tally.refused_prompts} == dict.fromkeys(tally.refused_prompts, 0)
    assert tally.failed == [], tally.failed

    # A refused text came back with a Write again button, whose box holds it: sent again, it is recorded.
    for user, done, prompt in given_back:
        note = next(m for m in new_messages(done) if any(c.startswith("lt:b:again:") for c in m.custom_ids))
        again = await user.click(note, next(c for c in note.custom_ids if c.startswith("lt:b:again:")))
        await again.wait_modal(timeout=30)
        assert [c.get("value") for c in again.modal_inputs() if c.get("custom_id") == "lt:text"] == [prompt]
        resent = await again.submit_modal({"lt:text": prompt})
        assert await outcome(emu, resent, recorded, Tally(), f"{user.username}'s prompt again", within=60,
                             updated=note) == "ok"
    stored = await stored_prompts()
    everything = tally.recorded_prompts + tally.refused_prompts
    assert {prompt: stored[prompt] for prompt in everything} == dict.fromkeys(everything, 1)
    return tally


def outage_log(caplog: Any) -> str:
    """Each request that failed is one log line, never a traceback; how many lines the outage cost."""
    tracebacks = [r.getMessage() for r in caplog.records if r.exc_info and r.levelno >= logging.WARNING]
    assert tracebacks == [], tracebacks[:5]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], errors[:5]
    lines = [r for r in caplog.records if r.levelno == logging.WARNING and r.name.startswith(("bot", "cogs"))]
    return f"{len(lines)} warning lines, 0 tracebacks"


# busy_timeout_seconds against the outage: longer (requests wait it out) or much shorter (they are refused).
SCENARIOS = {"waits": max(30.0, 3 * OUTAGE), "refuses": 1.0}


def check_scenario(scenario: str, tally: Tally) -> None:
    if scenario == "waits":
        assert [what for what in tally.refused if not what.startswith(WRITE_ON_POST)] == []
    else:
        assert tally.refused and tally.refused_prompts, "the outage refused nothing: nothing was tested"


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_sqlite_locked(scenario, emulator, start_bot, tmp_path, caplog):  # noqa: F811
    """Another program holds the SQLite file's write lock for 10 s: with a longer busy timeout every
    request waits and succeeds; with a shorter one they are refused politely and store nothing, and
    reactions are retried until they are stored."""
    guild = await emulator.create_guild("Outage", channels=["general", "reviews", "replies"])
    db_path = tmp_path / "bot.db"
    wait = SCENARIOS[scenario]
    settings = settings_for(f"sqlite+aiosqlite:///{db_path}", busy_timeout=wait, chat=True)
    async with start_bot(settings) as bot:
        tally = await members_work_through_an_outage(emulator, bot, guild, lambda: sqlite_locked(db_path),
                                                     wait_seconds=wait)
    check_scenario(scenario, tally)
    print(f"\nSQLite locked {OUTAGE:g} s, busy timeout {wait:g} s: {tally.summary()}, half-written 0; "
          f"log: {outage_log(caplog)}")


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_postgres_restarted(scenario, emulator, start_bot, caplog):  # noqa: F811
    """The PostgreSQL server stopped for 10 s and started again: requests wait for it, or are refused
    politely when the busy timeout is shorter; the bot works on without a restart, reactions are all
    stored, and the scheduled jobs (which fail meanwhile with the short timeout) run again."""
    caplog.set_level(logging.DEBUG, logger="bot.jobs")
    guild = await emulator.create_guild("Outage", channels=["general", "reviews", "replies"])
    wait = SCENARIOS[scenario]
    every = OUTAGE / 5 / 60  # minutes: the jobs run several times during the outage
    async with private_server() as server:
        settings = settings_for(server.url, busy_timeout=wait, chat=True,
                                scheduler={"expire_tasks_minutes": every, "tree_maintenance_minutes": every})
        async with start_bot(settings) as bot:
            tally = await members_work_through_an_outage(emulator, bot, guild, lambda: postgres_restarted(server),
                                                         wait_seconds=wait)
            restarted = len(caplog.records)
            await emulator.wait_for(lambda: any(r.getMessage().startswith("job expire_tasks runs")
                                                for r in caplog.records[restarted:]) or None, timeout=60,
                                    what="a job run after the restart")
    check_scenario(scenario, tally)
    failed_jobs = [r for r in caplog.records[:restarted] if "failed, the database is unavailable" in r.getMessage()]
    if scenario == "refuses":
        assert failed_jobs, "no job ran into the outage: nothing was tested"
    print(f"\nPostgreSQL stopped {OUTAGE:g} s, busy timeout {wait:g} s: {tally.summary()}, half-written 0; "
          f"job runs failed {len(failed_jobs)}, then ran again; log: {outage_log(caplog)}")


async def test_a_post_the_database_could_not_record_is_taken_back(emulator, start_bot, tmp_path):  # noqa: F811
    """A channel post goes out while the database is locked past the busy timeout: the message was sent
    but could not be recorded, so it is deleted (members would react on it for nothing) and the run
    fails; the next run posts and records it."""
    guild = await emulator.create_guild("Outage", channels=["general", "replies"])
    mod = await emulator.create_user("mod", guild=guild, moderator=True)
    db_path = tmp_path / "bot.db"
    replies = guild.channel("replies")
    async with start_bot(settings_for(f"sqlite+aiosqlite:///{db_path}", busy_timeout=1, chat=False)) as bot:
        await accepted_prompt(bot.services.labelling, "Which metals conduct heat best, and why?")
        await (await mod.slash("admin channel set", {"channel": replies, "kinds": "reply"},
                               channel=guild.channel("general"))).wait_message()
        posts = bot.get_cog("Posts")
        async with sqlite_locked(db_path):
            with pytest.raises(Exception) as failed:
                await posts.post_next(replies.id)
        assert is_unavailable(failed.value)
        sent = [m for m in replies.messages.values() if m.author.id == emulator.bot_user.id]
        assert len(sent) == 1 and sent[0].deleted
        ref = await posts.post_next(replies.id)
        shown = [m for m in replies.visible_messages() if m.author.id == emulator.bot_user.id]
        async with bot.services.engine.connect() as connection:
            recorded_posts = (await connection.execute(text("SELECT discord_message_id FROM bot_posts"))).all()
        assert [m.id for m in shown] == [row[0] for row in recorded_posts] == [ref.discord_message_id]
