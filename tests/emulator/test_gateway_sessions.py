"""Gateway sessions beyond the basics: sharding, a wrong token, and guilds joined while connected."""

from __future__ import annotations

import discord
import pytest

from emulator import Emulator
from emulator.testing import run_client


class QuickShards(discord.AutoShardedClient):
    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        return None  # discord.py spaces shard identifies 5 s apart (Discord's limit); not needed here


async def test_auto_sharded_client_gets_each_guild_on_its_shard(emulator: Emulator):
    emu = emulator
    # Guild ids from consecutive milliseconds, so that both shards get guilds ((id >> 22) % 2).
    base_ms = (emu.ids.next() >> 22) - 10
    guilds = [await emu.create_guild(f"G{i}", id=(base_ms + i) << 22) for i in range(4)]
    users = [await emu.create_user(f"u{i}", guild=g) for i, g in enumerate(guilds)]
    intents = discord.Intents.default()
    intents.message_content = True
    client = QuickShards(intents=intents, shard_count=2)
    seen: list[tuple[int | None, str]] = []

    @client.event
    async def on_message(message: discord.Message) -> None:
        seen.append((message.guild.shard_id if message.guild else None, message.content))

    async with run_client(client, emu):
        assert sorted(s.shard for s in emu.gateway.sessions.values()) == [(0, 2), (1, 2)]
        assert len(emu.gateway.events("GUILD_CREATE")) == 4
        for session in emu.gateway.sessions.values():
            delivered = {int(e.data["id"]) for e in emu.gateway.events("GUILD_CREATE") if e.session_id == session.id}
            assert delivered == {g.id for g in guilds if (g.id >> 22) % 2 == session.shard[0]}
        assert {g.id for g in client.guilds} == {g.id for g in guilds}
        for user, guild in zip(users, guilds, strict=True):
            await user.send(guild.channel("general"), f"hello {guild.name}")
        await emu.wait_for(lambda: len(seen) == 4)
    assert sorted(seen, key=lambda s: s[1]) == [((g.id >> 22) % 2, f"hello {g.name}") for g in guilds]


async def test_wrong_token_fails_the_login(emulator: Emulator):
    emu = emulator

    class Impostor:
        rest_url, gateway_url, token = emu.rest_url, emu.gateway_url, "not-the-token"

    client = discord.Client(intents=discord.Intents.default())
    with pytest.raises(discord.LoginFailure):
        async with run_client(client, Impostor()):
            pass
    assert emu.calls[-1].status == 401


async def test_guild_created_while_connected_reaches_the_bot(emulator: Emulator):
    emu = emulator
    client = discord.Client(intents=discord.Intents.default())
    async with run_client(client, emu):
        assert list(client.guilds) == []
        guild = await emu.create_guild("Later")
        await emu.wait_for(lambda: client.get_guild(guild.id))
        role = await emu.create_role(guild, "new role")
        await emu.wait_for(lambda: client.get_guild(guild.id).get_role(role.id))
        channel = await emu.create_channel(guild, "later-channel")
        await emu.wait_for(lambda: client.get_channel(channel.id))


def block_the_event_loop(seconds: float) -> None:
    """What a bot does when it runs model inference or heavy SQL on the event loop."""
    import time

    time.sleep(seconds)


async def test_blocking_the_event_loop_misses_heartbeats_and_costs_a_reconnect():
    emu = Emulator(heartbeat_interval_ms=200)
    await emu.start()
    try:
        guild = await emu.create_guild()
        alice = await emu.create_user("alice", guild=guild)
        client = discord.Client(intents=discord.Intents.default())

        @client.event
        async def on_message(message: discord.Message) -> None:
            if message.content == "block":
                block_the_event_loop(0.6)
            elif not message.author.bot:
                await message.channel.send("pong")

        async with run_client(client, emu):
            await alice.dm("block")
            await emu.wait_for(lambda: emu.gateway.heartbeat_timeouts >= 1)
            await emu.wait_for(lambda: emu.gateway.connected and emu.gateway.resume_count >= 1)
            sent = await alice.dm("ping")
            assert (await emu.wait_for_message(alice, after=sent)).content == "pong"
    finally:
        await emu.stop()
    assert emu.unknown_routes == []


@pytest.mark.parametrize("members_intent", [False, True])
async def test_guild_members_arrive_only_with_the_members_intent(emulator: Emulator, members_intent: bool):
    emu = emulator
    guild = await emu.create_guild()
    alice = await emu.create_user("alice", guild=guild)
    intents = discord.Intents.default()
    intents.members = members_intent
    client = discord.Client(intents=intents)
    async with run_client(client, emu):
        dguild = client.get_guild(guild.id)
        assert dguild.me is not None and dguild.member_count == 3
        assert (dguild.get_member(alice.id) is not None) is members_intent
        # Fetching over REST works either way.
        assert (await dguild.fetch_member(alice.id)).name == "alice"
