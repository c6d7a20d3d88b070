"""Chat with the local model in DMs: streamed replies, ratings, regenerate / keep, /chat commands."""

from __future__ import annotations

import asyncio
import io
import logging
import re
from collections import defaultdict
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.chat.service import PRESET_NAMES, ChatError, ChatService, ChatTurn, RateLimited
from cogs.streaming import StreamedMessage
from model_runner import preset as sampling_preset
from storage.enums import ChatMessageState

log = logging.getLogger(__name__)



NO_CHAT = "Chat is switched off on this bot."


class ReplyButton(discord.ui.DynamicItem[discord.ui.Button], template=r"chat:(?P<action>up|down|regen|keep):(?P<id>\d+)"):
    """The buttons under every reply. Their state lives in the custom_id, so they work after restarts."""

    LOOK = {
        "up": ("👍", None, discord.ButtonStyle.secondary),
        "down": ("👎", None, discord.ButtonStyle.secondary),
        "regen": ("🔄", "Regenerate", discord.ButtonStyle.secondary),
        "keep": ("📌", "Keep this one", discord.ButtonStyle.primary),
    }

    def __init__(self, action: str, reply_id: int, *, selected: bool = False, disabled: bool = False) -> None:
        emoji, label, style = self.LOOK[action]
        if selected:
            style = discord.ButtonStyle.success
        super().__init__(
            discord.ui.Button(
                emoji=emoji, label=label, style=style, disabled=disabled, custom_id=f"chat:{action}:{reply_id}"
            )
        )
        self.action = action
        self.reply_id = reply_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str]
    ) -> ReplyButton:
        return cls(match["action"], int(match["id"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        cog: ChatCog | None = interaction.client.get_cog("Chat")  # type: ignore[union-attr]
        if cog is None or cog.chat is None:
            await interaction.response.send_message(NO_CHAT, ephemeral=True)
            return
        await cog.on_reply_button(interaction, self.action, self.reply_id)


def reply_view(reply_id: int, *, feedback: int | None = None, alternatives: bool = False,
               latest: bool = True, kept: bool = False) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(ReplyButton("up", reply_id, selected=feedback == 1))
    view.add_item(ReplyButton("down", reply_id, selected=feedback == -1))
    if latest:
        view.add_item(ReplyButton("regen", reply_id))
    if alternatives:
        view.add_item(ReplyButton("keep", reply_id, selected=kept))
    return view


class ChatCog(commands.Cog, name="Chat"):
    chat_group = app_commands.Group(name="chat", description="Chat with the bot's language model in DMs")

    def __init__(self, bot: Any, chat: ChatService | None, runner: Any, unavailable_reason: str | None) -> None:
        self.bot = bot
        self.chat = chat
        self.runner = runner
        self.unavailable_reason = unavailable_reason
        self.settings = bot.settings.chat
        self._user_locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._streams: set[Any] = set()
        self._resuming: asyncio.Task[None] | None = None

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(ReplyButton)
        if self.chat is not None:
            self._resuming = asyncio.create_task(self._answer_interrupted())

    async def _answer_interrupted(self) -> None:
        """Answer the messages a crash or restart left without a reply: nothing a user wrote is lost."""
        assert self.chat is not None
        turns = await self.chat.interrupted_turns()
        if not turns:
            return
        await self.bot.wait_until_ready()
        log.info("answering %d chat messages interrupted by a restart", len(turns))
        for channel_id, turn in turns:
            try:
                channel = self.bot.get_channel(channel_id) or await self.bot.fetch_channel(channel_id)
                async with self._user_locks[turn.user_discord_id]:
                    await self.stream_reply(
                        channel, turn, preface="*I was restarted while answering you; here is my reply.*\n"
                    )
            except discord.HTTPException:
                log.exception("could not resume chat reply %s", turn.reply_id)
                await self.chat.finish_reply(turn.reply_id, "", state=ChatMessageState.FAILED)

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(ReplyButton)
        if self._resuming is not None:
            self._resuming.cancel()
        for stream in list(self._streams):
            stream.cancel()

    # ----- messages ----------------------------------------------------------------------------

    def _addressed_to_me(self, message: discord.Message) -> bool:
        if message.author.bot or self.bot.user is None:
            return False
        if message.guild is None:
            return True
        return self.settings.answer_mentions and self.bot.user in message.mentions

    def _clean_text(self, message: discord.Message) -> str:
        text = message.content
        if message.guild is not None and self.bot.user is not None:
            text = re.sub(rf"<@!?{self.bot.user.id}>", "", text)
        return text.strip()

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if not self._addressed_to_me(message):
            return
        if self.chat is None:
            await message.channel.send(self.unavailable_reason or NO_CHAT)
            return
        async with self._user_locks[message.author.id]:
            # One turn at a time per user, so a quick second message sees the first reply in its context.
            try:
                turn = await self.chat.begin_turn(
                    message.author.id,
                    self._clean_text(message),
                    display_name=message.author.display_name,
                    channel_id=message.channel.id,
                    discord_message_id=message.id,
                )
            except RateLimited as limited:
                await message.channel.send(
                    f"{limited.message} You can write again {discord.utils.format_dt(limited.retry_at, 'R')}."
                )
                return
            except ChatError as refused:
                await message.channel.send(refused.message)
                return
            await self.stream_reply(message.channel, turn, reference=message if message.guild else None)

    async def stream_reply(self, channel: discord.abc.Messageable, turn: ChatTurn, *,
                           reference: discord.Message | None = None, alternatives: bool = False,
                           preface: str = "") -> None:
        assert self.chat is not None
        seed = None if self.settings.seed is None else (self.settings.seed + turn.reply_id) % (2**32 - 1)
        params = sampling_preset(turn.preset, max_tokens=self.settings.max_reply_tokens, seed=seed)
        note = preface + ("*Older messages were left out to fit my memory.*\n" if turn.dropped_messages else "")
        writer = StreamedMessage(channel, self.settings.edit_interval_seconds, reference=reference)
        queue_notice: dict[str, Any] = {}

        async def on_position(position: int) -> None:
            if position and position >= 1:
                queue_notice["text"] = f"*You are #{position} in the queue, one moment…*"
                await writer.status(queue_notice["text"])

        stream = self.runner.stream_chat(
            turn.messages, params, user_key=turn.owner_key, conversation_key=turn.conversation_key,
            on_position=lambda p: asyncio.ensure_future(on_position(p)),
        )
        self._streams.add(stream)
        text = ""
        state = ChatMessageState.COMPLETE
        result = None
        try:
            async with asyncio.timeout(self.settings.reply_timeout_seconds):
                async with channel.typing():
                    async for chunk in stream:
                        text += chunk
                        await writer.update(note + text)
            result = stream.result
        except TimeoutError:
            stream.cancel()
            state = ChatMessageState.CANCELLED
            log.warning("chat reply %s timed out", turn.reply_id)
        except Exception:
            stream.cancel()
            state = ChatMessageState.FAILED
            log.exception("chat reply %s failed", turn.reply_id)
        finally:
            self._streams.discard(stream)

        if state == ChatMessageState.COMPLETE and not text.strip():
            state = ChatMessageState.FAILED
        # Stored before the buttons appear, so a click can never find the reply unfinished.
        await self.chat.finish_reply(
            turn.reply_id,
            text,
            state=state,
            prompt_tokens=result.prompt_tokens if result else None,
            completion_tokens=result.completion_tokens if result else None,
            generation_ms=int(result.total_s * 1000) if result else None,
        )
        if state == ChatMessageState.COMPLETE:
            last = await writer.finish(note + text, view=reply_view(turn.reply_id, alternatives=alternatives))
            await self.chat.link_discord_message(turn.reply_id, last.id)
        else:
            apology = (
                "*Sorry, that took too long and I stopped. Please try again.*"
                if state == ChatMessageState.CANCELLED
                else "*Sorry, something went wrong while I was answering. Please try again in a moment.*"
            )
            await writer.finish((note + text + "\n\n" if text.strip() else "") + apology, view=None)

    # ----- buttons -----------------------------------------------------------------------------

    async def on_reply_button(self, interaction: discord.Interaction, action: str, reply_id: int) -> None:
        assert self.chat is not None
        try:
            if action in ("up", "down"):
                value = await self.chat.rate(interaction.user.id, reply_id, 1 if action == "up" else -1)
                view = _rebuild_view(interaction.message, reply_id, feedback=value)
                await interaction.response.edit_message(view=view)
            elif action == "keep":
                result = await self.chat.keep(interaction.user.id, reply_id)
                await interaction.response.edit_message(view=_rebuild_view(interaction.message, reply_id, kept=True))
                await interaction.followup.send(
                    f"Kept this answer over {len(result.alternatives) - 1} other(s); the conversation continues "
                    "from it. Thanks, that choice helps train better models.",
                    ephemeral=True,
                )
            elif action == "regen":
                async with self._user_locks[interaction.user.id]:
                    turn = await self.chat.regenerate(interaction.user.id, reply_id)
                    # The earlier answer loses its Regenerate button and gains "Keep this one".
                    await interaction.response.edit_message(
                        view=_rebuild_view(interaction.message, reply_id, latest=False, alternatives=True)
                    )
                    await self.stream_reply(interaction.channel, turn, alternatives=True)
        except ChatError as refused:
            if interaction.response.is_done():
                await interaction.followup.send(refused.message, ephemeral=True)
            else:
                await interaction.response.send_message(refused.message, ephemeral=True)

    # ----- slash commands ----------------------------------------------------------------------

    async def _require_chat(self, interaction: discord.Interaction) -> ChatService | None:
        if self.chat is None:
            await interaction.response.send_message(
                self.unavailable_reason or NO_CHAT, ephemeral=True
            )
        return self.chat

    @chat_group.command(name="reset", description="Start a new conversation; I forget the current one")
    async def reset(self, interaction: discord.Interaction) -> None:
        if (chat := await self._require_chat(interaction)) is None:
            return
        ended = await chat.reset(interaction.user.id)
        await interaction.response.send_message(
            "Done: your next message starts a new conversation." if ended else "There was no conversation to reset.",
            ephemeral=True,
        )

    @chat_group.command(name="system", description="Set the system prompt of your conversations (empty resets)")
    @app_commands.describe(prompt="How the assistant should behave; leave out to go back to the default")
    async def system(self, interaction: discord.Interaction, prompt: str | None = None) -> None:
        if (chat := await self._require_chat(interaction)) is None:
            return
        try:
            settings = await chat.set_system_prompt(interaction.user.id, prompt)
        except ChatError as refused:
            await interaction.response.send_message(refused.message, ephemeral=True)
            return
        what = "your own" if settings.custom_system_prompt else "the default"
        await interaction.response.send_message(
            f"System prompt set to {what}:\n> {discord.utils.escape_markdown(settings.system_prompt)[:1800]}",
            ephemeral=True,
        )

    @chat_group.command(name="preset", description="Choose how the model samples its words")
    @app_commands.describe(name="k50 (balanced), k50-creative, k50-precise or nucleus9")
    @app_commands.choices(name=[app_commands.Choice(name=p, value=p) for p in PRESET_NAMES])
    async def preset(self, interaction: discord.Interaction, name: app_commands.Choice[str]) -> None:
        if (chat := await self._require_chat(interaction)) is None:
            return
        try:
            settings = await chat.set_preset(interaction.user.id, name.value)
        except ChatError as refused:
            await interaction.response.send_message(refused.message, ephemeral=True)
            return
        await interaction.response.send_message(f"Sampling preset: **{settings.preset}**.", ephemeral=True)

    @chat_group.command(name="export", description="Download your own conversations as a JSON lines file")
    async def export(self, interaction: discord.Interaction) -> None:
        if (chat := await self._require_chat(interaction)) is None:
            return
        data = await chat.export_user(interaction.user.id)
        if not data:
            await interaction.response.send_message("You have no conversations yet.", ephemeral=True)
            return
        await interaction.response.send_message(
            "Here are your conversations.", file=discord.File(io.BytesIO(data), "conversations.jsonl"),
            ephemeral=True,
        )

    @chat_group.command(name="optout", description="Keep your chats out of (or back in) the training data")
    @app_commands.describe(enabled="True keeps your chats out of every export; False allows their use")
    async def optout(self, interaction: discord.Interaction, enabled: bool = True) -> None:
        if (chat := await self._require_chat(interaction)) is None:
            return
        await chat.set_opt_out(interaction.user.id, enabled)
        await interaction.response.send_message(
            "Your chats are now kept out of every dataset export." if enabled
            else "Your chats may now be used in dataset exports. Thank you!",
            ephemeral=True,
        )


def _rebuild_view(message: discord.Message | None, reply_id: int, *, feedback: int | None = None,
                  latest: bool | None = None, alternatives: bool | None = None,
                  kept: bool | None = None) -> discord.ui.View:
    """The message's buttons with one thing changed, keeping what the others showed."""
    current: dict[str, discord.ButtonStyle] = {}
    for row in message.components if message else []:
        for child in getattr(row, "children", []):
            match = re.fullmatch(r"chat:(\w+):\d+", getattr(child, "custom_id", "") or "")
            if match:
                current[match[1]] = child.style
    if feedback is None and "up" in current:
        feedback = 1 if current["up"] == discord.ButtonStyle.success else (
            -1 if current.get("down") == discord.ButtonStyle.success else None)
    return reply_view(
        reply_id,
        feedback=feedback,
        latest="regen" in current if latest is None else latest,
        alternatives="keep" in current if alternatives is None else alternatives,
        kept=(current.get("keep") == discord.ButtonStyle.success) if kept is None else kept,
    )


async def setup(bot: Any) -> None:
    services = bot.services
    await bot.add_cog(ChatCog(bot, services.chat, services.chat_runner, services.chat_unavailable_reason))
