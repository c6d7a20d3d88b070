"""The /admin group: every moderator command, one small mixin per area, one moderator check for all.

discord.py gives one cog per command group, so the areas (``roles``, and the channel set-up, actions,
queues, stats and exports that join them) are mixins of ``AdminCog``. ``interaction_check`` runs the
moderator check before every /admin command.
"""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from cogs.admin.checks import answer_refusal, require_moderator
from cogs.admin.roles import ModeratorRoleCommands


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class AdminCog(ModeratorRoleCommands, commands.GroupCog, group_name="admin",
               group_description="Moderator commands: channels, moderation, stats, exports"):
    def __init__(self, bot: Any) -> None:
        self.bot = bot
        super().__init__()

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return await require_moderator(interaction)

    async def cog_app_command_error(self, interaction: discord.Interaction,
                                    error: app_commands.AppCommandError) -> None:
        if not await answer_refusal(interaction, error):
            raise error


async def setup(bot: Any) -> None:
    await bot.add_cog(AdminCog(bot))
