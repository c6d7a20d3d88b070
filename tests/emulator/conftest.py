"""Fixtures for the emulator's tests, and the plain discord.py bot they drive.

The bot knows nothing about the emulator: slash commands (with a subcommand group), a persistent view with
a button, a select and a modal, DM answers, threads, streamed edits and raw reaction listeners.
"""

from __future__ import annotations

import asyncio
import io

import discord
import pytest
from discord import app_commands
from discord.ext import commands

from emulator.pytest_plugin import emulator  # noqa: F401  (re-exported as a fixture)


class FeedbackModal(discord.ui.Modal, title="Feedback"):
    text = discord.ui.TextInput(label="Your feedback", custom_id="feedback:text", style=discord.TextStyle.long,
                                max_length=200)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"thanks: {self.text.value}")


class VoteView(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=None)

    @discord.ui.button(label="Yes", style=discord.ButtonStyle.success, custom_id="vote:yes")
    async def yes(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.edit_message(content=f"{interaction.user.name} voted yes", view=None)

    @discord.ui.button(label="Feedback", custom_id="vote:feedback")
    async def feedback(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.send_modal(FeedbackModal())

    @discord.ui.select(
        custom_id="vote:colors",
        max_values=2,
        options=[discord.SelectOption(label=c.title(), value=c) for c in ("red", "green", "blue")],
    )
    async def colors(self, interaction: discord.Interaction, select: discord.ui.Select) -> None:
        await interaction.response.send_message(f"picked {','.join(select.values)}", ephemeral=True)


class SampleBot(commands.Bot):
    def __init__(self) -> None:
        intents = discord.Intents.default()
        intents.message_content = True
        intents.members = True
        super().__init__(command_prefix="!", intents=intents)
        self.reaction_events: list[tuple[str, int, str]] = []
        self.seen_messages: list[str] = []
        self.joined: list[int] = []
        self.errors: list[BaseException] = []
        self.late_seconds = 0.0
        self._register()

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        # discord.py sleeps 5 s before re-identifying (Discord's identify limit); a test need not wait.
        return None

    async def setup_hook(self) -> None:
        self.add_view(VoteView())
        await self.tree.sync()

    def _register(self) -> None:
        tree = self.tree
        chat = app_commands.Group(name="chat", description="Chat commands")

        @chat.command(name="reset", description="Forget the conversation")
        async def reset(interaction: discord.Interaction, hard: bool = False) -> None:
            await interaction.response.defer(thinking=True)
            await interaction.followup.send(f"reset hard={hard}")

        tree.add_command(chat)

        config = app_commands.Group(name="config", description="Settings", guild_only=True)
        limits = app_commands.Group(name="limits", description="Limits", parent=config)

        @limits.command(name="set", description="Set a limit")
        @app_commands.choices(kind=[app_commands.Choice(name="Daily", value="daily"),
                                    app_commands.Choice(name="Hourly", value="hourly")])
        async def set_limit(
            interaction: discord.Interaction, kind: app_commands.Choice[str],
            value: app_commands.Range[int, 1, 100], who: discord.Member | None = None,
        ) -> None:
            target = who.name if who else "everyone"
            await interaction.response.send_message(f"{kind.value} limit {value} for {target}")

        tree.add_command(config)

        @tree.command(description="Start a vote")
        async def vote(interaction: discord.Interaction, topic: str) -> None:
            await interaction.response.send_message(f"Vote: {topic}", view=VoteView())

        @tree.command(description="Moderators only")
        @app_commands.default_permissions(manage_guild=True)
        @app_commands.guild_only()
        async def admin(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("admin ok", ephemeral=True)

        @tree.command(description="Stream a reply by editing it")
        async def stream(interaction: discord.Interaction, words: int) -> None:
            await interaction.response.send_message("...")
            text = ""
            for i in range(words):
                text += f"w{i} "
                await interaction.edit_original_response(content=text.strip())

        @tree.command(description="Answer late")
        async def slow(interaction: discord.Interaction) -> None:
            await asyncio.sleep(self.late_seconds)
            try:
                await interaction.response.send_message("finally")
            except discord.HTTPException as exc:
                self.errors.append(exc)

        @tree.command(description="Answer twice")
        async def twice(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("once")
            try:
                await interaction.response.send_message("twice")
            except discord.InteractionResponded as exc:
                self.errors.append(exc)
            try:
                # Bypassing discord.py's own guard reaches Discord's 40060.
                await interaction._state.http.request(  # noqa: SLF001
                    discord.http.Route("GET", "/users/@me")
                )
                adapter = discord.webhook.async_.async_context.get()
                params = discord.webhook.async_.interaction_message_response_params(type=4, content="again")
                await adapter.create_interaction_response(
                    interaction.id, interaction.token, session=interaction._session, params=params
                )
            except discord.HTTPException as exc:
                self.errors.append(exc)

        @tree.command(description="Pick a fruit")
        async def fruit(interaction: discord.Interaction, name: str) -> None:
            await interaction.response.send_message(f"fruit {name}")

        @fruit.autocomplete("name")
        async def fruit_names(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
            fruits = ["apple", "apricot", "banana"]
            return [app_commands.Choice(name=f, value=f) for f in fruits if f.startswith(current)]

        @tree.context_menu(name="Quote")
        async def quote(interaction: discord.Interaction, message: discord.Message) -> None:
            await interaction.response.send_message(f"> {message.content}")

        @tree.command(description="Upload a file")
        async def upload(interaction: discord.Interaction, note: discord.Attachment) -> None:
            data = await note.read()
            await interaction.response.send_message(
                f"got {note.filename} ({len(data)} bytes)",
                file=discord.File(io.BytesIO(data[::-1]), filename="reversed.txt"),
            )

    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot:
            return
        self.seen_messages.append(message.content)
        if message.guild is None:
            if message.attachments:
                data = await message.attachments[0].read()
                await message.channel.send(f"attachment {message.attachments[0].filename}: {data.decode()}")
            elif message.content != "quiet":
                await message.channel.send(f"you said: {message.content}")
            return
        if message.content == "!thread":
            thread = await message.create_thread(name="Discussion")
            await thread.send("thread started")
        elif isinstance(message.channel, discord.Thread):
            await message.channel.send(f"in thread: {message.content}")

    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        self.reaction_events.append(("add", payload.user_id, str(payload.emoji)))

    async def on_raw_reaction_remove(self, payload: discord.RawReactionActionEvent) -> None:
        self.reaction_events.append(("remove", payload.user_id, str(payload.emoji)))

    async def on_raw_reaction_clear(self, payload: discord.RawReactionClearEvent) -> None:
        self.reaction_events.append(("clear", 0, ""))

    async def on_member_join(self, member: discord.Member) -> None:
        self.joined.append(member.id)


@pytest.fixture
def sample_bot() -> SampleBot:
    return SampleBot()
