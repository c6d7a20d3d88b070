"""/admin stats attaches a PNG chart beside the figures; /admin export attaches the compressed file (or
leaves it in the data folder when it is too big), and the file passes the export's schema checks."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import discord

from tests.cogs.admin.conftest import admin_settings
from tests.labelling.export_schemas import check_lines


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def read_bytes(path: Path) -> bytes:
    return path.read_bytes()


def lines_of(data: bytes) -> list[dict]:
    return [json.loads(line) for line in gzip.decompress(data).decode().splitlines()]


async def test_stats_chart_is_a_png_beside_the_figures(emulator, start_bot, world_of, tmp_path):
    async with start_bot(admin_settings(tmp_path)) as bot:
        w = await world_of(bot)
        it = await w.mod.slash("admin stats", channel=w.general)
        assert (await it.wait_response()).deferred
        answer = await it.wait_message(lambda m: bool(m.attachments))
        assert answer.ephemeral
        (chart,) = answer.attachments
        assert chart.filename == "campaign-stats.png"
        assert png_size(chart.data) == (1080, 720) and 10_000 < chart.size < 1_000_000
        embed = answer.embeds[0]
        fields = {f["name"]: f["value"] for f in embed["fields"]}
        assert fields["Trees (2)"] == "ready for export: **2**"
        assert "assistant reply: **1**" in fields["Tasks done (1)"]
        assert "mean **0.80** over **1** rankings" in fields["Ranking agreement"]
        assert fields["Messages by language"] == "en: **6**"
        assert embed["image"]["url"] == "attachment://campaign-stats.png"


async def test_export_attached_compressed_and_valid(emulator, start_bot, world_of, tmp_path, monkeypatch):
    emu = emulator
    async with start_bot(admin_settings(tmp_path)) as bot:
        w = await world_of(bot)
        mod, general = w.mod, w.general
        # A moderator removes the spam first: the export no longer has it.
        ask = await (await mod.slash("admin delete", {"message": w.link("A3")}, channel=general)).wait_message()
        confirm = next(c for c in ask.custom_ids if c.startswith("adm:ok:del:"))
        await (await mod.click(ask, confirm)).wait_message(lambda m: "Deleted" in m.content)

        for fmt in ("oasst-trees", "oasst-messages", "preferences", "sft"):
            # A channel each: edits of interaction answers share a per-channel rate limit (5 per 5 s).
            channel = await emu.create_channel(w.guild, f"export-{fmt}")
            it = await mod.slash("admin export", {"format": fmt}, channel=channel)
            assert (await it.wait_response()).deferred
            answer = await it.wait_message(lambda m: bool(m.attachments), timeout=30)
            assert answer.ephemeral and f"Export `{fmt}`" in answer.content
            assert any(v.startswith(f"Exporting `{fmt}`") for v in answer.contents)  # the progress message
            (attached,) = answer.attachments
            assert attached.filename.startswith(fmt) and attached.filename.endswith(".jsonl.gz")
            records = lines_of(attached.data)
            check_lines(fmt, records)
            if fmt == "oasst-messages":
                ids = {int(r["message_id"]) for r in records}
                assert ids == {w.ids[n] for n in ("P1", "A1", "A2", "P2", "P3")}
            if fmt == "oasst-trees":
                assert len(records) == 2 and f"{len(records)} lines" in answer.content
        # Delivered files do not pile up in the data folder.
        exports = tmp_path / "exports"
        await emu.wait_for(lambda: not any(exports.iterdir()) or None, what="the delivered files removed")

        # Too big for the server: it stays in the data folder, path and size given.
        monkeypatch.setattr(discord.Guild, "filesize_limit", property(lambda guild: 100))
        it = await mod.slash("admin export", {"format": "oasst-trees", "language": "en"}, channel=w.mod_log)
        answer = await it.wait_message(lambda m: "stays on the bot's machine" in m.content, timeout=30)
        assert not answer.attachments and "100 bytes" in answer.content
        path = Path(answer.content.split("`")[-2])
        assert path.parent == exports.resolve() and path.name.startswith("oasst-trees-en-")
        data = read_bytes(path)
        assert f"{len(data):,} bytes" in answer.content or "KiB" in answer.content
        check_lines("oasst-trees", lines_of(data))

        # Filters and refusals.
        it = await mod.slash("admin export", {"format": "sft", "language": "de"}, channel=w.campaign)
        answer = await it.wait_message(lambda m: "lines" in m.content, timeout=30)
        assert "Export `sft` (de): 0 lines" in answer.content
        it = await mod.slash("admin export", {"format": "sft", "language": "e!"}, channel=general)
        answer = await it.wait_message(lambda m: "Exporting" not in m.content)
        assert "not a language tag" in answer.content
        assert not emu.internal_errors
