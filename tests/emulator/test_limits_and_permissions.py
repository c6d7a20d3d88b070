"""Discord's limits and permission rules, answered with Discord's error codes."""

from __future__ import annotations

import discord
import pytest
from discord.http import Route

from emulator import ActionError, Emulator
from emulator import permissions as P
from emulator.testing import run_client


@pytest.fixture
async def world(emulator: Emulator, sample_bot):
    guild = await emulator.create_guild("Limits")
    alice = await emulator.create_user("alice", guild=guild)
    async with run_client(sample_bot, emulator):
        channel = sample_bot.get_channel(guild.channel("general").id)
        yield emulator, guild, alice, sample_bot, channel


async def post_raw(bot, channel_id: int, payload: dict):
    return await bot.http.request(Route("POST", "/channels/{channel_id}/messages", channel_id=channel_id),
                                  json=payload)


def row(*components):
    return {"type": 1, "components": list(components)}


def button(custom_id: str):
    return {"type": 2, "style": 1, "label": "b", "custom_id": custom_id}


async def test_content_over_2000_characters(world):
    emu, guild, alice, bot, channel = world
    await channel.send("x" * 2000)
    with pytest.raises(discord.HTTPException) as caught:
        await channel.send("x" * 2001)
    assert caught.value.status == 400 and caught.value.code == 50035
    assert "content" in caught.value.text and "2000 or fewer" in caught.value.text


async def test_embed_limits(world):
    emu, guild, alice, bot, channel = world
    with pytest.raises(discord.HTTPException) as caught:
        await channel.send(embed=discord.Embed(description="d" * 4097))
    assert caught.value.code == 50035 and "embeds.0.description" in caught.value.text
    too_big = [discord.Embed(description="d" * 4000), discord.Embed(description="d" * 2001)]
    with pytest.raises(discord.HTTPException) as caught:
        await channel.send(embeds=too_big)
    assert caught.value.code == 50035 and "6000" in caught.value.text
    fields = discord.Embed(title="t")
    for i in range(26):
        fields.add_field(name=str(i), value="v")
    with pytest.raises(discord.HTTPException):
        await channel.send(embed=fields)


async def test_component_limits(world):
    emu, guild, alice, bot, channel = world
    cid = guild.channel("general").id
    rows = [row(*(button(f"{r}-{c}") for c in range(5))) for r in range(5)]
    await post_raw(bot, cid, {"components": rows})  # 5 rows of 5 is the maximum
    cases = [
        {"components": rows + [row(button("extra"))]},
        {"components": [row(*(button(str(c)) for c in range(6)))]},
        {"components": [row(button("x" * 101))]},
        {"components": [row(button("same"), button("same"))]},
        {"components": [row({"type": 3, "custom_id": "s", "options": [{"label": "a", "value": "a"}]}, button("b"))]},
        {"components": [row({"type": 2, "style": 5, "label": "link"})]},
    ]
    for payload in cases:
        with pytest.raises(discord.HTTPException) as caught:
            await post_raw(bot, cid, payload)
        assert caught.value.code == 50035, payload


async def test_empty_message_is_refused(world):
    emu, guild, alice, bot, channel = world
    with pytest.raises(discord.HTTPException) as caught:
        await post_raw(bot, guild.channel("general").id, {"content": ""})
    assert caught.value.code == 50006


async def test_modal_limits(world):
    emu, guild, alice, bot, channel = world

    @bot.tree.command(description="bad modal")
    async def badmodal(interaction: discord.Interaction) -> None:
        modal = discord.ui.Modal(title="t" * 45)
        modal.add_item(discord.ui.TextInput(label="l", custom_id="in", max_length=4000))
        modal.title = "t" * 46  # discord.py checks the title only in __init__
        try:
            await interaction.response.send_modal(modal)
        except discord.HTTPException as exc:
            bot.errors.append(exc)

    await bot.tree.sync()
    interaction = await alice.slash("badmodal", channel=guild.channel("general"))
    await emu.wait_for(lambda: bot.errors)
    assert bot.errors[0].code == 50035 and "title" in bot.errors[0].text
    assert interaction.response is None and interaction.errors == [50035]


async def test_modal_input_lengths_are_enforced_on_the_user_side(world):
    emu, guild, alice, bot, channel = world
    vote = await alice.slash("vote", {"topic": "t"}, channel=guild.channel("general"))
    message = (await vote.wait_response()).message
    click = await alice.click(message, "vote:feedback")
    await click.wait_modal()
    with pytest.raises(ActionError):
        await click.submit_modal({"feedback:text": "x" * 201})  # the input's max_length is 200
    with pytest.raises(ActionError):
        await click.submit_modal({"feedback:text": ""})  # required


