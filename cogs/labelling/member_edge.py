"""The Discord side of the member service: who is calling, refusals, and the names shown for board lines.

Names: the member's current server name, else a stable pseudonym. In a server, someone who is no longer
a member gets their pseudonym: they left, and a stored name would still point at them. In DMs the
bot's servers are asked instead (a self-hosted bot serves one community or a few); only when they could
not all be asked does the name stored at the member's last contact stand in. A Discord id is never shown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

import discord

from bot.labelling.members import BoardLine, Member, MemberRefused, MemberService
from bot.labelling.pseudonyms import resolve_salt
from cogs import delivery

log = logging.getLogger(__name__)
# In DMs, the servers asked for names at most; a bot in more falls back to the stored names.
DM_GUILD_LOOKUPS = 5
# The gateway answers a member request in one round trip; past this, fall back to the stored names.
MEMBER_LOOKUP_SECONDS = 5.0


def member_service(bot: Any) -> MemberService:
    """The member service over the bot's labelling service; pseudonyms are keyed by the export salt."""
    return MemberService(bot.services.labelling, salt=resolve_salt(None, bot.settings.database.url))


def caller_of(interaction: discord.Interaction) -> Member:
    return Member(interaction.user.id, interaction.user.display_name, str(interaction.locale))


async def send_refusal(interaction: discord.Interaction, refused: MemberRefused) -> None:
    if interaction.response.is_done():
        await delivery.followup(interaction, refused.message, ephemeral=True)
    else:
        await interaction.response.send_message(refused.message, ephemeral=True)


async def guild_member_names(guild: discord.Guild, discord_ids: Iterable[int]) -> dict[int, str] | None:
    """Current display names of those ids that are members of the guild; None when it could not be asked."""
    names: dict[int, str] = {}
    missing = []
    for discord_id in dict.fromkeys(discord_ids):
        member = guild.get_member(discord_id)
        if member is not None:
            names[discord_id] = member.display_name
        else:
            missing.append(discord_id)
    if missing:
        try:
            async with asyncio.timeout(MEMBER_LOOKUP_SECONDS):
                # By ids, which needs no privileged intent; at most 100 ids per request (a page has 11).
                found = await guild.query_members(user_ids=missing, limit=len(missing), cache=False)
        except (TimeoutError, discord.ClientException) as exc:
            log.warning("could not look up %d members of guild %s: %s", len(missing), guild.id, exc)
            return None
        names.update((member.id, member.display_name) for member in found)
    return names


def name_sources(interaction: discord.Interaction) -> tuple[list[discord.Guild], bool]:
    """The servers whose members may be named in this answer, and whether they are all of them."""
    if interaction.guild is not None:
        return [interaction.guild], True
    guilds = list(interaction.client.guilds)
    # A bot in no server (DMs only) has nobody to ask: the stored names are all there is.
    return guilds[:DM_GUILD_LOOKUPS], 0 < len(guilds) <= DM_GUILD_LOOKUPS


async def line_names(interaction: discord.Interaction, lines: Iterable[BoardLine]) -> dict[int, str]:
    lines = list(lines)
    guilds, complete = name_sources(interaction)
    current: dict[int, str] = {}
    for guild in guilds:
        wanted = [line.entry.discord_id for line in lines if line.entry.discord_id not in current]
        if not wanted:
            break
        found = await guild_member_names(guild, wanted)
        if found is None:
            complete = False
        else:
            current.update(found)
    names = {}
    for line in lines:
        discord_id = line.entry.discord_id
        if discord_id in current:
            names[discord_id] = current[discord_id]
        elif complete:  # asked everywhere and not a member: they left
            names[discord_id] = line.pseudonym
        else:
            names[discord_id] = line.entry.display_name or line.pseudonym
    return names
