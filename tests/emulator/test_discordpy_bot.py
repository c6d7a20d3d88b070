"""A plain discord.py bot driven through the scripting API: DMs, slash commands, buttons, selects, modals,
reactions, threads, deferred responses, permissions and Discord's limits."""

from __future__ import annotations

import discord
import pytest
from discord.http import Route

from emulator import ActionError, CommandUnavailable, Emulator
from emulator.testing import run_client


@pytest.fixture
async def world(emulator: Emulator, sample_bot):
    guild = await emulator.create_guild("Test Guild", channels=["general", "votes"])
    alice = await emulator.create_user("alice", guild=guild)
    mod = await emulator.create_user("mod", guild=guild, moderator=True)
    bot = sample_bot
    async with run_client(bot, emulator):
        yield emulator, guild, alice, mod, bot


async def test_dm_is_answered_in_the_dm_channel(world):
    emu, guild, alice, mod, bot = world
    sent = await alice.dm("hello bot")
    reply = await emu.wait_for_message(alice, after=sent)
    assert reply.content == "you said: hello bot"
    assert emu.dm_channel(alice) is not None and reply.channel_id == emu.dm_channel(alice).id
    assert [e.data["type"] for e in emu.gateway.events("CHANNEL_CREATE")] == [1]


async def test_commands_are_registered_with_their_options(world):
    emu, guild, alice, mod, bot = world
    names = {c.name for c in emu.guild_commands()}
    assert {"chat", "vote", "admin", "stream", "slow", "twice", "upload"} <= names
    admin = emu.find_command("admin")
    assert admin.default_member_permissions == 1 << 5
    assert admin.to_dict()["default_member_permissions"] == "32"
    chat = emu.find_command("chat")
    assert chat.options[0]["name"] == "reset" and chat.options[0]["type"] == 1


async def test_slash_command_button_and_click(world):
    emu, guild, alice, mod, bot = world
    channel = guild.channel("votes")
    interaction = await alice.slash("vote", {"topic": "pizza"}, channel=channel)
    response = await interaction.wait_response()
    assert response.kind == "message" and not response.ephemeral
    message = response.message
    assert message.content == "Vote: pizza"
    assert message.custom_ids == ["vote:yes", "vote:feedback", "vote:colors"]
    assert message in emu.channel_messages(channel)
    assert message.interaction_metadata["name"] == "vote"

    click = await alice.click(message, "vote:yes")
    update = await click.wait_response()
    assert update.kind == "update"
    assert message.content == "alice voted yes"
    assert message.components == []
    assert message.contents == ["Vote: pizza", "alice voted yes"]


async def test_select_menu_gets_an_ephemeral_answer(world):
    emu, guild, alice, mod, bot = world
    vote = await alice.slash("vote", {"topic": "colors"}, channel=guild.channel("votes"))
    message = (await vote.wait_response()).message
    choice = await alice.select(message, "vote:colors", ["red", "blue"])
    answer = await choice.wait_response()
    assert answer.ephemeral and answer.message.content == "picked red,blue"
    assert answer.message.visible_to == alice.id
    # Ephemeral messages never reach the bot's gateway.
    assert all(e.data["id"] != str(answer.message.id) for e in emu.gateway.events("MESSAGE_CREATE"))


async def test_button_opens_a_modal_whose_submission_is_answered(world):
    emu, guild, alice, mod, bot = world
    vote = await alice.slash("vote", {"topic": "feedback"}, channel=guild.channel("votes"))
    message = (await vote.wait_response()).message
    click = await alice.click(message, "vote:feedback")
    modal = await click.wait_modal()
    assert modal["title"] == "Feedback"
    assert [c["custom_id"] for c in click.modal_inputs()] == ["feedback:text"]
    submitted = await click.submit_modal({"feedback:text": "great bot"})
    answer = await submitted.wait_response()
    assert answer.message.content == "thanks: great bot"


