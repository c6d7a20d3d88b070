"""/admin flagged (the moderation queue with Keep / Delete / Ban author per entry), /admin trollboard and
/admin audit [member], paged with buttons that keep their page in the custom_id."""

from __future__ import annotations

import discord
from discord import app_commands

from bot.admin.queues import ModerationQueues
from bot.labelling.errors import LabellingError
from cogs.admin.actions import actions_of
from cogs.admin.components import confirm_view
from cogs.admin.render import (
    QUIET,
    audit_page_message,
    flag_page_message,
    moderator_of,
    person,
    post_log,
    refuse,
    say,
    trollboard_embed,
)


def queues_of(interaction: discord.Interaction) -> ModerationQueues:
    return ModerationQueues(interaction.client.services.sessions)  # type: ignore[attr-defined]


class QueueCommands:
    """Mixed into the /admin group cog (cogs/admin/__init__.py)."""

    @app_commands.command(name="flagged", description="The moderation queue: flagged messages, most flagged first")
    async def flagged(self, interaction: discord.Interaction) -> None:
        page = await queues_of(interaction).flagged(0)
        await say(interaction, **flag_page_message(page))

    @app_commands.command(name="trollboard", description="Members whose work draws the most flags and downvotes")
    async def trollboard(self, interaction: discord.Interaction) -> None:
        lines = await queues_of(interaction).trollboard()
        await say(interaction, embed=trollboard_embed(lines))

    @app_commands.command(name="audit", description="What moderators and the bot did, newest first")
    @app_commands.describe(member="Only what this member did or had done to them")
    async def audit(self, interaction: discord.Interaction, member: discord.User | None = None) -> None:
        page = await queues_of(interaction).audit(interaction.guild_id, 0, member.id if member else None)
        await say(interaction, **audit_page_message(page))

    async def on_page(self, interaction: discord.Interaction, view: str, page: int, member: int | None) -> None:
        queues = queues_of(interaction)
        if view == "flagged":
            message = flag_page_message(await queues.flagged(page))
        else:
            message = audit_page_message(await queues.audit(interaction.guild_id, page, member))
        await interaction.response.edit_message(allowed_mentions=QUIET, **message)

    async def on_flag_button(self, interaction: discord.Interaction, action: str, message_id: int,
                             page: int) -> None:
        """Keep resolves the flag at once and redraws the page; Delete and Ban author ask to confirm first."""
        if action == "del":
            await self.ask_delete(interaction, message_id=message_id)  # type: ignore[attr-defined]
            return
        if action == "ban":
            await say(interaction, f"Ban the author of message #{message_id}? Their open tasks are withdrawn.",
                      view=confirm_view("banauthor", message_id, label="Ban author"))
            return
        try:
            await actions_of(interaction).keep(moderator_of(interaction), message_id)
        except LabellingError as refused:
            await refuse(interaction, refused)
            return
        actor = person(interaction.user.id, interaction.user.display_name)
        logged = await post_log(interaction, f"✅ {actor} kept flagged message #{message_id}.")
        content = flag_page_message(await queues_of(interaction).flagged(page))
        note = f"Kept message #{message_id}." + ("" if logged else " (No log channel set.)")
        content["content"] = f"{note}\n{content['content']}"
        await interaction.response.edit_message(allowed_mentions=QUIET, **content)
