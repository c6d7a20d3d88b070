"""The moderation queue, the trollboard, the audit log and the right-click commands, through Discord."""

from __future__ import annotations

from sqlalchemy import select

from storage.models import AuditLog, Message, ModerationFlag, Reaction, User
from tests.cogs.admin.conftest import admin_settings


async def test_flag_queue_keep_delete_ban_and_context_menus(emulator, start_bot, world_of, tmp_path):
    emu = emulator
    async with start_bot(admin_settings(tmp_path)) as bot:
        w = await world_of(bot)
        sessions, mod, general = bot.services.sessions, w.mod, w.general
        await (await mod.slash("admin log-channel", {"channel": w.mod_log}, channel=general)).wait_message()
        logged = await emu.wait_for_message(w.mod_log)

        async def next_log():
            nonlocal logged
            logged = await emu.wait_for_message(w.mod_log, after=logged)
            return logged.content

        # Any member flags a bot post from its right-click menu: a red flag, into the queue.
        flagged = await (await w.members["dave"].context_menu("Flag for moderators", w.posts["A1"])).wait_message()
        assert flagged.ephemeral and "moderators will look" in flagged.content
        again = await (await w.members["dave"].context_menu("Flag for moderators", w.posts["A1"])).wait_message()
        assert "already flagged" in again.content
        not_ours = emu.post_message(general, w.members["alice"], {"content": "hello"})
        refused = await (await w.members["dave"].context_menu("Flag for moderators", not_ours)).wait_message()
        assert "not a campaign post" in refused.content
        async with sessions() as s:
            assert (await s.scalar(select(ModerationFlag.flag_count)
                                   .where(ModerationFlag.message_id == w.ids["A1"]))) == 1
            assert await s.scalar(select(Reaction.id).where(Reaction.message_id == w.ids["A1"],
                                                            Reaction.user_id == w.ids["dave"]))

        # The queue: most flagged first, one row of Keep / Delete / Ban author per entry.
        queue = await (await mod.slash("admin flagged", channel=general)).wait_message()
        assert "3 flagged message(s)" in queue.content
        titles = [e["title"] for e in queue.embeds]
        assert titles[0].startswith(f"Message #{w.ids['A3']}")
        assert {f"adm:fq:keep:{w.ids['A2']}:0", f"adm:fq:del:{w.ids['A3']}:0",
                f"adm:fq:ban:{w.ids['A3']}:0"} <= set(queue.custom_ids)

        # Keep: resolved at once, the page redrawn without it.
        kept = await mod.click(queue, f"adm:fq:keep:{w.ids['A1']}:0")
        await kept.wait_response()
        await emu.wait_for(lambda: "Kept message" in queue.content or None, what="the redrawn queue")
        assert f"adm:fq:keep:{w.ids['A1']}:0" not in queue.custom_ids
        assert f"kept flagged message #{w.ids['A1']}" in await next_log()

        # Ban author: asks first, then bans the troll and resolves the flag.
        ask = await (await mod.click(queue, f"adm:fq:ban:{w.ids['A3']}:0")).wait_message()
        confirm = next(c for c in ask.custom_ids if c.startswith("adm:ok:banauthor:"))
        await (await mod.click(ask, confirm)).wait_message(lambda m: "Banned" in m.content)
        assert "banned" in await next_log()
        async with sessions() as s:
            assert (await s.get(User, w.ids["troll"])).banned
            flag = await s.scalar(select(ModerationFlag).where(ModerationFlag.message_id == w.ids["A3"]))
            assert flag.resolved and flag.resolution == "author_banned"

        # Delete from the queue shows the subtree first.
        ask = await (await mod.click(queue, f"adm:fq:del:{w.ids['A2']}:0")).wait_message()
        assert f"#{w.ids['P2']}" in ask.embeds[0]["description"]
        await (await mod.click(ask, next(c for c in ask.custom_ids if c.startswith("adm:ok:del:")))).wait_message(
            lambda m: "Deleted" in m.content)
        assert f"deleted message #{w.ids['A2']}" in await next_log()
        refreshed = await mod.click(queue, "adm:pg:flagged:0:0:r")
        await refreshed.wait_response()
        await emu.wait_for(lambda: "queue is empty" in queue.content or None, what="an empty queue")

        # "Delete subtree" from a post's menu, for moderators: the same preview and confirmation.
        ask = await (await mod.context_menu("Delete subtree", w.posts["P3"])).wait_message()
        assert f"Delete message #{w.ids['P3']}" in ask.embeds[0]["title"] and "whole tree" in \
            ask.embeds[0]["footer"]["text"]
        await (await mod.click(ask, next(c for c in ask.custom_ids if c.startswith("adm:ok:del:")))).wait_message(
            lambda m: "Deleted" in m.content)
        async with sessions() as s:
            assert (await s.get(Message, w.ids["A3"])).deleted

        # The trollboard names the troll first; the audit log pages (older history added) and filters by member.
        async with sessions.begin() as s:
            s.add_all([AuditLog(action="set_moderator_role", target_type="guild", target_id=w.guild.id,
                                guild_id=w.guild.id, details={}) for _ in range(7)])
        board = await (await mod.slash("admin trollboard", channel=general)).wait_message()
        first = board.embeds[0]["description"].splitlines()[0]
        assert f"<@{w.members['troll'].id}>" in first and "banned" in first
        audit = await (await mod.slash("admin audit", channel=general)).wait_message()
        text = audit.embeds[0]["description"]
        assert text.count("set_moderator_role") == 7 and "delete_message" in text
        assert "Page 1 of 2" in audit.embeds[0]["footer"]["text"]
        await (await mod.click(audit, "adm:pg:audit:1:0:n")).wait_response()
        await emu.wait_for(lambda: "Page 2 of 2" in audit.embeds[0]["footer"]["text"] or None, what="page 2")
        text = audit.embeds[0]["description"]
        assert "set_log_channel" in text and "**ban**" in text and "set_moderator_role" not in text
        mine = await (await mod.slash("admin audit", {"member": w.members["troll"]}, channel=general)).wait_message()
        lines = mine.embeds[0]["description"].splitlines()
        assert len(lines) == 1 and "**ban**" in lines[0]
        async with sessions() as s:
            assert await s.scalar(select(AuditLog.id).where(AuditLog.action == "refused_not_moderator")) is None
