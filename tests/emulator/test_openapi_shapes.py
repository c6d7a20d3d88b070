"""Every implemented route, exercised through discord.py, checked against Discord's OpenAPI description:
the bodies discord.py sends validate against the request schema, the emulator's answers against the
response schema, and each answer's status is one the description documents."""

from __future__ import annotations

import io

import discord
from discord.http import Route

from emulator import Emulator
from emulator import permissions as P
from emulator.openapi import DEFAULT_SPEC, OpenAPISpec
from emulator.testing import run_client


def add_webhook_command(bot) -> None:
    @bot.tree.command(description="Exercise every interaction webhook route")
    async def hooks(interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True)
        await interaction.edit_original_response(content="original")
        original = await interaction.original_response()
        assert original.content == "original"
        follow = await interaction.followup.send("follow-up", wait=True)
        await follow.edit(content="follow-up edited")
        fetched = await interaction.followup.fetch_message(follow.id)
        assert fetched.content == "follow-up edited"
        await follow.delete()
        await interaction.delete_original_response()
        interaction.client.hooks_done = True


async def exercise_everything(emu: Emulator, bot, guild, alice) -> None:
    http = bot.http
    app_id = emu.application_id
    await http.request(Route("GET", "/gateway"))
    await http.get_bot_gateway()
    await http.request(Route("GET", "/applications/@me"))
    user = await bot.fetch_user(alice.id)
    assert [g.id async for g in bot.fetch_guilds()] == [guild.id]
    dm = await user.create_dm()
    await dm.send("hello from the bot")

    # Application commands, global and per guild.
    cmds = await bot.tree.fetch_commands()
    one = await bot.tree.fetch_command(cmds[0].id)
    payload = {"name": "extra", "description": "extra command", "type": 1}
    created = await http.upsert_global_command(app_id, payload)
    await http.get_global_command(app_id, created["id"])
    await http.edit_global_command(app_id, created["id"], {"description": "edited"})
    await http.delete_global_command(app_id, created["id"])
    bot.tree.copy_global_to(guild=discord.Object(guild.id))
    await bot.tree.sync(guild=discord.Object(guild.id))
    gcmds = await bot.tree.fetch_commands(guild=discord.Object(guild.id))
    assert {c.name for c in gcmds} == {c.name for c in cmds}
    gcreated = await http.upsert_guild_command(app_id, guild.id, payload)
    await http.get_guild_command(app_id, guild.id, gcreated["id"])
    await http.edit_guild_command(app_id, guild.id, gcreated["id"], {"description": "edited"})
    await http.delete_guild_command(app_id, guild.id, gcreated["id"])
    await http.get_guild_application_command_permissions(app_id, guild.id)
    assert one.name == cmds[0].name

    # Channels and messages.
    channel = await bot.fetch_channel(guild.channel("general").id)
    await channel.edit(topic="a topic")
    async with channel.typing():
        pass
    view = discord.ui.View()
    view.add_item(discord.ui.Button(label="Go", custom_id="go"))
    embed = discord.Embed(title="Title", description="Body", color=0x00FF00).add_field(name="k", value="v")
    msg = await channel.send("hello", embed=embed, view=view, file=discord.File(io.BytesIO(b"data"), "a.txt"))
    await msg.edit(content="hello edited", attachments=[])
    fetched = await channel.fetch_message(msg.id)
    assert fetched.content == "hello edited"
    assert [m.id async for m in channel.history(limit=10)] == [msg.id]
    await msg.pin()
    assert [m.id async for m in channel.pins()] == [msg.id]
    await msg.unpin()

    # Reactions: own, others', listing, clearing.
    await msg.add_reaction("👍")
    emu_msg = emu.get_message(msg.id)
    await alice.react(emu_msg, "👍")
    await alice.react(emu_msg, "🎉")
    fetched = await channel.fetch_message(msg.id)
    users = [u.id async for u in fetched.reactions[0].users()]
    assert sorted(users) == sorted([emu.bot_user.id, alice.id])
    await msg.remove_reaction("👍", bot.user)
    await msg.remove_reaction("👍", discord.Object(alice.id))
    await msg.clear_reaction("🎉")
    await msg.add_reaction("✅")
    await msg.clear_reactions()

    # Threads.
    thread = await msg.create_thread(name="from message")
    await thread.send("in the thread")
    await thread.add_user(discord.Object(alice.id))
    await thread.leave()
    await thread.join()
    assert {m.id for m in await thread.fetch_members()} == {emu.bot_user.id, alice.id}
    assert [t.id for t in await bot.get_guild(guild.id).active_threads()] == [thread.id]
    await thread.edit(archived=True)
    loose = await channel.create_thread(name="loose", type=discord.ChannelType.public_thread)
    await loose.delete()

    extra1 = await channel.send("one")
    extra2 = await channel.send("two")
    await channel.delete_messages([extra1, extra2])
    await msg.delete()

    # Guild, members and roles.
    dguild = await bot.fetch_guild(guild.id)
    assert dguild.name == guild.name
    assert len(await dguild.fetch_channels()) == 1
    new_channel = await dguild.create_text_channel("made-by-bot")
    await new_channel.delete()
    assert {m.id async for m in dguild.fetch_members(limit=10)} == set(guild.members)
    found = await http.request(Route("GET", "/guilds/{guild_id}/members/search", guild_id=guild.id),
                               params={"query": "ali", "limit": 5})
    assert [m["user"]["id"] for m in found] == [str(alice.id)]
    # discord.py searches members over the gateway (op 8) instead.
    assert [m.id for m in await bot.get_guild(guild.id).query_members("ali")] == [alice.id]
    member = await dguild.fetch_member(alice.id)
    await member.edit(nick="Ally")
    role = await dguild.create_role(name="helper", permissions=discord.Permissions(send_messages=True))
    await member.add_roles(role)
    await member.remove_roles(role)
    assert role.id in {r.id for r in await dguild.fetch_roles()}
    await role.edit(name="helpers")
    assert (await dguild.fetch_role(role.id)).name == "helpers"
    await role.delete()

    # Interactions: every callback type the bot can send, and the webhook routes.
    hooks = await alice.slash("hooks", channel=guild.channel("general"))
    await emu.wait_for(lambda: getattr(bot, "hooks_done", False))
    assert hooks.original.deleted
    vote = await alice.slash("vote", {"topic": "t"}, channel=guild.channel("general"))
    message = (await vote.wait_response()).message
    await (await alice.click(message, "vote:feedback")).submit_modal({"feedback:text": "ok"})
    await (await alice.select(message, "vote:colors", ["red"])).wait_response()
    await (await alice.click(message, "vote:yes")).wait_response()
    reset = await alice.slash("chat reset", channel=guild.channel("general"))
    await reset.wait_message()