async def test_subcommand_deferred_then_followed_up(world):
    emu, guild, alice, mod, bot = world
    interaction = await alice.slash("chat reset", {"hard": True}, channel=guild.channel("general"))
    response = await interaction.wait_response()
    assert response.kind == "deferred"
    message = await interaction.wait_message()
    assert message.content == "reset hard=True"
    assert interaction.payload["data"]["options"] == [
        {"name": "reset", "type": 1, "options": [{"name": "hard", "type": 5, "value": True}]}
    ]


async def test_default_permission_commands_are_hidden_from_non_moderators(world):
    emu, guild, alice, mod, bot = world
    with pytest.raises(CommandUnavailable):
        await alice.slash("admin", channel=guild.channel("general"))
    with pytest.raises(CommandUnavailable):
        await mod.slash("admin")  # guild_only: not offered in DMs
    interaction = await mod.slash("admin", channel=guild.channel("general"))
    assert (await interaction.wait_message()).content == "admin ok"
    assert interaction.ephemeral


async def test_a_server_admin_can_override_a_commands_default_permissions(world):
    emu, guild, alice, mod, bot = world
    general = guild.channel("general")
    await emu.set_command_permissions(guild, "admin", users=[alice])
    assert (await (await alice.slash("admin", channel=general)).wait_message()).content == "admin ok"
    # The override is readable as Discord serves it, and a member entry beats an allowing role.
    [entry] = await bot.http.request(Route(
        "GET", "/applications/{application_id}/guilds/{guild_id}/commands/permissions",
        application_id=emu.application_id, guild_id=guild.id))
    assert entry["permissions"] == [{"id": str(alice.id), "type": 2, "permission": True}]
    await emu.set_command_permissions(guild, "admin", roles=[guild.everyone])
    await emu.set_command_permissions(guild, "admin", users=[mod], allow=False)
    with pytest.raises(CommandUnavailable):
        await mod.slash("admin", channel=general)


async def test_raw_reaction_listeners_see_users_reactions(world):
    emu, guild, alice, mod, bot = world
    sent = await alice.dm("react to this")
    reply = await emu.wait_for_message(alice, after=sent)
    await alice.react(reply, "👍")
    await mod.send(guild.channel("general"), "hello")
    await emu.wait_for(lambda: ("add", alice.id, "👍") in bot.reaction_events)
    await alice.unreact(reply, "👍")
    await emu.wait_for(lambda: ("remove", alice.id, "👍") in bot.reaction_events)
    assert reply.reactions == {}

    # The bot reacting goes the other way: REST, visible on the emulated message.
    channel = bot.get_channel(guild.channel("general").id)
    theirs = await emu.wait_for_message(guild.channel("general"), author=mod)
    fetched = await channel.fetch_message(theirs.id)
    await fetched.add_reaction("🎉")
    assert theirs.reaction_users("🎉") == [emu.bot_user.id]
    await alice.react(theirs, "🎉")
    await fetched.remove_reaction("🎉", discord.Object(alice.id))
    assert theirs.reaction_users("🎉") == [emu.bot_user.id]
    await fetched.clear_reactions()
    await emu.wait_for(lambda: ("clear", 0, "") in bot.reaction_events)


async def test_threads_from_a_message_and_replies_in_them(world):
    emu, guild, alice, mod, bot = world
    general = guild.channel("general")
    start = await alice.send(general, "!thread")
    thread = await emu.wait_for(lambda: start.thread)
    assert thread.id == start.id and thread.parent_id == general.id and thread.name == "Discussion"
    await emu.wait_for_message(thread, lambda m: m.content == "thread started")
    await alice.send(thread, "my reply")
    answer = await emu.wait_for_message(thread, lambda m: m.content.startswith("in thread"))
    assert answer.content == "in thread: my reply"
    # A thread a user starts reaches the bot too.
    theirs = await alice.create_thread(general, "user thread")
    await alice.send(theirs, "hi there")
    await emu.wait_for_message(theirs, lambda m: m.content == "in thread: hi there")


