"""Hypothesis against every slash command the bot registered (read back from the emulator, so a new command
is covered without touching this file), forged custom_ids and the task modal's text input, with valid and
hostile values: control characters, 10,000 characters, @everyone / <@id> / <@&id> mentions, markdown,
zero-width and right-to-left characters, and custom_ids with wrong types (letters, negative or huge ids).

For every example: the bot answers (no missed interaction), logs no error (no unhandled exception), and
every message it sends or edits carries allowed_mentions that ping nobody. A forged custom_id is refused
politely and changes nothing in the database; a refused text changes nothing; an
accepted text is stored as written. The bot and the emulator run on their own event loop in a thread, so
Hypothesis drives them from ordinary (synchronous) tests.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.app import OABot
from emulator import Emulator
from emulator.actors import ActionError
from emulator.testing import run_client
from storage.models import Message
from tests.cogs.conftest import database_dump
from tests.cogs.labelling.posts.conftest import posts_settings

SLASH, SUB_COMMAND, SUB_GROUP = 1, 1, 2
STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE, MENTIONABLE, NUMBER, ATTACHMENT = 3, 4, 5, 6, 7, 8, 9, 10, 11
FUZZ = settings(max_examples=8, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))
# Per command path 8 examples (27 paths today); the custom_id and text-input strategies get 30 each.
MORE = settings(FUZZ, max_examples=30)
MESSAGE_COMPONENT = 3


class World:
    """The emulator and the real bot on an event loop in a thread."""

    def __init__(self, tmp_path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.errors: list[str] = []
        self.tmp_path = tmp_path

    def run(self, coro, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def start(self) -> None:
        self.emu = Emulator()
        await self.emu.start()
        self.guild = await self.emu.create_guild("Fuzz", channels=["general", "tasks"])
        self.role = await self.emu.create_role(self.guild, "helpers", mentionable=True)
        self.mod = await self.emu.create_user("mod", guild=self.guild, moderator=True)
        self.member = await self.emu.create_user("member", guild=self.guild)
        self.mallory = await self.emu.create_user("mallory", guild=self.guild)
        self.bot = OABot(posts_settings(self.tmp_path))
        self.client = run_client(self.bot, self.emu, timeout=60)
        await self.client.__aenter__()
        # Mallory exists in the database (first contact), so a refusal has nothing to create.
        await (await self.mallory.slash("profile")).wait_response(timeout=10)

    async def stop(self) -> None:
        await self.client.__aexit__(None, None, None)
        await self.emu.stop()


class ErrorLog(logging.Handler):
    def __init__(self, world: World) -> None:
        super().__init__(logging.ERROR)
        self.world = world

    def emit(self, record: logging.LogRecord) -> None:
        self.world.errors.append(record.getMessage()[:500])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    world = World(tmp_path_factory.mktemp("fuzz"))
    handler = ErrorLog(world)
    logging.getLogger().addHandler(handler)
    try:
        world.run(world.start())
        yield world
        world.run(world.stop())
    finally:
        logging.getLogger().removeHandler(handler)
        world.loop.call_soon_threadsafe(world.loop.stop)
        world.thread.join(10)


def hostile_texts(world: World) -> st.SearchStrategy[str]:
    tricky = [
        "@everyone", "@here", f"<@{world.member.id}>", f"<@!{world.mod.id}>", f"<@&{world.role.id}>",
        f"<@&{world.guild.id}>", "**bold** __under__ ~~gone~~ `code` ```py\nx\n``` ||spoiler|| # Title\n> quote",
        "\u200b" * 40, "\u202eoverride", "\x00\x01\x07\x1b[31mred\x7f", "\r\n\t" * 20, "a" * 10_000,
        "<#1> <:emoji:1> <t:0:R> [link](https://example.com/@everyone)", "", " ", "ünïcödé 👍🏽 中文",
    ]
    pieces = st.one_of(st.sampled_from(tricky), st.text(max_size=60))
    return st.lists(pieces, min_size=1, max_size=4).map("".join)


def leaves(options: list[dict], path: list[str]) -> list[tuple[str, list[dict]]]:
    subs = [o for o in options if o["type"] in (SUB_COMMAND, SUB_GROUP)]
    if not subs:
        return [(" ".join(path), options)]
    return [leaf for sub in subs for leaf in leaves(sub.get("options") or [], [*path, sub["name"]])]


def option_value(world: World, option: dict) -> st.SearchStrategy[Any]:
    if option.get("choices"):
        return st.sampled_from([c["value"] for c in option["choices"]])
    kind = option["type"]
    if kind == STRING:
        low, high = option.get("min_length", 0), option.get("max_length", 6000)
        return hostile_texts(world).map(lambda t: (t + "x" * low)[:high] if len(t) < low else t[:high])
    if kind in (INTEGER, NUMBER):
        low, high = option.get("min_value", -(2**53)), option.get("max_value", 2**53)
        numbers = st.integers(int(low), int(high)) if kind == INTEGER else st.floats(low, high, allow_nan=False)
        return st.one_of(numbers, st.sampled_from([low, high]))
    if kind == BOOLEAN:
        return st.booleans()
    if kind in (USER, MENTIONABLE):
        return st.sampled_from([world.member, world.mod, world.mallory, world.emu.bot_user])
    if kind == CHANNEL:
        return st.sampled_from(list(world.guild.channels.values()))
    if kind == ROLE:
        return st.sampled_from(list(world.guild.roles.values()))
    if kind == ATTACHMENT:
        return st.tuples(st.sampled_from(["a.txt", "../../etc/passwd", "x" * 200]), st.binary(max_size=2000))
    raise AssertionError(f"option type {kind} is not fuzzed yet")


def mentions_allowed(call_body: Any) -> list[Any]:
    """Payloads with text the bot sent that would ping someone (allowed_mentions missing or allowing it)."""
    found = []

    def walk(node: Any, allowed: Any) -> None:
        if isinstance(node, dict):
            allowed = node.get("allowed_mentions", allowed)
            if ("content" in node or "embeds" in node) and (
                    allowed is None or allowed.get("parse") or allowed.get("users") or allowed.get("roles")
                    or allowed.get("replied_user")):
                if any(token in json.dumps(node) for token in ("@everyone", "@here", "<@")):
                    found.append(node)
            for value in node.values():
                walk(value, allowed)
        elif isinstance(node, list):
            for value in node:
                walk(value, allowed)

    walk(call_body, None)
    return found


async def answered(world: World, interaction: Any) -> Any:
    response = await interaction.wait_response(timeout=15)
    if response.kind == "deferred":
        await interaction.wait_message(timeout=30)
    assert 10062 not in interaction.errors and 40060 not in interaction.errors
    return response


def check_world(world: World, calls_before: int) -> None:
    world.run(world.bot.get_cog("Posts").wait_for_edits())
    assert world.errors == [], world.errors
    pinging = [p for call in list(world.emu.calls)[calls_before:] for p in mentions_allowed(call.body)]
    assert pinging == [], pinging[:2]


def slash_fuzzer(world: World, path: str, options: list[dict], user: Any):
    @FUZZ
    @given(data=st.data())
    def fuzz(data):
        values = {}
        for option in options:
            if option.get("required") or data.draw(st.booleans(), label=f"give {option['name']}"):
                values[option["name"]] = data.draw(option_value(world, option), label=option["name"])
        before = len(world.emu.calls)
        channel = world.guild.channel(data.draw(st.sampled_from(["general", "tasks"])))

        async def run():
            await answered(world, await user.slash(path, values, channel=channel))

        world.run(run())
        check_world(world, before)

    return fuzz


def test_every_slash_command_with_hostile_options(world):
    commands = [c for c in world.emu.commands.values() if c.type == SLASH]
    assert len(commands) >= 8  # the bot's commands, read back: nothing hard-coded here
    covered = []
    for command in commands:
        for path, options in leaves(command.options, [command.name]):
            user = world.mod if command.name == "admin" else world.member
            slash_fuzzer(world, path, options, user)()
            covered.append(path)
    print(f"\nfuzzed {len(covered)} slash command paths: {', '.join(covered)}")


def test_forged_custom_ids_are_refused_and_change_nothing(world):
    # Real custom_ids to mutate: those of a task message the member was offered.
    async def offered():
        it = await world.member.slash("task", {"kind": "prompt"})
        return await it.wait_message(timeout=15)

    message = world.run(offered())
    shapes = sorted({cid.split(":")[0] + ":" + cid.split(":")[1] for cid in message.custom_ids}
                    | {"lp:write", "lp:review", "lp:rank", "lt:s:label", "lt:m", "chat:up", "chat:regen"})
    pieces = st.one_of(st.integers(-(10**20), 10**20).map(str), hostile_texts(world).map(lambda t: t[:40]),
                       st.sampled_from(["p", "r", "", "0", "NaN", "1e9"]))

    kinds: Counter = Counter()

    @MORE
    @given(shape=st.sampled_from(shapes), parts=st.lists(pieces, max_size=4))
    def fuzz(shape, parts):
        custom_id = ":".join([shape, *parts])[:100]

        async def run():
            if custom_id in message.custom_ids:
                return
            sessions = world.bot.services.sessions
            dump = await database_dump(sessions)
            it = world.emu.new_interaction(world.mallory, message.channel, MESSAGE_COMPONENT,
                                           {"custom_id": custom_id, "component_type": 2}, message=message)
            try:
                response = await asyncio.wait_for(it.wait_response(timeout=3), 5)
            except Exception:
                # discord.py answers nothing for a custom_id no item claims, as for any unknown component;
                # then nothing may have changed either.
                response = None
            kinds[response.kind if response else "none"] += 1
            if response is not None and response.kind != "modal":
                shown = it.original or (response.message if response else None)
                assert shown is None or shown.ephemeral or response.kind == "update"
            assert await database_dump(sessions) == dump

        before = len(world.emu.calls)
        world.run(run())
        check_world(world, before)

    fuzz()
    print(f"\nforged custom_ids answered: {dict(kinds)}")
    assert kinds["message"] + kinds["update"] >= 2  # refusals were seen, not only silence


def test_task_text_input_hostile_texts(world):
    seen: Counter = Counter()

    @MORE
    @given(text=st.one_of(hostile_texts(world), st.text(min_size=1, max_size=300)))
    def fuzz(text):
        async def run():
            sessions = world.bot.services.sessions
            it = await world.mallory.slash("task", {"kind": "prompt"})
            offer = await it.wait_message(timeout=15)
            write = [c for c in offer.custom_ids if c.startswith("lt:b:write:")]
            if not write:
                return
            opened = await world.mallory.click(offer, write[0])
            await answered(world, opened)
            dump = await database_dump(sessions)
            offered = offer.embeds[0].get("title")
            try:
                done = await opened.submit_modal({"lt:text": text[:4000]})
            except ActionError:
                return  # Discord itself would not send it (e.g. an empty required input)
            await answered(world, done)
            shown = await world.emu.wait_for(
                lambda: (done.followups[0] if done.followups else None)
                or (offer if offer.embeds and offer.embeds[0].get("title") != offered else None), timeout=15)
            seen[shown.embeds[0].get("title")] += 1
            if shown.embeds[0].get("title") != "Thank you, recorded!":
                assert await database_dump(sessions) == dump  # refused: nothing changed
            else:
                async with sessions() as session:
                    from sqlalchemy import select
                    stored = await session.scalar(select(Message.text).order_by(Message.id.desc()).limit(1))
                assert stored.strip() == text[:4000].strip()

        before = len(world.emu.calls)
        world.run(run())
        check_world(world, before)

    fuzz()
    print(f"\ntext inputs: {dict(seen)}")
    assert sum(seen.values()) >= 4  # the modal was reached, not skipped
