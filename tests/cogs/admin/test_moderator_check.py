"""The moderator check on every /admin call: who passes, and a refusal that changes nothing but the audit."""

from __future__ import annotations

from sqlalchemy import select

from bot.config import Settings
from emulator import permissions as P
from storage.models import AuditLog, GuildSettings
from tests.cogs.conftest import database_dump


def admin_settings(tmp_path, **discord) -> Settings:
    return Settings(database={"url": f"sqlite+aiosqlite:///{tmp_path}/bot.db"},
                    discord={"cogs": ["cogs.admin"], **discord}, chat={"enabled": False})


async def test_moderators_pass_and_others_are_refused_politely_and_audited(emulator, start_bot, tmp_path):
    emu = emulator
    guild = await emu.create_guild("Campaign", channels=["general"])
    general = guild.channel("general")
    helpers = await emu.create_role(guild, "Helpers")
    manager = await emu.create_user("manager", guild=guild, moderator=True)  # Manage Server via the Moderator role
    helper = await emu.create_user("helper", guild=guild, roles=[helpers])
    member = await emu.create_user("member", guild=guild)
    owner = await emu.create_user("owner", guild=guild)
    assert emu.moderator_role(guild).permissions & P.MANAGE_GUILD
    async with start_bot(admin_settings(tmp_path, owner_ids=[owner.id])) as bot:
        sessions = bot.services.sessions
        # Discord's default-permission hint is not security: a server admin may show /admin to everyone.
        await emu.set_command_permissions(guild, "admin", roles=[guild.everyone])
        before = await database_dump(sessions)
        # Members without rights: refused, nothing changed, each attempt audited with its options.
        for caller, options in ((member, {"role": helpers}), (helper, {"role": helpers}), (member, {})):
            answer = await (await caller.slash("admin moderator-role", options, channel=general)).wait_message()
            assert answer.ephemeral and "for the server's moderators" in answer.content
        assert await database_dump(sessions) == before
        async with sessions() as session:
            refused = (await session.scalars(select(AuditLog).where(AuditLog.action == "refused_not_moderator"))).all()
        assert len(refused) == 3
        assert refused[0].details["command"] == "admin moderator-role"
        assert refused[0].details["discord_user_id"] == str(member.id)
        assert refused[0].details["options"] == {"role": str(helpers.id)}

        # Manage Server makes a moderator; the role it sets makes the helper one too.
        answer = await (await manager.slash("admin moderator-role", {"role": helpers}, channel=general)).wait_message()
        assert "**Helpers** role are now moderators" in answer.content
        async with sessions() as session:
            assert (await session.get(GuildSettings, guild.id)).moderator_role_id == helpers.id
        answer = await (await helper.slash("admin moderator-role", {}, channel=general)).wait_message()
        assert "only members with Manage Server" in answer.content
        # An owner from the settings needs neither.
        answer = await (await owner.slash("admin moderator-role", {"role": helpers}, channel=general)).wait_message()
        assert "are now moderators" in answer.content
        async with sessions() as session:
            actions = (await session.scalars(select(AuditLog.action).order_by(AuditLog.id))).all()
        assert actions == ["refused_not_moderator"] * 3 + ["set_moderator_role"] * 3
