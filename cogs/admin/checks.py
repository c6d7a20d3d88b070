"""Who is a moderator: runs on every /admin call (Discord's default-permission hint only hides commands;
server admins can override it, so it is not security).

A moderator is a member with Manage Server, or with the role set by ``/admin moderator-role``, or a
Discord id in ``[discord] owner_ids``. A refused call gets one polite sentence, changes nothing, and
leaves an audit row.
"""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands

from bot.admin.guilds import GuildAdmin
from cogs import delivery

NOT_MODERATOR = ("This command is for the server's moderators: members with Manage Server or the moderator "
                 "role. Nothing was changed.")
GUILD_ONLY = "Moderator commands work in a server, not in DMs."


class NotModerator(app_commands.CheckFailure):
    """Raised by the moderator check; the admin cog answers it with ``NOT_MODERATOR``."""


def guild_admin(bot: Any) -> GuildAdmin:
    return GuildAdmin(bot.services.sessions, bot.settings.labelling.default_language)


def _command_name(interaction: discord.Interaction) -> str:
    """The command, or for a button or form of a moderator message, its custom_id."""
    data = interaction.data or {}
    if interaction.type is discord.InteractionType.component:
        return f"button {data.get('custom_id', '?')}"
    if interaction.type is discord.InteractionType.modal_submit:
        return f"form {data.get('custom_id', '?')}"
    command = interaction.command
    return command.qualified_name if command is not None else str(data.get("name", "?"))


def _options(data: Any) -> dict[str, Any]:
    """The options of the call, flattened through subcommand groups."""
    options: dict[str, Any] = {}
    for option in (data or {}).get("options", []) or []:
        if "options" in option:
            options.update(_options(option))
        else:
            options[option.get("name", "?")] = option.get("value")
    return options


async def is_moderator(interaction: discord.Interaction, admin: GuildAdmin) -> bool:
    user = interaction.user
    owners = set(interaction.client.settings.discord.owner_ids)  # type: ignore[attr-defined]
    if user.id in owners:
        return True
    if not isinstance(user, discord.Member) or interaction.guild is None:
        return False
    if user.guild_permissions.manage_guild:
        return True
    config = await admin.config(interaction.guild.id)
    return config.moderator_role_id is not None and any(role.id == config.moderator_role_id for role in user.roles)


async def require_moderator(interaction: discord.Interaction) -> bool:
    """The check itself: True for a moderator; otherwise audits the attempt and raises NotModerator."""
    admin = guild_admin(interaction.client)
    if await is_moderator(interaction, admin):
        return True
    guild_id = interaction.guild.id if interaction.guild is not None else None
    await admin.audit_refused(guild_id, interaction.user.id, _command_name(interaction), _options(interaction.data))
    raise NotModerator(GUILD_ONLY if guild_id is None else NOT_MODERATOR)


async def answer_refusal(interaction: discord.Interaction, error: app_commands.AppCommandError) -> bool:
    """Answer a moderator refusal politely; False when the error is something else."""
    if not isinstance(error, NotModerator):
        return False
    message = str(error) or NOT_MODERATOR
    if interaction.response.is_done():
        await delivery.followup(interaction, message, ephemeral=True)
    else:
        await interaction.response.send_message(message, ephemeral=True)
    return True
