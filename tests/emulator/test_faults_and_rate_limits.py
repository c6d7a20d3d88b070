"""Dropped connections, duplicated events, invalid sessions, injected 5xx/429/latency, and rate limits."""

from __future__ import annotations

import aiohttp
import discord
import pytest

from emulator import Emulator
from emulator.testing import run_client

EDIT = "PATCH /channels/{channel_id}/messages/{message_id}"
EDIT_ORIGINAL = "PATCH /webhooks/{webhook_id}/{webhook_token}/messages/@original"
SEND = "POST /channels/{channel_id}/messages"
CALLBACK = "POST /interactions/{interaction_id}/{interaction_token}/callback"


@pytest.fixture
async def world(emulator: Emulator, sample_bot):
    guild = await emulator.create_guild("Test Guild")
    alice = await emulator.create_user("alice", guild=guild)
    async with run_client(sample_bot, emulator):
        yield emulator, guild, alice, sample_bot


async def test_dropped_connection_resumes_and_delivers_every_event_exactly_once(world):
    emu, guild, alice, bot = world
    general = guild.channel("general")
    for i in range(3):
        await alice.send(general, f"m{i}")
    await emu.wait_for(lambda: len(bot.seen_messages) == 3)
    # These three are queued for the socket but not yet written when the connection dies: lost in flight.
    for i in range(3, 6):
        await alice.send(general, f"m{i}")
    assert emu.gateway.drop() == 1
    # And these happen while the bot is disconnected.
    for i in range(6, 9):
        await alice.send(general, f"m{i}")
    await emu.wait_for(lambda: emu.gateway.resume_count == 1 and len(bot.seen_messages) >= 9)
    await alice.send(general, "after")
    await emu.wait_for(lambda: "after" in bot.seen_messages)
    assert bot.seen_messages == [f"m{i}" for i in range(9)] + ["after"]
    assert emu.gateway.identify_count == 1
    assert emu.gateway.events("RESUMED")


async def test_duplicated_dispatch_reaches_the_bot_twice(world):
    emu, guild, alice, bot = world
    emu.gateway.duplicate_next("MESSAGE_CREATE")
    await alice.send(guild.channel("general"), "once or twice?")
    await alice.send(guild.channel("general"), "marker")
    await emu.wait_for(lambda: "marker" in bot.seen_messages)
    assert bot.seen_messages == ["once or twice?", "once or twice?", "marker"]


async def test_invalid_session_makes_the_client_identify_again(world):
    emu, guild, alice, bot = world
    emu.gateway.invalidate(resumable=False)
    await emu.wait_for(lambda: emu.gateway.identify_count == 2 and emu.gateway.connected)
    sent = await alice.dm("still there?")
    assert (await emu.wait_for_message(alice, after=sent)).content == "you said: still there?"


async def test_reconnect_request_is_followed_by_a_resume(world):
    emu, guild, alice, bot = world
    emu.gateway.reconnect()
    await emu.wait_for(lambda: emu.gateway.resume_count == 1 and emu.gateway.connected)
    sent = await alice.dm("after reconnect")
    assert (await emu.wait_for_message(alice, after=sent)).content == "you said: after reconnect"
    assert emu.gateway.identify_count == 1


async def test_streamed_edits_are_paced_by_the_rate_limit_headers(world):
    emu, guild, alice, bot = world
    emu.rate_limits.set_edit_limit(3, 0.3)  # Discord's 5 per 5 s, scaled down
    interaction = await alice.slash("stream", {"words": 10}, channel=guild.channel("general"))
    message = await interaction.wait_message(lambda m: m.content.endswith("w9"), timeout=10)
    assert message.contents[-1] == " ".join(f"w{i}" for i in range(10))
    assert len(message.edits) == 10
    statuses = [c.status for c in emu.calls_to(EDIT_ORIGINAL)]
    # discord.py waits when X-RateLimit-Remaining hits 0, so a faithful server never needs a 429 here.
    assert statuses == [200] * 10
    assert emu.rate_limit_violations == []


async def test_client_ignoring_the_headers_gets_429s(emulator: Emulator):
    emu = emulator
    emu.rate_limits.set_edit_limit(2, 30)
    guild = await emu.create_guild()
    channel = guild.channel("general")
    msg = emu.post_message(channel, emu.bot_user, {"content": "x"})
    url = f"{emu.rest_url}/channels/{channel.id}/messages/{msg.id}"
    headers = {"Authorization": f"Bot {emu.token}"}
    async with aiohttp.ClientSession() as session:
        answers = []
        for i in range(3):
            async with session.patch(url, json={"content": str(i)}, headers=headers) as resp:
                answers.append((resp.status, dict(resp.headers), await resp.json()))
    assert [a[0] for a in answers] == [200, 200, 429]
    assert answers[1][1]["X-RateLimit-Remaining"] == "0"
    status, limited_headers, body = answers[2]
    assert body["message"] == "You are being rate limited." and body["global"] is False
    assert 0 < body["retry_after"] <= 30
    assert int(limited_headers["Retry-After"]) >= 1
    assert limited_headers["X-RateLimit-Limit"] == "2" and limited_headers["Via"]
    assert msg.content == "1"


