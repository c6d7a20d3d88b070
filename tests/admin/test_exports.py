"""Exports started from Discord: progress per batch, one at a time, files in the data folder."""

from __future__ import annotations

import asyncio
import gzip

import pytest

from bot.admin.exports import BATCH_TREES, ExportProgress, ExportRefused, Exports
from storage.enums import TreeState
from storage.models import Message, MessageTree, User


class Recorder(ExportProgress):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[int, int, int]] = []

    def update(self, trees_done: int, trees_total: int, lines: int) -> None:
        super().update(trees_done, trees_total, lines)
        self.seen.append((trees_done, trees_total, lines))


async def test_progress_after_each_batch_and_one_export_at_a_time(sessions, tmp_path):
    trees = BATCH_TREES * 2 + 7
    async with sessions.begin() as s:
        user = User(discord_id=5, display_name="u")
        s.add(user)
        await s.flush()
        for i in range(trees):
            tree = MessageTree(state=TreeState.READY_FOR_EXPORT, lang="en")
            s.add(tree)
            await s.flush()
            s.add(Message(tree_id=tree.id, role="prompter", text=f"prompt {i}", lang="en", author_id=user.id,
                          review_result=True))
    exports = Exports(sessions, f"sqlite+aiosqlite:///{tmp_path}/bot.db")
    progress = Recorder()
    result = await exports.run("oasst-trees", "EN", progress)
    assert progress.seen == [(BATCH_TREES, trees, BATCH_TREES), (2 * BATCH_TREES, trees, 2 * BATCH_TREES),
                             (trees, trees, trees)]
    assert result.lines == trees and result.lang == "en"
    assert result.path.parent == tmp_path / "exports" and result.path.name.startswith("oasst-trees-en-")
    assert len(gzip.decompress(result.path.read_bytes()).splitlines()) == trees

    # While one runs, a second is refused.
    first = asyncio.ensure_future(exports.run("sft", None, ExportProgress()))
    await asyncio.sleep(0)
    with pytest.raises(ExportRefused) as refused:
        await exports.run("sft", None, ExportProgress())
    assert refused.value.reason == "busy"
    await first
    with pytest.raises(ExportRefused, match="format"):
        await exports.run("csv", None, ExportProgress())
