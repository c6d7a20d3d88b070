"""/admin export <format> [language]: deferred at once; a progress message is edited while the export
runs; the compressed file is attached when it fits the server's upload limit, else it stays in the bot's
data folder and its path and size are given."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import discord
from discord import app_commands

from bot.admin.exports import ExportFile, ExportProgress, Exports
from bot.labelling.errors import LabellingError
from bot.labelling.export import FORMATS
from cogs import delivery

log = logging.getLogger(__name__)
# Interaction edits share a per-channel rate limit (about 5 per 5 s); one every few seconds is plenty.
PROGRESS_SECONDS = 3.0


def _size(size: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:,} {unit}" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    raise AssertionError("unreachable")


def progress_text(fmt: str, lang: str | None, progress: ExportProgress) -> str:
    what = f"`{fmt}`" + (f" ({lang})" if lang else "")
    if not progress.trees_total:
        return f"Exporting {what}…"
    return (f"Exporting {what}: {progress.trees_done:,} of {progress.trees_total:,} trees read, "
            f"{progress.lines:,} lines written…")


def _summary(result: ExportFile) -> str:
    what = f"`{result.fmt}`" + (f" ({result.lang})" if result.lang else "")
    return f"Export {what}: {result.lines:,} lines, {_size(result.size)} gzip-compressed, in {result.seconds:.1f} s."


async def _show_progress(interaction: discord.Interaction, text: str) -> None:
    """A progress line is not worth waiting for: one Discord refuses is skipped, the next may pass."""
    try:
        await interaction.edit_original_response(content=text)
    except Exception as exc:
        if not delivery.is_transient(exc):
            raise
        log.info("skipped an export progress edit: %s", delivery.describe(exc))


class ExportCommands:
    """Mixed into the /admin group cog (cogs/admin/__init__.py)."""

    bot: Any

    @property
    def exports(self) -> Exports:
        if not hasattr(self, "_exports"):
            self._exports = Exports(self.bot.services.sessions, self.bot.settings.database.url)
        return self._exports

    @app_commands.command(name="export", description="Download the collected data (oasst1 layouts, preferences, SFT)")
    @app_commands.rename(data_format="format")
    @app_commands.describe(data_format="Which layout", language="Only trees in this language (e.g. en, de)")
    @app_commands.choices(data_format=[app_commands.Choice(name=f, value=f) for f in FORMATS])
    async def export(self, interaction: discord.Interaction, data_format: app_commands.Choice[str],
                     language: app_commands.Range[str, 2, 16] | None = None) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        fmt, progress = data_format.value, ExportProgress()
        job = asyncio.ensure_future(self.exports.run(fmt, language, progress))
        await _show_progress(interaction, progress_text(fmt, language, progress))
        while True:
            finished, _ = await asyncio.wait([job], timeout=PROGRESS_SECONDS)
            if finished:
                break
            await _show_progress(interaction, progress_text(fmt, language, progress))
        try:
            result = job.result()
        except LabellingError as refused:
            await delivery.edit_original(interaction, content=refused.message)
            return
        except Exception:
            log.exception("export %s failed", fmt)
            await delivery.edit_original(interaction, content="The export failed; the bot's log says why. "
                                                              "No file was written.")
            return
        await self._deliver(interaction, result)

    async def _deliver(self, interaction: discord.Interaction, result: ExportFile) -> None:
        assert interaction.guild is not None
        limit = interaction.guild.filesize_limit
        try:
            if result.size <= limit:
                if await delivery.edit_original(interaction, content=_summary(result),
                                                attachments=[discord.File(result.path, result.path.name)]):
                    # Delivered: the copy on the server is not needed any more.
                    result.path.unlink(missing_ok=True)
                else:
                    log.warning("the export stays at %s", result.path)
            else:
                await delivery.edit_original(interaction, content=(
                    f"{_summary(result)}\nIt is larger than this server's upload limit ({_size(limit)}), so it "
                    f"stays on the bot's machine:\n`{result.path.resolve()}`"))
        except discord.HTTPException as exc:
            # E.g. the interaction token expired (15 minutes) on a very long export: the file is kept.
            log.warning("could not deliver the export %s: %s", result.path, exc)
