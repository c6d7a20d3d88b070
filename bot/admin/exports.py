"""Exports a moderator starts from Discord: the same files as ``oabot export`` (bot/labelling/export.py),
gzip-compressed, written under ``<data folder>/exports/`` while a progress record is kept up to date for
the cog to show. The export reads the database in small batches and yields to the event loop between
them, so a live bot keeps answering while it runs."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.labelling.errors import LabellingError
from bot.labelling.export import FORMATS, export
from bot.labelling.language import normalise_language
from bot.labelling.pseudonyms import data_dir

# Small batches keep each stretch of work on the event loop to a few milliseconds.
BATCH_TREES = 50


class ExportRefused(LabellingError):
    default_messages = {
        "unknown_format": f"Choose one of the formats {', '.join(FORMATS)}.",
        "bad_language": "That is not a language tag. Use a tag such as en, de or pt-BR.",
        "busy": "An export is already running; wait for it to finish.",
    }


@dataclass
class ExportProgress:
    """Updated by the running export; read by whoever shows it."""

    trees_done: int = 0
    trees_total: int = 0
    lines: int = 0
    started: float = 0.0

    def update(self, trees_done: int, trees_total: int, lines: int) -> None:
        self.trees_done, self.trees_total, self.lines = trees_done, trees_total, lines


@dataclass(frozen=True)
class ExportFile:
    path: Path
    size: int
    lines: int
    fmt: str
    lang: str | None
    seconds: float


def export_language(lang: str | None) -> str | None:
    if lang is None or not lang.strip():
        return None
    normalised = normalise_language(lang)
    if normalised is None:
        raise ExportRefused("bad_language")
    return normalised


class Exports:
    """One export at a time per bot: two would compete for the same database and CPU."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], database_url: str) -> None:
        self.sessions = sessions
        self.folder = data_dir(database_url) / "exports"
        self.running = False

    def path_for(self, fmt: str, lang: str | None, now: datetime) -> Path:
        return self.folder / f"{fmt}{'-' + lang if lang else ''}-{now:%Y%m%dT%H%M%SZ}.jsonl.gz"

    async def run(self, fmt: str, lang: str | None, progress: ExportProgress) -> ExportFile:
        if fmt not in FORMATS:
            raise ExportRefused("unknown_format")
        lang = export_language(lang)
        if self.running:
            raise ExportRefused("busy")
        self.running = True
        try:
            progress.started = time.monotonic()
            path = self.path_for(fmt, lang, datetime.now(UTC))
            lines = await export(self.sessions, fmt, path, lang=lang, batch_size=BATCH_TREES,
                                 on_progress=progress.update)
            return ExportFile(path, path.stat().st_size, lines, fmt, lang, time.monotonic() - progress.started)
        finally:
            self.running = False