async def test_injected_429_on_an_edit_is_obeyed(world):
    emu, guild, alice, bot = world
    channel = bot.get_channel(guild.channel("general").id)
    sent = await channel.send("draft")
    emu.faults.rate_limit(EDIT, retry_after=0.2)
    await sent.edit(content="final")
    assert [c.status for c in emu.calls_to(EDIT)] == [429, 200]
    # The retry came after Retry-After had passed (the emulator 429s an early retry and records it).
    assert emu.rate_limit_violations == []
    assert emu.get_message(sent.id).contents == ["draft", "final"]


async def test_injected_server_errors(world):
    emu, guild, alice, bot = world
    channel = bot.get_channel(guild.channel("general").id)
    emu.faults.fail(SEND, 503)
    with pytest.raises(discord.DiscordServerError):
        await channel.send("lost")
    emu.faults.fail(SEND, 500)  # discord.py retries a 500 by itself
    await channel.send("kept")
    assert [c.status for c in emu.calls_to(SEND)] == [503, 500, 200]
    assert [m.content for m in emu.bot_messages(guild.channel("general"))] == ["kept"]


async def test_network_latency_can_make_an_interaction_late(world):
    emu, guild, alice, bot = world
    emu.interaction_deadline = 0.1
    emu.faults.delay(CALLBACK, 0.2, times=1)
    interaction = await alice.slash("vote", {"topic": "late"}, channel=guild.channel("general"))
    await emu.wait_for(lambda: interaction.errors)
    assert interaction.errors == [10062] and interaction.response is None


async def test_an_outage_answers_as_discords_edge_does_for_its_window(emulator: Emulator):
    emu = emulator
    guild = await emu.create_guild()
    channel = guild.channel("general")
    url = f"{emu.rest_url}/channels/{channel.id}/messages"
    headers = {"Authorization": f"Bot {emu.token}"}
    answers = []
    async with aiohttp.ClientSession() as session:
        for status in (500, 502, 503):
            emu.faults.fail(SEND, status, seconds=30)
            async with session.post(url, json={"content": "x"}, headers=headers) as resp:
                answers.append((resp.status, resp.content_type, await resp.text(), resp.headers.get("Via")))
            emu.faults.clear()
        # A window ends by itself; until then every call is refused.
        emu.faults.fail(SEND, 503, seconds=0.3)
        statuses = []
        while not statuses or statuses[-1] != 200:
            async with session.post(url, json={"content": "after"}, headers=headers) as resp:
                statuses.append(resp.status)
        emu.faults.rate_limit(SEND, 2.5, seconds=30)
        async with session.post(url, json={"content": "x"}, headers=headers) as resp:
            limited = (resp.status, dict(resp.headers), await resp.json())
    assert [(status, ctype) for status, ctype, _, _ in answers] == [
        (500, "application/json"), (502, "text/html"), (503, "text/plain")]
    assert answers[0][2] == '{"message": "500: Internal Server Error", "code": 0}'
    assert "502 Bad Gateway" in answers[1][2] and "cloudflare" in answers[1][2]
    assert answers[2][2].startswith("upstream connect error") and all(via for *_, via in answers)
    status, limited_headers, body = limited
    # Discord's RatelimitedResponse (openapi.json): Error's code and message, with retry_after and global.
    assert status == 429 and body == {"message": "You are being rate limited.", "retry_after": 2.5,
                                      "global": False, "code": 0}
    assert limited_headers["Retry-After"] == "3" and limited_headers["X-RateLimit-Remaining"] == "0"
    assert float(limited_headers["X-RateLimit-Reset-After"]) == 2.5 and limited_headers["X-RateLimit-Scope"]
    assert {"X-RateLimit-Limit", "X-RateLimit-Reset", "X-RateLimit-Bucket"} <= set(limited_headers)
    assert set(statuses[:-1]) == {503} and [m.content for m in emu.bot_messages(channel)] == ["after"]


async def test_a_lost_answer_and_a_nonce(world):
    emu, guild, alice, bot = world
    channel = bot.get_channel(guild.channel("general").id)
    emu.faults.fail(SEND, 503, handled=True)  # Discord posts it; the answer is lost on the way back
    with pytest.raises(discord.DiscordServerError):
        await channel.send("posted, answer lost")
    assert [m.content for m in emu.bot_messages(guild.channel("general"))] == ["posted, answer lost"]
    # With enforce_nonce (discord.py sends it with every nonce) the same nonce returns the first message.
    first = await channel.send("once", nonce="k1")
    again = await channel.send("once", nonce="k1")
    assert again.id == first.id
    assert [m.content for m in emu.bot_messages(guild.channel("general"))] == ["posted, answer lost", "once"]
