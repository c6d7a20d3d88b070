"""What the playground's web client relies on: its static files, the live feed of messages, the commands a
member is offered, autocomplete over the control API, fixed ids, and a heartbeat answered like a network."""

from __future__ import annotations

import asyncio
import json
import re

import aiohttp
import pytest

from emulator import Emulator
from emulator.gateway import HEARTBEAT_ACK_DELAY
from emulator.testing import run_client
from emulator.web_client import WEB_ROOT


async def test_index_and_control_root_answer_with_and_without_slash(emulator):
    async with aiohttp.ClientSession() as http:
        for path in ("/_emulator", "/_emulator/"):
            async with http.get(emulator.base_url + path) as resp:
                assert resp.status == 200
                assert (await resp.json())["token"] == emulator.token
        async with http.get(emulator.web_url) as resp:
            assert resp.status == 200 and resp.content_type == "text/html"
            page = await resp.text()
        # Every file the page loads, and every module those import, is served from the package.
        wanted = set(re.findall(r'(?:src|href)="(/web/[^"]+)"', page))
        for script in WEB_ROOT.glob("*.js"):
            wanted |= {f"/web/{name}" for name in re.findall(r'from "\./([\w.]+)"', script.read_text())}
        assert {"/web/main.js", "/web/style.css", "/web/render.js"} <= wanted
        for path in wanted:
            async with http.get(emulator.base_url + path) as resp:
                assert resp.status == 200, path
                assert "http://" not in await resp.text() and "https://" not in await resp.text(), path


async def test_live_feed_carries_messages_edits_reactions_and_ephemeral_answers(emulator, sample_bot):
    guild = await emulator.create_guild("G", channels=["general"])
    alice = await emulator.create_user("alice", guild=guild)
    channel = guild.channel("general")
    async with run_client(sample_bot, emulator), aiohttp.ClientSession() as http, \
            http.ws_connect(emulator.control_url + "/live") as live:

        async def next_event(predicate):
            async with asyncio.timeout(10):
                while True:
                    event = json.loads((await live.receive()).data)
                    assert event["type"] == "message"
                    if predicate(event["message"]):
                        return event["message"]

        said = await alice.send(channel, "hello")
        seen = await next_event(lambda m: m["id"] == str(said.id))
        assert seen["content"] == "hello" and seen["revisions"] == 1 and seen["dm_user_id"] is None

        await alice.react(said, "👍")
        seen = await next_event(lambda m: m["id"] == str(said.id) and m["reaction_users"])
        assert seen["reaction_users"] == {"👍": [str(alice.id)]}
        await alice.unreact(said, "👍")
        assert (await next_event(lambda m: m["id"] == str(said.id)))["reaction_users"] == {}

        await alice.slash("stream", {"words": 3}, channel=channel)
        final = await next_event(lambda m: m["content"] == "w0 w1 w2")
        assert final["revisions"] == 4  # posted, then three edits, each sent as it happened

        await alice.dm("hi")
        reply = await next_event(lambda m: m["content"] == "you said: hi")
        assert reply["dm_user_id"] == str(alice.id)

    assert emulator.message_observers == []  # the page went away, its observer too


async def test_offered_commands_and_autocomplete_over_the_control_api(emulator, sample_bot):
    guild = await emulator.create_guild("G", channels=["general"])
    alice = await emulator.create_user("alice", guild=guild)
    mod = await emulator.create_user("mod", guild=guild, moderator=True)
    channel = guild.channel("general")
    async with run_client(sample_bot, emulator), aiohttp.ClientSession() as http:
        async def get(path):
            async with http.get(emulator.control_url + path) as resp:
                assert resp.status == 200
                return await resp.json()

        in_guild = {c["name"] for c in await get(f"/users/{alice.id}/commands?channel_id={channel.id}")}
        assert {"fruit", "vote", "config"} <= in_guild and "admin" not in in_guild
        assert "admin" in {c["name"] for c in await get(f"/users/{mod.id}/commands?channel_id={channel.id}")}
        in_dm = {c["name"] for c in await get(f"/users/{alice.id}/commands")}
        assert "fruit" in in_dm and "config" not in in_dm  # guild-only commands are not offered in DMs

        body = {"name": "fruit", "options": {"name": "ap"}, "focused": "name", "channel_id": str(channel.id)}
        async with http.post(emulator.control_url + f"/users/{alice.id}/autocomplete", json=body) as resp:
            answer = await resp.json()
        assert [c["value"] for c in answer["response"]["choices"]] == ["apple", "apricot"]


async def test_fixed_ids_for_a_playground_that_restarts(emulator):
    guild = await emulator.create_guild("G", channels=(), id=1_459_000_000_000_000_000)
    channel = await emulator.create_channel(guild, "tasks", id=1_459_000_000_000_000_010)
    user = await emulator.create_user("alice", guild=guild, id=1_459_000_000_000_000_100)
    assert (guild.id, channel.id, user.id) == (1_459_000_000_000_000_000, 1_459_000_000_000_000_010,
                                               1_459_000_000_000_000_100)
    with pytest.raises(ValueError, match="already taken"):
        await emulator.create_user("bob", id=user.id)


async def test_heartbeats_are_acknowledged_a_few_milliseconds_later():
    """An instant ACK on loopback races discord.py's keep-alive thread into a false "Can't keep up"; the
    ACK comes at least HEARTBEAT_ACK_DELAY after the beat (later under load, never sooner)."""
    async with Emulator() as emu, aiohttp.ClientSession() as http, http.ws_connect(emu.gateway_url) as ws:
        hello = json.loads((await ws.receive()).data)
        assert hello["op"] == 10
        loop = asyncio.get_running_loop()
        for _ in range(3):
            sent = loop.time()
            await ws.send_json({"op": 1, "d": None})
            ack = json.loads((await ws.receive(timeout=5)).data)
            assert ack["op"] == 11
            assert loop.time() - sent >= HEARTBEAT_ACK_DELAY
