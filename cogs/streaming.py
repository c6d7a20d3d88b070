"""Text that grows while a model writes it, shown in as few Discord messages as possible."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import discord

from bot.chat.pages import split_pages
from cogs import delivery

log = logging.getLogger(__name__)

CURSOR = " ▌"
PAGE_LIMIT = 2000 - len(CURSOR)

PagesCallback = Callable[[list[int]], Awaitable[None]]


class StreamedMessage:
    """Streams text into as few messages as possible, editing at most once per interval.

    ``pages`` are messages an interrupted attempt already wrote: they are edited in place (and
    the ones the new text does not need are deleted), so a reply finished after a restart appears
    where it started. ``on_pages`` hears the message ids whenever a page is added or removed.

    The text so far is written in the background, one frame at a time: while Discord is slow or
    failing, frames are skipped and the model is never kept waiting. The final text is retried
    through an outage for up to ``retry_minutes`` (cogs/delivery.py)."""

    def __init__(self, channel: discord.abc.Messageable, interval: float, *,
                 reference: discord.Message | None = None,
                 pages: Sequence[discord.Message | discord.PartialMessage] = (),
                 on_pages: PagesCallback | None = None, retry_minutes: float = 15.0) -> None:
        self.channel = channel
        self.interval = interval
        self.retry_minutes = retry_minutes
        self.reference = reference
        self.messages: list[discord.Message | discord.PartialMessage] = list(pages)
        # What each page shows; unknown (None) for pages written before a restart.
        self.shown: list[str | None] = [None] * len(self.messages)
        self.on_pages = on_pages
        self.last_edit = 0.0
        self._streamed = False
        # The queue-position notice and the stream itself both write; one at a time.
        self._lock = asyncio.Lock()
        self._frame: asyncio.Task[None] | None = None
        # One nonce per page being created, kept over retries, so a retried send posts the page once.
        self._nonces: dict[int, str] = {}

    @property
    def page_ids(self) -> list[int]:
        return [message.id for message in self.messages]

    async def status(self, text: str) -> None:
        """A notice (e.g. the place in the queue) shown until the reply's text starts; skipped while
        Discord fails."""
        async with self._lock:
            if not self._streamed:
                try:
                    await self._show(0, text)
                except Exception as exc:
                    if not delivery.is_transient(exc):
                        raise
                    log.info("skipped a queue notice: %s", delivery.describe(exc))

    async def update(self, text: str) -> None:
        """Show the text so far, unless the last frame is recent or still being written."""
        if time.monotonic() - self.last_edit < self.interval or (self._frame and not self._frame.done()):
            return
        self._frame = asyncio.create_task(self._write_frame(text))

    async def _write_frame(self, text: str) -> None:
        try:
            await self._render(text, cursor=True)
        except Exception as exc:
            # The final text is written (and retried) by finish(); a frame is only a preview.
            if isinstance(exc, discord.HTTPException) or delivery.is_transient(exc):
                log.info("skipped a streaming edit: %s", delivery.describe(exc))
            else:
                log.exception("a streaming edit failed")
            self.last_edit = time.monotonic()

    async def finish(self, text: str, *, view: discord.ui.View | None) -> discord.Message | discord.PartialMessage:
        """Write the final text, retrying through an outage; raises delivery.Undelivered if it outlasts
        ``retry_minutes``."""
        if self._frame is not None:
            await asyncio.gather(self._frame, return_exceptions=True)
        return await delivery.deliver(lambda: self._render(text, cursor=False, view=view),
                                      until=delivery.deadline_in(self.retry_minutes), what="write a chat reply")

    async def _render(self, text: str, *, cursor: bool,
                      view: discord.ui.View | None = None) -> discord.Message | discord.PartialMessage:
        pages = split_pages(text or "…", PAGE_LIMIT)
        async with self._lock:
            self._streamed = True
            for index, page in enumerate(pages):
                is_last = index == len(pages) - 1
                shown = page + (CURSOR if cursor and is_last else "")
                last = await self._show(index, shown, view=view if is_last else None, force=is_last and not cursor)
            if not cursor and len(self.messages) > len(pages):
                await self._drop_pages_after(len(pages))
            self.last_edit = time.monotonic()
            return last

    async def _drop_pages_after(self, count: int) -> None:
        # One page at a time, so a retry after a failed delete goes on where it stopped.
        while len(self.messages) > count:
            with contextlib.suppress(discord.NotFound):
                await self.messages[-1].delete()
            self.messages.pop()
            self.shown.pop()
        await self._pages_changed()

    async def _send(self, index: int, text: str, **kwargs: Any) -> discord.Message:
        message = await self.channel.send(text, nonce=self._nonces.setdefault(index, delivery.nonce()), **kwargs)
        del self._nonces[index]
        return message

    async def _pages_changed(self) -> None:
        if self.on_pages is not None:
            await self.on_pages(self.page_ids)

    async def _show(self, index: int, text: str, *, view: discord.ui.View | None = None,
                    force: bool = False) -> discord.Message | discord.PartialMessage:
        extra: dict[str, Any] = {"view": view} if view is not None else {}
        if index < len(self.messages):
            if self.shown[index] != text or force:
                try:
                    self.messages[index] = await self.messages[index].edit(content=text, **extra)
                except discord.NotFound:  # someone deleted the page: write it again below the others
                    self.messages[index] = await self._send(index, text, **extra)
                    await self._pages_changed()
                self.shown[index] = text
            return self.messages[index]
        kwargs: dict[str, Any] = dict(extra)
        if self.reference is not None and not self.messages:
            kwargs["reference"] = self.reference
            kwargs["mention_author"] = False
        message = await self._send(index, text, **kwargs)
        self.messages.append(message)
        self.shown.append(text)
        await self._pages_changed()
        return message
