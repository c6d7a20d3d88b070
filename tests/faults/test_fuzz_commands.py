"""Hypothesis against every slash command the bot registered (read back from the emulator, so a new command
is covered without touching this file), with valid and hostile option values: control characters, 10,000
characters, @everyone / <@id> / <@&id> mentions, markdown, zero-width and right-to-left characters, every
member, channel and role. For every example the bot answers, logs no error and pings nobody (see
fuzz_world.py). Buttons, selects, forms and forged custom_ids: test_fuzz_components.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.faults.fuzz_world import (
    DATABASES,
    World,
    answered,
    check_world,
    fuzz_settings,
    hostile_texts,
    running_world,
)

SLASH, SUB_COMMAND, SUB_GROUP = 1, 1, 2
STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE, MENTIONABLE, NUMBER, ATTACHMENT = 3, 4, 5, 6, 7, 8, 9, 10, 11
# Per command path (27 today).
FUZZ = fuzz_settings(8)


@pytest.fixture(scope="module", params=DATABASES)
def world(request, tmp_path_factory):
    yield from running_world(tmp_path_factory.mktemp("fuzz"), request.param)


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
    print(f"\nfuzzed {len(covered)} slash command paths on {world.database}: {', '.join(covered)}")