async def test_new_member_reaches_the_bot(world):
    emu, guild, alice, mod, bot = world
    carol = await emu.create_user("carol", guild=guild)
    await emu.wait_for(lambda: carol.id in bot.joined)
    assert bot.get_guild(guild.id).get_member(carol.id).name == "carol"


async def test_attachments_round_trip(world):
    emu, guild, alice, mod, bot = world
    sent = await alice.dm(files=[("note.txt", b"hello file")])
    reply = await emu.wait_for_message(alice, after=sent)
    assert reply.content == "attachment note.txt: hello file"

    interaction = await alice.slash("upload", {"note": ("in.txt", b"abc")}, channel=guild.channel("general"))
    message = await interaction.wait_message()
    assert message.content == "got in.txt (3 bytes)"
    assert [(a.filename, a.data) for a in message.attachments] == [("reversed.txt", b"cba")]


async def test_interaction_answered_after_three_seconds_is_unknown(world):
    emu, guild, alice, mod, bot = world
    emu.interaction_deadline = 0.05  # the 3 s rule, scaled down so the test stays fast
    bot.late_seconds = 0.2
    interaction = await alice.slash("slow", channel=guild.channel("general"))
    await emu.wait_for(lambda: bot.errors)
    assert isinstance(bot.errors[0], discord.NotFound) and bot.errors[0].code == 10062
    assert interaction.errors == [10062] and interaction.response is None


async def test_second_initial_response_is_refused(world):
    emu, guild, alice, mod, bot = world
    interaction = await alice.slash("twice", channel=guild.channel("general"))
    await emu.wait_for(lambda: len(bot.errors) == 2)
    assert isinstance(bot.errors[0], discord.InteractionResponded)
    assert isinstance(bot.errors[1], discord.HTTPException) and bot.errors[1].code == 40060
    assert interaction.errors == [40060]
    assert interaction.original.content == "once"


async def test_unknown_route_is_recorded_and_answered_like_discord(world):
    emu, guild, alice, mod, bot = world
    with pytest.raises(discord.NotFound) as caught:
        await bot.http.request(discord.http.Route("GET", "/guilds/{guild_id}/bans", guild_id=guild.id))
    assert caught.value.text == "404: Not Found"
    assert emu.unknown_routes == [f"GET /guilds/{guild.id}/bans"]
    emu.unknown_routes.clear()  # expected here; the fixture fails any other test that hits one


async def test_autocomplete_offers_the_bots_choices(world):
    emu, guild, alice, mod, bot = world
    typing = await alice.autocomplete("fruit", {}, focused="name", channel=guild.channel("general"))
    response = await typing.wait_response()
    assert response.kind == "autocomplete"
    assert [c["value"] for c in response.choices] == ["apple", "apricot", "banana"]
    typing = await alice.autocomplete("fruit", {"name": "ap"}, focused="name", channel=guild.channel("general"))
    assert [c["value"] for c in (await typing.wait_response()).choices] == ["apple", "apricot"]
    chosen = await alice.slash("fruit", {"name": "apricot"}, channel=guild.channel("general"))
    assert (await chosen.wait_message()).content == "fruit apricot"


async def test_message_context_menu(world):
    emu, guild, alice, mod, bot = world
    said = await alice.send(guild.channel("general"), "quotable")
    interaction = await alice.context_menu("Quote", said)
    assert (await interaction.wait_message()).content == "> quotable"


async def test_slash_command_in_a_dm(world):
    emu, guild, alice, mod, bot = world
    interaction = await alice.slash("vote", {"topic": "dm"})
    message = await interaction.wait_message()
    assert message.channel_id == emu.dm_channel(alice).id and message.content == "Vote: dm"
    assert interaction.payload["context"] == 1 and "user" in interaction.payload


