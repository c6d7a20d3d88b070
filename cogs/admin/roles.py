"""/admin moderator-role: which role besides Manage Server makes a member a moderator."""

from __future__ import annotations

import discord
from discord import app_commands

from cogs.admin.checks import guild_admin


class ModeratorRoleCommands:
    """Mixed into the /admin group cog (cogs/admin/__init__.py)."""

    @app_commands.command(name="moderator-role", description="Set (or clear) the role that makes members moderators")
    @app_commands.describe(role="Members with this role may use /admin; leave empty to clear it")
    async def moderator_role(self, interaction: discord.Interaction, role: discord.Role | None = None) -> None:
        assert interaction.guild is not None
        config = await guild_admin(interaction.client).set_moderator_role(
            interaction.guild.id, role.id if role else None, actor_discord_id=interaction.user.id,
            actor_name=interaction.user.display_name,
        )
        text = (f"Members with the **{role.name}** role are now moderators (besides Manage Server)."
                if config.moderator_role_id else "No moderator role: only members with Manage Server are moderators.")
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=discord.AllowedMentions.none())
