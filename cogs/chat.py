"""Chat with the local model in DMs: streamed replies, ratings, regenerate / keep, /chat commands.

Only Discord here: the rules of a reply (context, sampling, outcomes, what counts as stale) are
in ``bot.chat``; this cog reads messages and clicks, calls the service, and renders the result.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.chat.generation import ReplyGeneration, ReplyOutcome
from bot.chat.service import PRESET_NAMES, ChatError, ChatService, Duplicate, RateLimited, ShownReply
from cogs import delivery
from cogs.command_errors import answers_failures, log_failure
from cogs.custom_ids import ROW_ID
from cogs.labelling import answering
from cogs.streaming import StreamedMessage
from storage.db import is_unavailable

if TYPE_CHECKING:
    from bot.app import OABot

log = logging.getLogger(__name__)

NO_CHAT = "Chat is switched off on this bot."
RESTARTING_NEW = "*I'm restarting; I'll answer this as soon as I'm back.*"
RESTARTING_PARTIAL = "*I'm restarting; I'll finish this reply right here as soon as I'm back.*"
RESUMED = "*I was restarted while answering you; here is my reply.*\n"
DROPPED = "*Older messages were left out to fit my memory.*\n"
APOLOGIES = {
    "timeout": "*Sorry, that took too long and I stopped. Please try again.*",
    "too_long": "*Sorry, our conversation no longer fits my memory. Start a new one with /chat reset.*",
}
APOLOGY = "*Sorry, something went wrong while I was answering. Please try again in a moment.*"
DATABASE_BUSY_CHAT = ("*Sorry, the database is busy right now, so I could not take your message. "
                      "Please send it again in a moment.*")
# After a shutdown lets running replies finish (or suspends them), their last edits get this long.
SUSPEND_SECONDS = 10


class ReplyButton(discord.ui.DynamicItem[discord.ui.Button], template=rf"chat:(?P<action>up|down|regen|keep):(?P<id>{ROW_ID})"):
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

    @answers_failures
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


@contextlib.asynccontextmanager
async def _typing(channel: discord.abc.Messageable) -> AsyncIterator[None]:
    """"Typing…" while the model writes, if Discord takes it: the reply does not depend on it."""
    async with contextlib.AsyncExitStack() as stack:
        try:
            await stack.enter_async_context(channel.typing())
        except Exception as exc:
            if not delivery.is_transient(exc):
                raise
            log.info("no typing indicator: %s", delivery.describe(exc))
        yield


def _apology(outcome: ReplyOutcome) -> str:
    if outcome.suspended:
        return RESTARTING_PARTIAL
    return APOLOGIES.get(outcome.problem or "", APOLOGY)


class ChatCog(commands.Cog, name="Chat"):
    chat_group = app_commands.Group(name="chat", description="Chat with the bot's language model in DMs")

    def __init__(self, bot: OABot, chat: ChatService | None, unavailable_reason: str | None) -> None:
        self.bot = bot
        self.chat = chat
        self.unavailable_reason = unavailable_reason
        self.settings = bot.settings.chat
        # Tasks writing replies, and the generations they run: a shutdown waits for them.
        self._writers: set[asyncio.Task[object]] = set()
        self._generations: set[ReplyGeneration] = set()
        self._stopping = False

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(ReplyButton)
        if self.chat is not None:
            self._spawn(self._resume_interrupted())

    def _spawn(self, work: object) -> None:
        task = asyncio.ensure_future(work)  # type: ignore[arg-type]
        self._writers.add(task)
        task.add_done_callback(self._writers.discard)

    async def drain(self) -> None:
        """A clean stop (the bot calls this before unloading cogs, while still listening): take no new
        replies, let running ones finish within the grace period, and leave the rest for the restart
        with a note instead of a cursor. Messages arriving meanwhile are stored and answered then."""
        self._stopping = True
        if self._writers:
            await asyncio.wait(set(self._writers), timeout=self.settings.shutdown_grace_seconds)
        for generation in list(self._generations):
            generation.suspend()
        if self._writers:
            await asyncio.wait(set(self._writers), timeout=SUSPEND_SECONDS)

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(ReplyButton)
        for task in list(self._writers):
            task.cancel()

    async def _resume_interrupted(self) -> None:
        """Finish the replies a crash or a restart interrupted: nothing a user wrote is lost."""
        assert self.chat is not None
        interrupted = await self.chat.interrupted_replies()
        if not interrupted:
            return
        await self.bot.wait_until_ready()
        log.info("finishing %d chat replies interrupted by a restart", len(interrupted))
        for reply in interrupted:
            if reply.channel_id is None:
                continue
            channel = self.bot.get_partial_messageable(reply.channel_id)
            pages = [channel.get_partial_message(page) for page in reply.page_ids]
            self._spawn(self._resume(channel, reply.reply_id, reply.user_discord_id, pages))

    async def _resume(self, channel: discord.PartialMessageable, reply_id: int, user_id: int,
                      pages: list[discord.PartialMessage]) -> None:
        try:
            await self._write_reply(channel, reply_id, user_id, pages=pages, preface=RESUMED)
        except discord.HTTPException:
            log.exception("could not finish chat reply %s after the restart", reply_id)

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
        return text

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if not self._addressed_to_me(message):
            return
        if self.chat is None:
            await self._say(message.channel, self.unavailable_reason or NO_CHAT)
            return
        try:
            accepted = await self.chat.accept_message(
                message.author.id,
                self._clean_text(message),
                display_name=message.author.display_name,
                channel_id=message.channel.id,
                discord_message_id=message.id,
            )
        except Duplicate:
            return  # a replayed gateway event: this message is (being) answered already
        except RateLimited as limited:
            await self._say(message.channel,
                            f"{limited.message} You can write again {discord.utils.format_dt(limited.retry_at, 'R')}.")
            return
        except ChatError as refused:
            await self._say(message.channel, refused.message)
            return
        except Exception as error:
            if not is_unavailable(error):
                raise
            log_failure("a chat message", message.author.id, error)
            await self._say(message.channel, DATABASE_BUSY_CHAT)
            return
        if self._stopping:
            await self._say(message.channel, RESTARTING_NEW)  # stored: answered after the restart
            return
        await self._tracked(self._write_reply(message.channel, accepted.reply_id, message.author.id,
                                              reference=message if message.guild else None))

    async def _say(self, channel: discord.abc.Messageable, text: str) -> None:
        """A short answer in the chat, retried through a Discord outage (one nonce: posted once)."""
        key = delivery.nonce()
        try:
            await delivery.deliver(lambda: channel.send(text, nonce=key),
                                   until=delivery.deadline_in(self.bot.settings.discord.delivery_retry_minutes),
                                   what="answer in a chat")
        except delivery.Undelivered:
            pass

    async def _tracked(self, work: object) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._writers.add(task)
        try:
            await work  # type: ignore[misc]
        finally:
            self._writers.discard(task)

    async def _write_reply(self, channel: discord.abc.Messageable, reply_id: int, user_id: int, *,
                           reference: discord.Message | None = None, preface: str = "",
                           pages: list[discord.PartialMessage] | None = None) -> None:
        assert self.chat is not None
        chat = self.chat
        writer = StreamedMessage(channel, self.settings.edit_interval_seconds, reference=reference, pages=pages or [],
                                 on_pages=lambda ids: chat.record_pages(reply_id, ids),
                                 retry_minutes=self.bot.settings.discord.delivery_retry_minutes)

        async def show_place(position: int) -> None:
            if position >= 1:
                await writer.status(f"*You are #{position} in the queue, one moment…*")

        async with chat.user_lock(user_id):
            if self._stopping:
                if not pages:
                    await self._say(channel, RESTARTING_NEW)
                return
            try:
                generation = await chat.start_generation(reply_id, on_position=show_place)
            except ChatError as refused:
                with contextlib.suppress(delivery.Undelivered):
                    await writer.finish(refused.message, view=None)
                return
            self._generations.add(generation)
            try:
                await self._retire_buttons(channel, generation.stale)
                note = preface + (DROPPED if generation.turn.dropped_messages else "")
                async with _typing(channel):
                    async for text in generation:
                        await writer.update(note + text)
            finally:
                self._generations.discard(generation)
                await generation.close()
            outcome = generation.outcome
            assert outcome is not None
            # The reply is stored whatever happens now; an outage outlasting the retries is logged.
            with contextlib.suppress(delivery.Undelivered):
                if outcome.complete:
                    await writer.finish(note + outcome.text,
                                        view=reply_view(reply_id, alternatives=generation.turn.regeneration,
                                                        kept=False))
                else:
                    shown = note + outcome.text + "\n\n" if outcome.text.strip() else ""
                    await writer.finish(shown + _apology(outcome), view=None)

    async def _retire_buttons(self, channel: discord.abc.Messageable, replies: list[ShownReply]) -> None:
        """A newer turn began: the previous answers keep only their rating buttons."""
        for reply in replies:
            try:
                await channel.get_partial_message(reply.discord_message_id).edit(  # type: ignore[attr-defined]
                    view=reply_view(reply.reply_id, feedback=reply.feedback, latest=False)
                )
            except discord.HTTPException:
                log.info("could not update the buttons of chat reply %s", reply.reply_id)

    # ----- buttons -----------------------------------------------------------------------------

    async def on_reply_button(self, interaction: discord.Interaction, action: str, reply_id: int) -> None:
        assert self.chat is not None
        user = interaction.user
        try:
            if action in ("up", "down"):
                value = await answering.run(
                    interaction, self.chat.rate(user.id, reply_id, 1 if action == "up" else -1,
                                                display_name=user.display_name))
                await answering.update(interaction, view=_rebuild_view(interaction.message, reply_id, feedback=value))
            elif action == "keep":
                result = await answering.run(interaction, self.chat.keep(user.id, reply_id,
                                                                         display_name=user.display_name))
                await answering.update(interaction, view=_rebuild_view(interaction.message, reply_id, kept=True))
                for other in result.others_shown:
                    await self._show_alternative(interaction.channel, other)
                choice = (f"Kept this answer over {result.pairs_recorded} other(s); the conversation continues "
                          "from it. Thanks, that choice helps train better models." if result.pairs_recorded else
                          "Kept this answer; the conversation continues from it. (It reads the same as the other "
                          "answer, so it tells nothing about which is better.)")
                await answering.note(interaction, choice)
            elif action == "regen":
                # Defer first: the new answer waits for the user's running reply, maybe for long.
                await interaction.response.defer()
                accepted = await self.chat.regenerate(user.id, reply_id, display_name=user.display_name)
                # The earlier answer loses its Regenerate button and gains "Keep this one".
                await delivery.edit_original(
                    interaction, view=_rebuild_view(interaction.message, reply_id, latest=False, alternatives=True,
                                                    kept=False))
                if interaction.channel is not None:
                    await self._tracked(self._write_reply(interaction.channel, accepted.reply_id, user.id))
        except ChatError as refused:
            await answering.note(interaction, refused.message)

    async def _show_alternative(self, channel: object, reply: ShownReply) -> None:
        try:
            await channel.get_partial_message(reply.discord_message_id).edit(  # type: ignore[attr-defined]
                view=reply_view(reply.reply_id, feedback=reply.feedback, latest=False, alternatives=True,
                                kept=reply.kept)
            )
        except discord.HTTPException:
            log.info("could not update the buttons of chat reply %s", reply.reply_id)

    # ----- slash commands ----------------------------------------------------------------------

    async def _require_chat(self, interaction: discord.Interaction) -> ChatService | None:
        if self.chat is None:
            await interaction.response.send_message(self.unavailable_reason or NO_CHAT, ephemeral=True)
        return self.chat

    @chat_group.command(name="reset", description="Start a new conversation; I forget the current one")
    async def reset(self, interaction: discord.Interaction) -> None:
        if (chat := await self._require_chat(interaction)) is None:
            return
        ended = await answering.run(interaction, chat.reset(interaction.user.id,
                                                            display_name=interaction.user.display_name))
        await answering.show(
            interaction,
            content="Done: your next message starts a new conversation." if ended
            else "There was no conversation to reset.",
        )

    @chat_group.command(name="system", description="Set the system prompt of your conversations (empty resets)")
    @app_commands.describe(prompt="How the assistant should behave; leave out to go back to the default")
    async def system(self, interaction: discord.Interaction, prompt: str | None = None) -> None:
        if (chat := await self._require_chat(interaction)) is None:
            return
        try:
            settings = await answering.run(interaction, chat.set_system_prompt(
                interaction.user.id, prompt, display_name=interaction.user.display_name))
        except ChatError as refused:
            await answering.show(interaction, content=refused.message)
            return
        what = "your own" if settings.custom_system_prompt else "the default"
        await answering.show(
            interaction,
            content=f"System prompt set to {what}:\n> {discord.utils.escape_markdown(settings.system_prompt)[:1800]}",
        )

    @chat_group.command(name="preset", description="Choose how the model samples its words")
    @app_commands.describe(name="k50 (balanced), k50-creative, k50-precise or nucleus9")
    @app_commands.choices(name=[app_commands.Choice(name=p, value=p) for p in PRESET_NAMES])
    async def preset(self, interaction: discord.Interaction, name: app_commands.Choice[str]) -> None:
        if (chat := await self._require_chat(interaction)) is None:
            return
        try:
            settings = await answering.run(interaction, chat.set_preset(
                interaction.user.id, name.value, display_name=interaction.user.display_name))
        except ChatError as refused:
            await answering.show(interaction, content=refused.message)
            return
        await answering.show(interaction, content=f"Sampling preset: **{settings.preset}**.")

    @chat_group.command(name="export", description="Download your own conversations as a JSON lines file")
    async def export(self, interaction: discord.Interaction) -> None:
        if (chat := await self._require_chat(interaction)) is None:
            return
        data = await answering.run(interaction, chat.export_user(interaction.user.id,
                                                                 display_name=interaction.user.display_name))
        if not data:
            await answering.show(interaction, content="You have no conversations yet.")
            return
        await answering.show(interaction, content="Here are your conversations.",
                             attachments=[discord.File(io.BytesIO(data), "conversations.jsonl")])

    @chat_group.command(name="optout", description="Keep your chats out of (or back in) the training data")
    @app_commands.describe(enabled="True keeps your chats out of every export; False allows their use")
    async def optout(self, interaction: discord.Interaction, enabled: bool = True) -> None:
        if (chat := await self._require_chat(interaction)) is None:
            return
        await answering.run(interaction, chat.set_opt_out(interaction.user.id, enabled,
                                                          display_name=interaction.user.display_name))
        await answering.show(
            interaction,
            content="Your chats are now kept out of every dataset export." if enabled
            else "Your chats may now be used in dataset exports. Thank you!",
        )


async def setup(bot: OABot) -> None:
    services = bot.services
    assert services is not None
    await bot.add_cog(ChatCog(bot, services.chat, services.chat_unavailable_reason))
