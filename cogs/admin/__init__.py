"""The /admin group: every moderator command, one small mixin per area, one moderator check for all.

discord.py gives one cog per command group, so the areas (``roles``, ``actions``, ``queues``, and the
channel set-up, stats, exports and model commands that join them) are mixins of ``AdminCog``.
``interaction_check`` runs the moderator check before every /admin command; buttons, the edit modal and
the "Delete subtree" context menu run the same check themselves, since they are not /admin commands.
"""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from cogs.admin.actions import EDIT_INPUT, EDIT_MODAL, EDIT_PREFIX, ModerationCommands
from cogs.admin.channels import ChannelCommands
from cogs.admin.checks import answer_refusal, require_moderator
from cogs.admin.components import DYNAMIC_ITEMS
from cogs.admin.context_menus import ContextMenus
from cogs.admin.exports import ExportCommands
from cogs.admin.model import ModelCommands
from cogs.admin.queues import QueueCommands
from cogs.admin.roles import ModeratorRoleCommands
from cogs.admin.stats import StatsCommands


def _modal_text(data: dict[str, Any], custom_id: str) -> str | None:
    for row in data.get("components", []):
        for item in row.get("components", []) or [row.get("component") or {}]:
            if item.get("custom_id") == custom_id:
                return str(item.get("value") or "")
    return None


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class AdminCog(ModeratorRoleCommands, ChannelCommands, ModerationCommands, QueueCommands, StatsCommands, ExportCommands,
               ModelCommands, ContextMenus, commands.GroupCog,
               group_name="admin", group_description="Moderator commands: channels, moderation, stats, exports"):
    def __init__(self, bot: Any) -> None:
        self.bot = bot
        super().__init__()

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(*DYNAMIC_ITEMS)
        self.add_context_menus()

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(*DYNAMIC_ITEMS)
        self.remove_context_menus()

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return await require_moderator(interaction)

    async def cog_app_command_error(self, interaction: discord.Interaction,
                                    error: app_commands.AppCommandError) -> None:
        if not await answer_refusal(interaction, error):
            raise error

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """Edit-modal submissions arrive here rather than at a Modal object, so they work after a restart."""
        if interaction.type is not discord.InteractionType.modal_submit:
            return
        data = dict(interaction.data or {})
        custom_id = str(data.get("custom_id", ""))
        if not custom_id.startswith(EDIT_PREFIX):
            return
        match = EDIT_MODAL.fullmatch(custom_id)
        text = _modal_text(data, EDIT_INPUT)
        await self.on_edit_submit(interaction, int(match["message"]) if match else None, text or "")


async def setup(bot: Any) -> None:
    await bot.add_cog(AdminCog(bot))
