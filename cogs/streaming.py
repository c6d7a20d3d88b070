"""Text that grows while a model writes it, shown in as few Discord messages as possible."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import discord

from bot.chat.pages import split_pages

CURSOR = " ▌"
PAGE_LIMIT = 2000 - len(CURSOR)


class StreamedMessage:
    """Streams text into as few messages as possible, editing at most once per interval."""

    def __init__(self, channel: discord.abc.Messageable, interval: float, *,
                 reference: discord.Message | None = None) -> None:
        self.channel = channel
        self.interval = interval
        self.reference = reference
        self.messages: list[discord.Message] = []
        self.shown: list[str] = []
        self.last_edit = 0.0
        # The queue-position notice and the stream itself both write; one at a time.
        self._lock = asyncio.Lock()

    async def status(self, text: str) -> None:
        async with self._lock:
            if not self.messages:
                await self._show(0, text)

    async def update(self, text: str) -> None:
        if time.monotonic() - self.last_edit < self.interval:
            return
        await self._render(text, cursor=True)

    async def finish(self, text: str, *, view: discord.ui.View | None) -> discord.Message | None:
        return await self._render(text, cursor=False, view=view)

    async def _render(self, text: str, *, cursor: bool, view: discord.ui.View | None = None) -> discord.Message:
        pages = split_pages(text or "…", PAGE_LIMIT)
        async with self._lock:
            for index, page in enumerate(pages):
                is_last = index == len(pages) - 1
                shown = page + (CURSOR if cursor and is_last else "")
                last = await self._show(index, shown, view=view if is_last else None, force=is_last and not cursor)
            self.last_edit = time.monotonic()
            return last

    async def _show(self, index: int, text: str, *, view: discord.ui.View | None = None,
                    force: bool = False) -> discord.Message:
        extra: dict[str, Any] = {"view": view} if view is not None else {}
        if index < len(self.messages):
            if self.shown[index] != text or force:
                self.messages[index] = await self.messages[index].edit(content=text, **extra)
                self.shown[index] = text
            return self.messages[index]
        kwargs: dict[str, Any] = dict(extra)
        if self.reference is not None and not self.messages:
            kwargs["reference"] = self.reference
            kwargs["mention_author"] = False
        message = await self.channel.send(text, **kwargs)
        self.messages.append(message)
        self.shown.append(text)
        return message
