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