async def test_bot_without_send_messages_gets_50013(world):
    emu, guild, alice, bot, channel = world
    general = guild.channel("general")
    await emu.set_channel_overwrite(general, emu.bot_user, deny=P.SEND_MESSAGES)
    with pytest.raises(discord.Forbidden) as caught:
        await channel.send("hello")
    assert caught.value.code == 50013
    await emu.set_channel_overwrite(general, emu.bot_user, deny=P.ATTACH_FILES)
    await channel.send("text is fine")
    with pytest.raises(discord.Forbidden):
        await channel.send(file=discord.File(__file__))
    # Guild-wide: @everyone and the bot's role both without Add Reactions.
    await emu.set_role_permissions(guild.everyone, P.DEFAULT_EVERYONE & ~P.ADD_REACTIONS)
    await emu.set_bot_permissions(guild, P.DEFAULT_BOT & ~P.ADD_REACTIONS)
    sent = await channel.send("react to me")
    with pytest.raises(discord.Forbidden) as caught:
        await sent.add_reaction("👍")
    assert caught.value.code == 50013


async def test_hidden_channel_is_missing_access(world):
    emu, guild, alice, bot, channel = world
    secret = await emu.create_channel(
        guild, "secret", overwrites=[{"id": str(guild.id), "type": 0, "allow": "0", "deny": str(P.VIEW_CHANNEL)}]
    )
    with pytest.raises(discord.Forbidden) as caught:
        await bot.http.send_message(secret.id, params=discord.http.handle_message_parameters(content="hi"))
    assert caught.value.code == 50001
    with pytest.raises(ActionError):
        await alice.send(secret, "users cannot see it either")


async def test_role_hierarchy_and_moderation_rules(world):
    emu, guild, alice, bot, channel = world
    dguild = bot.get_guild(guild.id)
    member = dguild.get_member(alice.id)
    # Moderator sits above nothing the bot can manage? It is below the bot's role, so this works:
    await member.add_roles(discord.Object(emu.moderator_role(guild).id))
    assert emu.moderator_role(guild).id in guild.members[alice.id].role_ids
    # The bot's own managed role cannot be handed out.
    with pytest.raises(discord.Forbidden):
        await member.add_roles(discord.Object(emu.bot_role(guild).id))
    # Editing someone else's message is refused with 50005.
    theirs = await alice.send(guild.channel("general"), "mine")
    with pytest.raises(discord.Forbidden) as caught:
        await bot.http.edit_message(channel.id, theirs.id, params=discord.http.handle_message_parameters(
            content="hacked"))
    assert caught.value.code == 50005


async def test_dm_to_a_user_who_closed_dms_is_refused(world):
    emu, guild, alice, bot, channel = world
    shy = await emu.create_user("shy", guild=guild, accepts_dms=False)
    user = await bot.fetch_user(shy.id)
    with pytest.raises(discord.Forbidden) as caught:
        await user.send("hello?")
    assert caught.value.code == 50007


async def test_message_content_intent_is_required_for_guild_content(emulator: Emulator):
    emu = emulator
    guild = await emu.create_guild()
    alice = await emu.create_user("alice", guild=guild)
    seen: list[str] = []
    client = discord.Client(intents=discord.Intents.default())  # no message_content

    @client.event
    async def on_message(message: discord.Message) -> None:
        seen.append(message.content)

    async with run_client(client, emu):
        await alice.send(guild.channel("general"), "secret words")
        await alice.send(guild.channel("general"), f"hey {emu.bot_user.mention}")
        await alice.dm("dm words")
        await emu.wait_for(lambda: len(seen) == 3)
    assert seen == ["", f"hey {emu.bot_user.mention}", "dm words"]


async def test_privileged_intent_not_enabled_closes_with_4014(emulator: Emulator):
    emu = emulator
    emu.gateway.privileged_intents = 0
    client = discord.Client(intents=discord.Intents.default() | discord.Intents(members=True))
    with pytest.raises(discord.PrivilegedIntentsRequired):
        async with run_client(client, emu):
            pass


async def test_malformed_request_is_answered_50035_and_recorded(world):
    emu, guild, alice, bot, channel = world
    with pytest.raises(discord.HTTPException) as caught:
        await bot.http.request(Route("GET", "/channels/{channel_id}/messages", channel_id=channel.id),
                               params={"before": "yesterday"})
    assert caught.value.code == 50035
    assert len(emu.internal_errors) == 1 and "ValueError" in emu.internal_errors[0]
    emu.internal_errors.clear()  # expected here; the fixture fails any other test that has one