async def test_every_route_matches_discords_openapi_description(emulator: Emulator, sample_bot):
    emu = emulator
    guild = await emu.create_guild("Shapes", bot_permissions=P.DEFAULT_BOT | P.MANAGE_NICKNAMES)
    alice = await emu.create_user("alice", guild=guild)
    add_webhook_command(sample_bot)
    async with run_client(sample_bot, emu):
        await exercise_everything(emu, sample_bot, guild, alice)

    spec = OpenAPISpec(DEFAULT_SPEC)
    problems = []
    for call in emu.calls:
        problems += spec.check_request(call)
        problems += spec.check_response(call)
    assert problems == [], "\n".join(problems)

    rest = [r for r in emu.calls if r.route]
    called = {c.route for c in rest}
    implemented = set(emulator_routes(emu))
    assert implemented - called == set(), "routes the shape test does not exercise"
    assert all(c.status < 400 for c in rest), [c for c in rest if c.status >= 400]
    for route in implemented:
        assert spec.operation(route) is not None, route


def emulator_routes(emu: Emulator) -> list[str]:
    from emulator.rest import RestAPI

    return RestAPI(emu).router.keys()


def test_openapi_checker_rejects_wrong_shapes():
    """The checker itself must be able to fail: a message without an id, and a wrong status."""
    from emulator.core import RestCall

    spec = OpenAPISpec(DEFAULT_SPEC)
    bad = RestCall("GET", "/users/1", "GET /users/{user_id}", {}, None, [], 200, {"username": 3}, 0, 0)
    assert any("id" in p for p in spec.check_response(bad))
    wrong_status = RestCall("DELETE", "/x", "DELETE /channels/{channel_id}/messages/{message_id}", {}, None, [],
                            200, {}, 0, 0)
    assert spec.check_response(wrong_status)
    bad_request = RestCall("POST", "/x", "POST /channels/{channel_id}/messages", {}, {"content": 5}, [], 200,
                           None, 0, 0, content_type="application/json")
    assert spec.check_request(bad_request)
