"""Non-moderators get nothing from /admin, its buttons, its form or its right-click command: 50 slash
attempts with forged options plus forged clicks, not one row changed, every attempt audited."""

from __future__ import annotations

import itertools

from sqlalchemy import func, select

from emulator.interactions import MESSAGE_COMPONENT, MODAL_SUBMIT
from storage.models import AuditLog
from tests.cogs.admin.conftest import admin_settings
from tests.cogs.conftest import database_dump

REFUSED = "for the server's moderators"


def slash_attempts(w) -> list[tuple[str, dict]]:
    """Every /admin command with options a non-moderator might forge."""
    troll, alice = w.members["troll"], w.members["alice"]
    targets = [w.link("A2"), str(w.posts["A3"].id), str(w.ids["P1"]), "not a link", "999999999"]
    return [
        ("admin moderator-role", {"role": w.guild.everyone}),
        ("admin moderator-role", {}),
        ("admin log-channel", {"channel": w.general}),
        ("admin log-channel", {"channel": w.mod_log}),
        *[("admin ban", {"member": m, "reason": r}) for m, r in itertools.product((troll, alice, w.mod), ("x", None))
          if r or m is not w.mod],
        ("admin unban", {"member": troll}),
        ("admin unban", {"member": alice}),
        *[("admin delete", {"message": t}) for t in targets],
        *[("admin edit", {"message": t}) for t in targets],
        *[("admin halt", {"tree": t}) for t in (str(w.ids["t1"]), str(w.ids["t2"]), w.link("P3"), "0")],
        *[("admin resume", {"tree": t}) for t in (str(w.ids["t1"]), w.link("P1"))],
        ("admin flagged", {}),
        ("admin trollboard", {}),
        ("admin audit", {}),
        ("admin audit", {"member": w.mod}),
        ("admin stats", {}),
        *[("admin export", {"format": f, "language": lang}) for f, lang in (("oasst-trees", None), ("sft", "en"))],
        ("admin model show", {}),
        ("admin model reload", {}),
    ]


async def test_non_moderators_change_nothing_and_every_attempt_is_audited(emulator, start_bot, world_of, tmp_path):
    emu = emulator
    async with start_bot(admin_settings(tmp_path)) as bot:
        w = await world_of(bot)
        sessions, guild = bot.services.sessions, w.guild
        # A moderator set up a log channel and left a confirmation open.
        await (await w.mod.slash("admin log-channel", {"channel": w.mod_log}, channel=w.general)).wait_message()
        ask = await (await w.mod.slash("admin ban", {"member": w.members["troll"]}, channel=w.general)).wait_message()
        logged = len(emu.channel_messages(w.mod_log))
        # A server admin showed /admin and "Delete subtree" to everyone: the check must hold on its own.
        await emu.set_command_permissions(guild, "admin", roles=[guild.everyone])
        await emu.set_command_permissions(guild, "Delete subtree", roles=[guild.everyone], type=3)
        before = await database_dump(sessions)
        async with sessions() as s:
            audited_before = await s.scalar(select(func.count()).select_from(AuditLog))

        callers = itertools.cycle([w.members[n] for n in ("alice", "bob", "troll")])
        attempts = slash_attempts(w)
        rounds = list(itertools.islice(itertools.cycle(attempts), 50))
        assert len({name for name, _ in rounds}) == len({name for name, _ in attempts}) == 15
        for name, options in rounds:
            answer = await (await next(callers).slash(name, options, channel=w.general)).wait_message()
            assert answer.ephemeral and REFUSED in answer.content, (name, options, answer.content)

        # Right-click "Delete subtree" on a post.
        menu = await (await w.members["bob"].context_menu("Delete subtree", w.posts["P1"])).wait_message()
        assert REFUSED in menu.content

        # Buttons with forged custom_ids: on a message in a public channel, and on the moderator's own
        # (ephemeral) confirmation, as a crafted client could send them.
        forged_ids = [f"adm:ok:ban:{w.members['troll'].id}:forged", f"adm:ok:del:{w.ids['P1']}",
                      f"adm:ok:halt:{w.ids['t1']}", f"adm:ok:banauthor:{w.ids['A3']}", f"adm:fq:keep:{w.ids['A3']}:0",
                      f"adm:fq:del:{w.ids['A2']}:0", f"adm:fq:ban:{w.ids['A3']}:0", "adm:pg:audit:0:0:r",
                      "adm:pg:flagged:0:0:n", "adm:no"]
        crafted = emu.post_message(w.general, emu.bot_user, {"content": "Confirm?", "components": [
            {"type": 1, "components": [{"type": 2, "style": 4, "label": "Go", "custom_id": cid}
                                       for cid in forged_ids[i:i + 5]]} for i in (0, 5)]})
        for cid in forged_ids:
            answer = await (await w.members["alice"].click(crafted, cid)).wait_message()
            assert REFUSED in answer.content, cid
        for cid in ask.custom_ids:
            forged = emu.new_interaction(w.members["troll"], w.general, MESSAGE_COMPONENT,
                                         {"custom_id": cid, "component_type": 2}, message=ask)
            assert REFUSED in (await forged.wait_message()).content
        # And a forged edit form.
        form = emu.new_interaction(w.members["troll"], w.general, MODAL_SUBMIT, {
            "custom_id": f"adm:edit:{w.ids['P1']}",
            "components": [{"type": 1, "components": [{"type": 4, "custom_id": "adm:text", "value": "pwned"}]}]})
        assert REFUSED in (await form.wait_message()).content

        assert await database_dump(sessions) == before
        assert len(emu.channel_messages(w.mod_log)) == logged  # nothing to log: nothing happened
        assert not (tmp_path / "exports").exists()  # no export was written
        async with sessions() as s:
            refused = (await s.scalars(select(AuditLog).where(AuditLog.action == "refused_not_moderator")
                                       .order_by(AuditLog.id))).all()
            audited = await s.scalar(select(func.count()).select_from(AuditLog))
        total = 50 + 1 + len(forged_ids) + len(ask.custom_ids) + 1
        assert len(refused) == total == audited - audited_before
        assert [r.details["command"] for r in refused[:len(rounds)]] == [name for name, _ in rounds]
        assert refused[len(rounds)].details["command"] == "Delete subtree"
        assert refused[-1].details["command"] == f"form adm:edit:{w.ids['P1']}"
        assert {r.details["command"] for r in refused} >= {f"button {cid}" for cid in forged_ids}
        assert all(r.actor_id is None and r.guild_id == guild.id for r in refused)
