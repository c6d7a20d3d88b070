"""Right-click commands on a bot post: "Flag for moderators" (everyone) and "Delete subtree" (moderators).
Context menus cannot live in a command group, so the admin cog adds them to the tree when it loads.
"Delete subtree" runs the moderator check itself on every call."""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands

from bot.labelling.errors import LabellingError
from cogs.admin.actions import actions_of
from cogs.admin.checks import NotModerator, answer_refusal, require_moderator
from cogs.admin.render import say

FLAG_MENU = "Flag for moderators"
DELETE_MENU = "Delete subtree"


class ContextMenus:
    """Mixed into the /admin group cog; ``add_context_menus`` runs in its cog_load."""

    bot: Any

    def add_context_menus(self) -> None:
        flag = app_commands.ContextMenu(name=FLAG_MENU, callback=self.flag_post)
        flag.guild_only = True
        delete = app_commands.ContextMenu(name=DELETE_MENU, callback=self.delete_post)
        delete.guild_only = True
        delete.default_permissions = discord.Permissions(manage_guild=True)
        self.context_menus = [flag, delete]
        for menu in self.context_menus:
            self.bot.tree.add_command(menu)

    def remove_context_menus(self) -> None:
        for menu in getattr(self, "context_menus", []):
            self.bot.tree.remove_command(menu.name, type=menu.type)

    async def flag_post(self, interaction: discord.Interaction, message: discord.Message) -> None:
        try:
            result = await actions_of(interaction).flag_post(interaction.user.id, interaction.user.display_name,
                                                             message.id)
        except LabellingError as refused:
            await say(interaction, refused.message)
            return
        if result.removed:
            text = "Thank you. Enough members flagged this message that it was removed."
        elif result.counted:
            text = "Thank you: the moderators will look at this message."
        else:
            text = "You already flagged this message; the moderators have it in their queue."
        await say(interaction, text)

    async def delete_post(self, interaction: discord.Interaction, message: discord.Message) -> None:
        try:
            await require_moderator(interaction)
        except NotModerator as refused:
            await answer_refusal(interaction, refused)
            return
        await self.ask_delete(interaction, post_id=message.id)  # type: ignore[attr-defined]
