"""Every slash command answers: a failure becomes one polite ephemeral message and one log line."""

from __future__ import annotations

import logging

import discord
from discord import app_commands

from cogs import delivery

log = logging.getLogger(__name__)

GENERIC = "Sorry, I could not do that. Please try again in a moment."
BAD_VALUE = "Sorry, I could not use the value you gave for “{name}”. Please check it and try again."
UNKNOWN_COMMAND = "Sorry, I don't know that command any more. Your Discord app may still show an old version of it."


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
        if delivery.unanswerable(original):
            # Discord failing (e.g. refusing a first answer past its 3 s deadline) is no bug of ours.
            log.warning("/%s for user %s met a Discord failure: %s", name, interaction.user.id,
                        delivery.describe(original))
        else:
            expected = isinstance(error, app_commands.TransformerError | app_commands.CheckFailure)
            log.error("/%s failed for user %s: %s: %s", name, interaction.user.id, type(original).__name__,
                      original, exc_info=None if expected else original)
        try:
            if interaction.response.is_done():  # deferred: the follow-up takes the place of "thinking…"
                await delivery.followup(interaction, polite_message(error), ephemeral=True)
            else:
                await interaction.response.send_message(polite_message(error), ephemeral=True)
        except Exception as exc:
            if not isinstance(exc, discord.HTTPException) and not delivery.is_transient(exc):
                raise
            log.info("could not tell the user about the failure of /%s: %s", name, delivery.describe(exc))