async def test_waiting_helpers_explain_a_timeout(world):
    emu, guild, alice, mod, bot = world
    await alice.send(guild.channel("general"), "nobody answers this")
    with pytest.raises(TimeoutError) as caught:
        await emu.wait_for_message(guild.channel("general"), timeout=0.05)
    assert "nobody answers this" in str(caught.value)


async def test_gateway_uses_zlib_stream_as_discordpy_asks(world):
    emu, guild, alice, mod, bot = world
    assert {c.compress for c in emu.gateway.connections} == {"zlib-stream"}
    assert all(c.heartbeats >= 1 for c in emu.gateway.connections)


async def test_modal_with_labels_select_checkbox_and_file_upload(emulator: Emulator):
    emu = emulator
    guild = await emu.create_guild()
    alice = await emu.create_user("alice", guild=guild)
    got: list[tuple] = []

    class Survey(discord.ui.Modal, title="Survey"):
        name = discord.ui.Label(text="Name", component=discord.ui.TextInput(custom_id="name", max_length=20))
        mood = discord.ui.Label(text="Mood", component=discord.ui.Select(
            custom_id="mood", options=[discord.SelectOption(label=m, value=m) for m in ("happy", "sad")]))
        agree = discord.ui.Label(text="Agree", component=discord.ui.Checkbox(custom_id="agree"))
        proof = discord.ui.Label(text="Proof", component=discord.ui.FileUpload(custom_id="proof"))

        async def on_submit(self, interaction: discord.Interaction) -> None:
            files = [await a.read() for a in self.proof.component.values]
            got.append((self.name.component.value, self.mood.component.values, self.agree.component.value, files))
            await interaction.response.send_message("recorded", ephemeral=True)

    client = discord.Client(intents=discord.Intents.default())
    tree = discord.app_commands.CommandTree(client)

    @tree.command(description="Fill in a survey")
    async def survey(interaction: discord.Interaction) -> None:
        await interaction.response.send_modal(Survey())

    client.setup_hook = tree.sync  # type: ignore[method-assign]
    async with run_client(client, emu):
        opened = await alice.slash("survey", channel=guild.channel("general"))
        assert [c["type"] for c in (await opened.wait_modal())["components"]] == [18, 18, 18, 18]
        with pytest.raises(ActionError):
            await opened.submit_modal({"name": "al", "mood": "angry", "proof": ("p.txt", b"x")})
        done = await opened.submit_modal({"name": "al", "mood": "happy", "agree": True, "proof": ("p.txt", b"x")})
        assert (await done.wait_message()).content == "recorded"
    assert got == [("al", ["happy"], True, [b"x"])]
    assert done.metadata()["triggering_interaction_metadata"]["id"] == str(opened.id)


async def test_nested_subcommand_group_with_choices_ranges_and_members(world):
    emu, guild, alice, mod, bot = world
    general = guild.channel("general")
    it = await alice.slash("config limits set", {"kind": "daily", "value": 5, "who": mod}, channel=general)
    assert (await it.wait_message()).content == "daily limit 5 for mod"
    group = it.payload["data"]["options"][0]
    assert (group["name"], group["type"], group["options"][0]["name"]) == ("limits", 2, "set")
    assert it.payload["data"]["resolved"]["members"][str(mod.id)]["roles"] == [str(emu.moderator_role(guild).id)]
    # What the Discord client would not let a user send:
    for bad in ({"kind": "weekly", "value": 5}, {"kind": "daily", "value": 500}, {"value": 5}):
        with pytest.raises(CommandUnavailable):
            await alice.slash("config limits set", bad, channel=general)
    with pytest.raises(CommandUnavailable):
        await alice.slash("config limits", {"kind": "daily", "value": 1}, channel=general)
    with pytest.raises(CommandUnavailable):
        await alice.slash("config limits set", {"kind": "daily", "value": 1})  # guild only, not in DMs
