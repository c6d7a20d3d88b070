"""Every interaction answers: a failure becomes one polite ephemeral message and one log line.

Slash commands fail into ``PoliteCommandTree.on_error``; component callbacks (``@answers_failures``) and
``on_interaction`` listeners (``OABot.on_error``) into ``answer_failure``. A database that is out of reach
(locked by another program, its server restarting) is said so, and logged without a traceback: it is
not a bug, and every request during an outage would print one. A button or select that no item of the
bot claims is answered too (``answer_unclaimed_component``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import discord
from discord import app_commands

from cogs import delivery
from storage.db import describe_error, is_unavailable

log = logging.getLogger(__name__)

GENERIC = "Sorry, I could not do that. Please try again in a moment."
DATABASE_BUSY = "Sorry, the database is busy right now, so I could not do that. Please try again in a moment."
BAD_VALUE = "Sorry, I could not use the value you gave for “{name}”. Please check it and try again."
UNKNOWN_COMMAND = "Sorry, I don't know that command any more. Your Discord app may still show an old version of it."
STALE_COMPONENT = ("These buttons are out of date or were not made by me, so nothing was changed. "
                   "Run the command again for new ones.")

ItemT = TypeVar("ItemT", bound=discord.ui.Item[Any])


def polite_message(error: BaseException) -> str:
    original = getattr(error, "original", None) or error
    if is_unavailable(original):
        return DATABASE_BUSY
    if isinstance(error, app_commands.TransformerError):
        # An option value the command cannot take (e.g. a choice from an outdated command list).
        name = getattr(error.transformer, "_error_display_name", None) or "that option"
        return BAD_VALUE.format(name=name)
    if isinstance(error, app_commands.CommandNotFound | app_commands.CommandSignatureMismatch):
        return UNKNOWN_COMMAND
    if isinstance(error, app_commands.CheckFailure) and str(error):
        return str(error)
    return GENERIC


def log_failure(what: str, user_id: int, error: BaseException) -> None:
    """One line; a traceback only for what nobody expected."""
    original = getattr(error, "original", None) or error
    if is_unavailable(original):
        log.warning("%s for user %s: the database is unavailable: %s", what, user_id, describe_error(original))
        return
    if delivery.unanswerable(original):
        # Discord failing (e.g. refusing a first answer past its 3 s deadline) is no bug of ours.
        log.warning("%s for user %s met a Discord failure: %s", what, user_id, delivery.describe(original))
        return
    expected = isinstance(error, app_commands.TransformerError | app_commands.CheckFailure)
    log.error("%s failed for user %s: %s: %s", what, user_id, type(original).__name__, original,
              exc_info=None if expected else original)


async def answer_failure(interaction: discord.Interaction, error: BaseException, what: str) -> None:
    """Log the failure and tell the member, in place of "thinking…" when the interaction was deferred."""
    log_failure(what, interaction.user.id, error)
    try:
        if interaction.response.is_done():  # deferred: the follow-up takes the place of "thinking…"
            await delivery.followup(interaction, polite_message(error), ephemeral=True)
        else:
            await interaction.response.send_message(polite_message(error), ephemeral=True)
    except Exception as exc:
        if not isinstance(exc, discord.HTTPException) and not delivery.is_transient(exc):
            raise
        log.info("could not tell the user about the failure of %s: %s", what, delivery.describe(exc))


def answers_failures(
    callback: Callable[[ItemT, discord.Interaction], Awaitable[None]],
) -> Callable[[ItemT, discord.Interaction], Awaitable[None]]:
    """For a component's callback: discord.py only logs what a DynamicItem's callback raises, and the
    member is left with "thinking…" or "This interaction failed"."""

    @functools.wraps(callback)
    async def run(item: ItemT, interaction: discord.Interaction) -> None:
        try:
            await callback(item, interaction)
        except Exception as error:
            custom_id = (interaction.data or {}).get("custom_id", "?")
            await answer_failure(interaction, error, f"component {custom_id}")

    return run


class PoliteCommandTree(app_commands.CommandTree):
    """A command tree whose last-resort error handler answers the member: a command or cog that
    handled the error itself (answered already) is left alone; otherwise never "The application
    did not respond"."""

    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError, /) -> None:
        command = interaction.command
        if interaction.response.is_done() and command is not None and command._has_any_error_handlers():
            return  # the command's or its cog's own handler answered
        name = command.qualified_name if command is not None else (interaction.data or {}).get("name", "?")
        await answer_failure(interaction, error, f"/{name}")


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
