"""Moderator actions through Discord: each confirmed where it destroys, each seen in the database, in the
export and in the log channel."""

from __future__ import annotations

import json

from sqlalchemy import select

from bot.labelling.export import export
from storage.enums import TaskState, TreeState
from storage.models import (
    AuditLog,
    Message,
    MessageRevision,
    MessageTree,
    ModerationFlag,
    ScoreEvent,
    Task,
    User,
)
from tests.cogs.admin.conftest import admin_settings


async def exported(sessions, tmp_path) -> dict[int, dict]:
    """Message id -> exported record of the oasst-messages export."""
    path = tmp_path / "check.jsonl"
    await export(sessions, "oasst-messages", path, salt="s")
    return {int(r["message_id"]): r for r in map(json.loads, path.read_text().splitlines())}


def confirm_id(message, prefix: str) -> str:
    return next(cid for cid in message.custom_ids if cid.startswith(prefix))


async def test_actions_confirm_then_act_and_log(emulator, start_bot, world_of, tmp_path):
    emu = emulator
    async with start_bot(admin_settings(tmp_path)) as bot:
        w = await world_of(bot)
        sessions, mod, general = bot.services.sessions, w.mod, w.general

        async def slash(name, options=None):
            return await (await mod.slash(name, options or {}, channel=general)).wait_message()

        async def log_line(after=None):
            return await emu.wait_for_message(w.mod_log, after=after)

        answer = await slash("admin log-channel", {"channel": w.mod_log})
        assert answer.ephemeral and "now logged" in answer.content
        first = await log_line()
        assert "made this the moderation log channel" in first.content

        # Delete by message link: the preview lists the subtree, nothing changes before the click.
        before = await exported(sessions, tmp_path)
        assert w.ids["A2"] in before and w.ids["P2"] in before
        preview = await slash("admin delete", {"message": w.link("A2")})
        assert f"Delete message #{w.ids['A2']}" in preview.embeds[0]["title"]
        assert f"#{w.ids['P2']}" in preview.embeds[0]["description"]
        async with sessions() as s:
            assert not (await s.get(Message, w.ids["A2"])).deleted
        click = await mod.click(preview, confirm_id(preview, "adm:ok:del:"))
        done = await click.wait_message(lambda m: "Deleted" in m.content)
        assert not done.custom_ids  # the confirmation is used up
        assert "2 post(s) removed" in done.content
        assert w.posts["A2"].deleted and w.posts["P2"].deleted and not w.posts["A1"].deleted
        line = await log_line(after=first)
        assert f"deleted message #{w.ids['A2']}" in line.content and "1 below it" in line.content
        async with sessions() as s:
            assert [(await s.get(Message, w.ids[n])).deleted for n in ("A2", "P2")] == [True, True]
            taken = (await s.scalars(select(ScoreEvent.message_id).where(ScoreEvent.reason == "message_deleted"))).all()
            flag = await s.scalar(select(ModerationFlag).where(ModerationFlag.message_id == w.ids["A2"]))
            assert flag.resolved and flag.resolution == "deleted"
            assert (await s.get(User, w.ids["carol"])).points == 0
        assert taken == [w.ids["A2"]]  # carol's points for A2 were taken back
        after = await exported(sessions, tmp_path)
        assert w.ids["A2"] not in after and w.ids["P2"] not in after and w.ids["A1"] in after

        # Edit by our id: a modal with the current text; the old text is kept as a revision.
        opened = await mod.slash("admin edit", {"message": str(w.ids["A1"])}, channel=general)
        modal = await opened.wait_modal()
        assert modal["components"][0]["components"][0]["value"] == "Rayleigh scattering."
        edited = await (await opened.submit_modal({"adm:text": "Rayleigh scattering of sunlight."})).wait_message()
        assert "now reads" in edited.content
        line = await log_line(after=line)
        assert f"edited message #{w.ids['A1']}" in line.content
        async with sessions() as s:
            revision = await s.scalar(select(MessageRevision).where(MessageRevision.message_id == w.ids["A1"]))
            assert revision.text == "Rayleigh scattering."
        assert (await exported(sessions, tmp_path))[w.ids["A1"]]["text"] == "Rayleigh scattering of sunlight."

        # Halt by the Discord id of one of the tree's posts; the tree leaves the export until resumed.
        ask = await slash("admin halt", {"tree": str(w.posts["A3"].id)})
        assert f"Halt tree #{w.ids['t2']}" in ask.content
        await (await mod.click(ask, confirm_id(ask, "adm:ok:halt:"))).wait_message(lambda m: "halted" in m.content)
        line = await log_line(after=line)
        assert f"halted tree #{w.ids['t2']}" in line.content
        async with sessions() as s:
            assert (await s.get(MessageTree, w.ids["t2"])).state == TreeState.HALTED_BY_MODERATOR
        assert w.ids["P3"] not in await exported(sessions, tmp_path)
        resumed = await slash("admin resume", {"tree": str(w.ids["t2"])})
        assert "resumed" in resumed.content
        line = await log_line(after=line)
        assert f"resumed tree #{w.ids['t2']}" in line.content
        assert w.ids["P3"] in await exported(sessions, tmp_path)

        # Ban with a reason: confirmed, open tasks withdrawn; unban undoes it.
        troll = w.members["troll"]
        ask = await slash("admin ban", {"member": troll, "reason": "spam"})
        assert "Ban" in ask.content and "Reason: spam" in ask.content
        async with sessions() as s:
            assert not (await s.get(User, w.ids["troll"])).banned
        await (await mod.click(ask, confirm_id(ask, "adm:ok:ban:"))).wait_message(lambda m: "Banned" in m.content)
        line = await log_line(after=line)
        assert "banned" in line.content and "Reason: spam" in line.content and "1 open task" in line.content
        async with sessions() as s:
            assert (await s.get(User, w.ids["troll"])).banned
            states = (await s.scalars(select(Task.state).where(Task.user_id == w.ids["troll"]))).all()
            assert states == [TaskState.CANCELLED]
        again = await slash("admin ban", {"member": troll})
        refused = await (await mod.click(again, confirm_id(again, "adm:ok:ban:"))).wait_message(
            lambda m: "already banned" in m.content)
        assert refused.ephemeral
        unbanned = await slash("admin unban", {"member": troll})
        assert "Unbanned" in unbanned.content
        line = await log_line(after=line)
        assert "unbanned" in line.content
        async with sessions() as s:
            assert not (await s.get(User, w.ids["troll"])).banned
            actions = (await s.scalars(select(AuditLog.action).where(AuditLog.guild_id == w.guild.id)
                                       .order_by(AuditLog.id))).all()
        assert actions == ["set_log_channel", "delete_message", "edit_message", "halt_tree", "resume_tree", "ban",
                           "unban"]

        # Cancel changes nothing; bad targets are refused politely.
        ask = await slash("admin delete", {"message": str(w.ids["P3"])})
        cancelled = await (await mod.click(ask, "adm:no")).wait_message(lambda m: "Cancelled" in m.content)
        assert cancelled.ephemeral
        for bad, words in (("not a link", "Give a Discord message link"), ("999999", "No campaign message"),
                           (str(w.ids["A2"]), "already deleted")):
            answer = await slash("admin delete", {"message": bad})
            assert words in answer.content
        async with sessions() as s:
            assert not (await s.get(Message, w.ids["P3"])).deleted
