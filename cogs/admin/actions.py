"""/admin ban, unban, delete, edit, halt, resume and log-channel. Destructive actions answer with a
confirmation (ConfirmButton); the action runs on the click, after the moderator check runs again.
Every action leaves audit rows (written by the engine) and one line in the guild's log channel."""

from __future__ import annotations

import io
import logging
import re

import discord
from discord import app_commands

from bot.admin.actions import BanDone, DeleteDone, ModeratorActions
from bot.labelling.errors import LabellingError
from cogs.admin.checks import NotModerator, answer_refusal, guild_admin, require_moderator
from cogs.admin.components import REASON_CHARS, confirm_view
from cogs.admin.render import QUIET, done, moderator_of, person, preview_embed, refuse, say, short
from cogs.custom_ids import ROW_ID

log = logging.getLogger(__name__)
EDIT_PREFIX = "adm:edit:"
EDIT_MODAL = re.compile(rf"{EDIT_PREFIX}(?P<message>{ROW_ID})")
STALE_FORM = "This form is out of date or was not made by me. Nothing was changed."
EDIT_INPUT = "adm:text"
MODAL_TEXT_LIMIT = 4000
TARGET_HELP = "A message link (Copy Message Link), a bot post's id, or our message number"


def actions_of(interaction: discord.Interaction) -> ModeratorActions:
    return ModeratorActions(interaction.client.services.labelling)  # type: ignore[attr-defined]


def _ban_lines(result: BanDone, actor: str) -> tuple[str, str]:
    reason = f" Reason: {result.reason}." if result.reason else ""
    tasks = f" {result.cancelled_tasks} open task(s) withdrawn." if result.cancelled_tasks else ""
    who = person(result.discord_id, result.name)
    return f"Banned {who}.{tasks}{reason}", f"🔨 {actor} banned {who}.{tasks}{reason}"


def _delete_lines(result: DeleteDone, actor: str) -> tuple[str, str]:
    below = len(result.removed) - 1
    what = f"message #{result.message_id} of tree #{result.tree_id}" + (f" and {below} below it" if below else "")
    return f"Deleted {what}.", f"🗑️ {actor} deleted {what}."


