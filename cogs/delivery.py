"""Messages a member waits for arrive through a Discord outage: the call is retried until a deadline.

discord.py retries a failing call a few times by itself (a 5xx for about 25 s, a 429 five times), then
raises. An outage longer than that would lose the answer, so ``deliver`` keeps retrying transient
failures (5xx, a 429 discord.py gave up on, a lost connection) with capped exponential backoff until
the deadline: for an interaction's webhook, the life of its token (15 minutes from its creation);
for a channel message, ``[discord] delivery_retry_minutes``. Anything else (403, 404, a 400 for a
bad body) is raised at once: trying again would not help. Between attempts only ``asyncio.sleep``
runs, so nothing blocks; callers deliver after their database transaction ended, never inside one.

Retrying a failed call can repeat it only if Discord did the work but the answer was lost on the way.
Edits are safe to repeat; channel messages carry a nonce with ``enforce_nonce`` (see ``nonce()``), so
Discord returns the first copy instead of posting a second. An interaction follow-up has no such key:
a follow-up whose answer was lost in transit may show twice (no bot can tell).
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import random
import re
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

import aiohttp
import discord

T = TypeVar("T")
log = logging.getLogger(__name__)

# Discord's interaction tokens live 15 minutes; follow-ups and edits of the answer work until then.
TOKEN_LIFE = timedelta(minutes=15)
LAST_ATTEMPT = timedelta(seconds=30)
FIRST_PAUSE = 1.0  # seconds before the first retry, doubled at each failure...
MAX_PAUSE = 15.0  # ...up to this, so an answer arrives at most this long (plus discord.py's own tries) after recovery


class Undelivered(Exception):
    """The deadline passed while Discord kept failing; ``deliver`` has logged it. ``error`` is the last failure."""

    def __init__(self, what: str, attempts: int, error: BaseException) -> None:
        super().__init__(f"{what}: gave up after {attempts} attempts ({describe(error)})")
        self.what, self.attempts, self.error = what, attempts, error


def is_transient(error: BaseException) -> bool:
    """A failure that may pass: Discord down or overloaded, rate limited, or the connection lost."""
    if isinstance(error, discord.HTTPException):
        return error.status == 429 or error.status >= 500
    # RateLimited: discord.py refused to wait that long (only with max_ratelimit_timeout set). aiohttp
    # raises ClientError subclasses for refused, reset and dropped connections, TimeoutError when slow.
    return isinstance(error, discord.RateLimited | aiohttp.ClientError | TimeoutError)


def describe(error: BaseException) -> str:
    """One short line: a Cloudflare error page is HTML that would fill the log."""
    if isinstance(error, discord.HTTPException):
        text = " ".join(re.sub(r"<[^>]*>", " ", error.text or "").split())
        return f"{error.status} {text[:80]}".rstrip()
    return f"{type(error).__name__}: {error}"[:120]


def nonce() -> str:
    """A key for one channel message, kept over its retries: with it Discord posts the message once."""
    return secrets.token_hex(12)


def token_deadline(interaction: discord.Interaction) -> datetime:
    # The last attempt starts early enough for discord.py's own retries (about 25 s) to end in time.
    return interaction.created_at + TOKEN_LIFE - LAST_ATTEMPT


def deadline_in(minutes: float) -> datetime:
    return discord.utils.utcnow() + timedelta(minutes=minutes)


async def deliver(call: Callable[[], Awaitable[T]], *, until: datetime, what: str,
                  first_pause: float = FIRST_PAUSE, max_pause: float = MAX_PAUSE) -> T:
    """``call()``'s result, calling it again after each transient failure until ``until`` (an aware
    datetime). Raises a non-transient error at once, and Undelivered (logged here) at the deadline."""
    failures = 0
    started = discord.utils.utcnow()
    while True:
        try:
            result = await call()
        except Exception as error:
            if not is_transient(error):
                raise
            failures += 1
            left = (until - discord.utils.utcnow()).total_seconds()
            if left <= 0:
                log.warning("gave up %s after %d attempts over %.0f s: %s", what, failures,
                            (discord.utils.utcnow() - started).total_seconds(), describe(error))
                raise Undelivered(what, failures, error) from error
            if failures == 1:
                log.warning("could not %s (%s); retrying for up to %.0f s", what, describe(error), left)
            # Jitter spreads the retries of many waiting answers when Discord comes back.
            pause = min(max_pause, first_pause * 2 ** (failures - 1)) * random.uniform(0.5, 1.0)
            await asyncio.sleep(min(pause, left))
        else:
            if failures:
                log.info("%s succeeded after %d failed attempts, %.0f s late", what, failures,
                         (discord.utils.utcnow() - started).total_seconds())
            return result


# ----- interactions ---------------------------------------------------------------------------------


def replayable(message: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    """The keyword arguments of a message, freshly made for each attempt: discord.py reads a File to its
    end and closes it when it sends it, so a retry needs new File objects with the same bytes."""
    def snapshot(file: discord.File) -> Callable[[], discord.File]:
        name, spoiler, description = file.filename, file.spoiler, file.description
        path = getattr(file.fp, "name", None) if file._owner else None
        if isinstance(path, str | os.PathLike):  # a file on disk (exports): opened again, not read into memory here
            file.close()
            return lambda: discord.File(path, name, spoiler=spoiler, description=description)
        file.fp.seek(file._original_pos)
        data = file.fp.read()
        return lambda: discord.File(io.BytesIO(data), name, spoiler=spoiler, description=description)

    makers: dict[str, Any] = {}
    for key, value in message.items():
        if isinstance(value, discord.File):
            makers[key] = snapshot(value)
        elif key in ("files", "attachments") and isinstance(value, list | tuple):
            items = [snapshot(item) if isinstance(item, discord.File) else item for item in value]
            makers[key] = lambda items=items: [item() if callable(item) else item for item in items]

    def fresh() -> dict[str, Any]:
        return {**message, **{key: make() for key, make in makers.items()}}

    return fresh


async def _through_webhook(interaction: discord.Interaction, call: Callable[[], Awaitable[Any]], what: str) -> bool:
    until = token_deadline(interaction)
    try:
        await deliver(call, until=until, what=what)
    except Undelivered:
        return False
    except discord.HTTPException as error:
        if discord.utils.utcnow() < until:
            raise
        # The token died during a last, long attempt (Discord answers 401 or 404 then): the same outage.
        log.warning("gave up %s: the interaction's token expired (%s)", what, describe(error))
        return False
    return True


async def followup(interaction: discord.Interaction, content: str | None = None, **message: Any) -> bool:
    """Send a follow-up while the interaction's token lives; False (logged) when an outage outlasted it."""
    fresh = replayable(message)
    return await _through_webhook(interaction, lambda: interaction.followup.send(content, **fresh()),
                                  f"send a follow-up to interaction {interaction.id}")


async def edit_original(interaction: discord.Interaction, **changes: Any) -> bool:
    """Edit the interaction's answer (or fill in its "thinking…") while the token lives; False (logged)
    when an outage outlasted it."""
    fresh = replayable(changes)
    return await _through_webhook(interaction, lambda: interaction.edit_original_response(**fresh()),
                                  f"edit the answer to interaction {interaction.id}")


def unanswerable(error: BaseException) -> bool:
    """The first answer to an interaction failed for good: Discord was down past its 3 s deadline (or
    forgot the interaction). No bot can answer it now; the member's work, done before, stays recorded."""
    return is_transient(error) or (isinstance(error, discord.NotFound) and error.code == 10062)
