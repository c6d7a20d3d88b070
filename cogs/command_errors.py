"""Every slash command answers: a failure becomes one polite ephemeral message and one log line. Every
button and select answers too, also one that no item of the bot claims."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import discord
from discord import app_commands

log = logging.getLogger(__name__)

GENERIC = "Sorry, I could not do that. Please try again in a moment."
BAD_VALUE = "Sorry, I could not use the value you gave for “{name}”. Please check it and try again."
UNKNOWN_COMMAND = "Sorry, I don't know that command any more. Your Discord app may still show an old version of it."
STALE_COMPONENT = ("These buttons are out of date or were not made by me, so nothing was changed. "
                   "Run the command again for new ones.")


def polite_message(error: app_commands.AppCommandError) -> str:
    if isinstance(error, app_commands.TransformerError):
        # An option value the command cannot take (e.g. a choice from an outdated command list).
        name = getattr(error.transformer, "_error_display_name", None) or "that option"
        return BAD_VALUE.format(name=name)
    if isinstance(error, app_commands.CommandNotFound | app_commands.CommandSignatureMismatch):
        return UNKNOWN_COMMAND
    if isinstance(error, app_commands.CheckFailure) and str(error):
        return str(error)
    return GENERIC


class PoliteCommandTree(app_commands.CommandTree):
    """A command tree whose last-resort error handler answers the member: a command or cog that
    handled the error itself (answered already) is left alone; otherwise never "The application
    did not respond"."""

    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError, /) -> None:
        command = interaction.command
        if interaction.response.is_done() and command is not None and command._has_any_error_handlers():
            return  # the command's or its cog's own handler answered
        name = command.qualified_name if command is not None else (interaction.data or {}).get("name", "?")
        original = getattr(error, "original", None) or error
        expected = isinstance(error, app_commands.TransformerError | app_commands.CheckFailure)
        log.error("/%s failed for user %s: %s: %s", name, interaction.user.id, type(original).__name__, original,
                  exc_info=None if expected else original)
        try:
            if interaction.response.is_done():  # deferred: the follow-up takes the place of "thinking…"
                await interaction.followup.send(polite_message(error), ephemeral=True)
            else:
                await interaction.response.send_message(polite_message(error), ephemeral=True)
        except discord.HTTPException:
            log.info("could not tell the user about the failure of /%s", name)


async def answer_unclaimed_component(interaction: discord.Interaction, items: Iterable[type[Any]]) -> None:
    """A button or select whose custom_id no template of ``items`` (the bot's DynamicItem classes: all its
    components are) matches, from a message of an older version or forged (letters or a huge number
    where an id goes, an unknown prefix): answered with ``STALE_COMPONENT`` instead of Discord's "This
    interaction failed"; nothing runs."""
    if interaction.type is not discord.InteractionType.component:
        return
    custom_id = str((interaction.data or {}).get("custom_id", ""))
    if any(item.__discord_ui_compiled_template__.fullmatch(custom_id) for item in items):
        return
    try:
        await interaction.response.send_message(STALE_COMPONENT, ephemeral=True)
    except discord.HTTPException:
        log.info("could not answer the unclaimed component %r", custom_id[:100])
