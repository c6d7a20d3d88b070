"""Answering an interaction in one step when the work is quick, deferring only when it is not.

An answer that carries the result costs one call; deferring and then editing costs two, and the edit
counts against Discord's per-channel edit limit (about 5 per 5 s), which a busy task channel reaches
fast. So the service call runs first and the interaction is deferred only if it is still running
after QUICK_SECONDS, well inside Discord's 3-second deadline. Half a second: most calls take a few
milliseconds, and a member who waits longer sees "thinking…" at once.

Once deferred, the answer goes through the interaction's webhook and is retried through a Discord
outage while the token lives (cogs/delivery.py). The first answer has Discord's 3 s deadline: when
Discord refuses it past that, no bot can answer; the work ran first and stays recorded, and a member
who submits it again is told it was recorded once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

import discord

from cogs import delivery

T = TypeVar("T")
log = logging.getLogger(__name__)
QUICK_SECONDS = 0.5
# A modal must be the first answer, within Discord's 3 s: work it needs first gets this long.
MODAL_SECONDS = 2.5


async def run(interaction: discord.Interaction, work: Awaitable[T], *, thinking: bool = False) -> T:
    """The work's result (or its exception); defers the interaction first if the work is slow."""
    job = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({job}, timeout=QUICK_SECONDS)
    if not done:
        try:
            await interaction.response.defer(ephemeral=True, thinking=thinking)
        except Exception as exc:
            if not isinstance(exc, discord.HTTPException) and not delivery.is_transient(exc):
                raise
            # Too late to answer (Discord dropped the interaction): the work still finishes and counts.
            log.warning("could not defer interaction %s: %s", interaction.id, delivery.describe(exc))
    return await job


async def before_modal(work: Awaitable[T]) -> T | None:
    """The work's result (or its exception) when it comes in time to answer with a modal; None when the
    database is too slow or away: the work is cancelled then, its transaction rolled back."""
    try:
        return await asyncio.wait_for(work, MODAL_SECONDS)
    except TimeoutError:
        return None


async def _first_answer(interaction: discord.Interaction, answer: Awaitable[None]) -> None:
    try:
        await answer
    except Exception as exc:
        if not delivery.unanswerable(exc):
            raise
        log.warning("could not answer interaction %s in time (%s); what the member did is recorded",
                    interaction.id, delivery.describe(exc))


async def update(interaction: discord.Interaction, **changes: Any) -> None:
    """Change the message the component or modal was on."""
    if interaction.response.is_done():
        await delivery.edit_original(interaction, **changes)
    else:
        await _first_answer(interaction, interaction.response.edit_message(**changes))


async def show(interaction: discord.Interaction, **message: Any) -> None:
    """The answer to a slash command: a new message only the member sees."""
    if interaction.response.is_done():
        await delivery.edit_original(interaction, **message)
    else:
        files = message.pop("attachments", [])
        await _first_answer(interaction, interaction.response.send_message(ephemeral=True, files=files, **message))


async def note(interaction: discord.Interaction, content: str | None = None, **extra: Any) -> None:
    """A separate message only the member sees, leaving the task message as it is."""
    if interaction.response.is_done():
        await delivery.followup(interaction, content, ephemeral=True, **extra)
    else:
        await _first_answer(interaction, interaction.response.send_message(content, ephemeral=True, **extra))