class ModerationCommands:
    """Mixed into the /admin group cog (cogs/admin/__init__.py)."""

    @app_commands.command(name="ban", description="Ban a member from the campaign (asks to confirm)")
    @app_commands.describe(member="Who to ban", reason=f"Why (at most {REASON_CHARS} characters; shown in the log)")
    async def ban(self, interaction: discord.Interaction, member: discord.User,
                  reason: app_commands.Range[str, 1, REASON_CHARS] | None = None) -> None:
        text = (f"Ban {person(member.id, member.display_name)}? They can no longer take tasks or vote, and their "
                f"open tasks are withdrawn." + (f"\nReason: {reason}" if reason else ""))
        await say(interaction, text, view=confirm_view("ban", member.id, reason, label="Ban"))

    @app_commands.command(name="unban", description="Let a banned member take part again")
    @app_commands.describe(member="Who to unban")
    async def unban(self, interaction: discord.Interaction, member: discord.User) -> None:
        actor = person(interaction.user.id, interaction.user.display_name)
        try:
            result = await actions_of(interaction).unban(moderator_of(interaction), member.id, member.display_name)
        except LabellingError as refused:
            await refuse(interaction, refused)
            return
        who = person(result.discord_id, result.name)
        await done(interaction, f"Unbanned {who}.", f"🕊️ {actor} unbanned {who}.")

    @app_commands.command(name="delete", description="Hide a message and everything below it (shows it, then asks)")
    @app_commands.describe(message=TARGET_HELP)
    async def delete(self, interaction: discord.Interaction, message: str) -> None:
        await self.ask_delete(interaction, target=message)

    async def ask_delete(self, interaction: discord.Interaction, *, target: str | None = None,
                         message_id: int | None = None, post_id: int | None = None) -> None:
        try:
            preview = await actions_of(interaction).delete_preview(target, message_id=message_id, post_id=post_id)
        except LabellingError as refused:
            await refuse(interaction, refused)
            return
        view = confirm_view("del", preview.message.id, label=f"Delete {preview.total} message(s)")
        await say(interaction, "This is what would be hidden:", embed=preview_embed(preview), view=view)

    @app_commands.command(name="edit", description="Correct a message's text (the old text is kept)")
    @app_commands.describe(message=TARGET_HELP)
    async def edit(self, interaction: discord.Interaction, message: str) -> None:
        try:
            line = await actions_of(interaction).message(message)
        except LabellingError as refused:
            await refuse(interaction, refused)
            return
        if len(line.text) > MODAL_TEXT_LIMIT:
            await say(interaction, f"Message #{line.id} is longer than a Discord form can hold; it cannot be "
                                   "edited here.")
            return
        # The cog's listener takes the submission (also after a restart); the timeout only frees this object.
        modal = discord.ui.Modal(title=f"Edit message #{line.id}", custom_id=f"adm:edit:{line.id}", timeout=900)
        modal.add_item(discord.ui.TextInput(
            label="Text", custom_id=EDIT_INPUT, style=discord.TextStyle.paragraph, default=line.text,
            max_length=MODAL_TEXT_LIMIT,
        ))
        await interaction.response.send_modal(modal)

    async def on_edit_submit(self, interaction: discord.Interaction, message_id: int | None, text: str) -> None:
        """The edit modal's submission (routed by the cog's listener, so it works after a restart); no
        ``message_id`` when the form's custom_id does not parse."""
        try:
            await require_moderator(interaction)
        except NotModerator as refused:
            await answer_refusal(interaction, refused)
            return
        # Nothing the moderator wrote is lost: a refused text comes back with the reason.
        echo = discord.File(io.BytesIO(text.encode()), filename=f"message-{message_id or 'text'}.txt")
        if message_id is None:
            await say(interaction, STALE_FORM + " Your text is attached.", file=echo)
            return
        actor = person(interaction.user.id, interaction.user.display_name)
        try:
            line = await actions_of(interaction).edit(moderator_of(interaction), message_id, text)
        except LabellingError as refused:
            await say(interaction, refused.message + " Your text is attached.", file=echo)
            return
        await done(interaction, f"Message #{line.id} now reads:\n>>> {short(line.text, 1500)}",
                   f"✏️ {actor} edited message #{line.id} of tree #{line.tree_id} (old text kept).")

    @app_commands.command(name="halt", description="Stop a conversation tree (asks to confirm)")
    @app_commands.describe(tree="Our tree number, or a link to / id of one of its posts")
    async def halt(self, interaction: discord.Interaction, tree: str) -> None:
        try:
            tree_id = await actions_of(interaction).tree_id(tree)
        except LabellingError as refused:
            await refuse(interaction, refused)
            return
        await say(interaction, f"Halt tree #{tree_id}? It stops taking work and its open tasks are withdrawn "
                               "until a moderator resumes it.", view=confirm_view("halt", tree_id, label="Halt"))

    @app_commands.command(name="resume", description="Let a halted conversation tree continue")
    @app_commands.describe(tree="Our tree number, or a link to / id of one of its posts")
    async def resume(self, interaction: discord.Interaction, tree: str) -> None:
        actor = person(interaction.user.id, interaction.user.display_name)
        try:
            result = await actions_of(interaction).resume(moderator_of(interaction), tree)
        except LabellingError as refused:
            await refuse(interaction, refused)
            return
        state = result.state.replace("_", " ")
        await done(interaction, f"Tree #{result.tree_id} resumed; it is now in {state}.",
                   f"▶️ {actor} resumed tree #{result.tree_id} (now {state}).")

    @app_commands.command(name="log-channel", description="Where the bot posts one line per moderator action")
    @app_commands.describe(channel="A text channel the bot can post in")
    async def log_channel(self, interaction: discord.Interaction, channel: discord.TextChannel) -> None:
        assert interaction.guild is not None
        if not channel.permissions_for(interaction.guild.me).send_messages:
            await say(interaction, f"I cannot post in {channel.mention}; give me Send Messages there first. "
                                   "Nothing was changed.")
            return
        await guild_admin(interaction.client).set_log_channel(
            interaction.guild.id, channel.id, actor_discord_id=interaction.user.id,
            actor_name=interaction.user.display_name,
        )
        actor = person(interaction.user.id, interaction.user.display_name)
        await done(interaction, f"Moderator actions are now logged in {channel.mention}.",
                   f"📋 {actor} made this the moderation log channel.")

    async def on_confirm(self, interaction: discord.Interaction, action: str, target: int,
                         reason: str | None) -> None:
        """A moderator clicked a ConfirmButton (the check already passed)."""
        service, moderator = actions_of(interaction), moderator_of(interaction)
        actor = person(interaction.user.id, interaction.user.display_name)
        try:
            if action == "ban":
                name = await _member_name(interaction, target)
                answer, log_line = _ban_lines(await service.ban(moderator, target, name, reason), actor)
            elif action == "banauthor":
                answer, log_line = _ban_lines(await service.ban_author(moderator, target), actor)
            elif action == "del":
                deleted = await service.delete(moderator, target)
                answer, log_line = _delete_lines(deleted, actor)
                gone = await _take_down_posts(interaction, deleted.posts)
                if gone:
                    answer += f" {gone} post(s) removed from the channels."
            else:
                result = await service.halt(moderator, target)
                answer = f"Tree #{result.tree_id} halted."
                log_line = f"⏸️ {actor} halted tree #{result.tree_id}."
        except LabellingError as refused:
            await interaction.response.edit_message(content=refused.message, embeds=[], view=None,
                                                    allowed_mentions=QUIET)
            return
        await done(interaction, answer, log_line, update=True)


async def _take_down_posts(interaction: discord.Interaction, posts: list[tuple[int, int]]) -> int:
    """Remove the bot's posts of the hidden messages, so spam leaves the channel too; best effort."""
    removed = 0
    for channel_id, message_id in posts:
        try:
            await interaction.client.http.delete_message(channel_id, message_id, reason="removed by a moderator")
        except discord.NotFound:
            continue
        except discord.HTTPException as exc:
            log.warning("could not remove post %s in channel %s: %s", message_id, channel_id, exc)
            continue
        removed += 1
    return removed


async def _member_name(interaction: discord.Interaction, discord_id: int) -> str | None:
    member = interaction.guild.get_member(discord_id) if interaction.guild else None
    return member.display_name if member else None

