"""The Discord side of the member service: who is calling, refusals, and the names shown for board lines.

Names: the member's current server name, else a stable pseudonym. In a server, someone who is no longer a member gets their pseudonym: they left, and a stored name
would still point at them. In DMs there is no member list to ask, so the name they last used with the
bot is shown, or the pseudonym when none is known. A Discord id is never shown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

import discord

from bot.labelling.members import BoardLine, Caller, MemberRefused, MemberService
from bot.labelling.pseudonyms import resolve_salt

log = logging.getLogger(__name__)
# The gateway answers a member request in one round trip; past this, fall back to the stored names.
MEMBER_LOOKUP_SECONDS = 5.0


def member_service(bot: Any) -> MemberService:
    """The member service over the bot's labelling service; pseudonyms are keyed by the export salt."""
    return MemberService(bot.services.labelling, salt=resolve_salt(None, bot.settings.database.url))


def caller_of(interaction: discord.Interaction) -> Caller:
    return Caller(interaction.user.id, interaction.user.display_name, str(interaction.locale))


async def send_refusal(interaction: discord.Interaction, refused: MemberRefused) -> None:
    if interaction.response.is_done():
        await interaction.followup.send(refused.message, ephemeral=True)
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


async def line_names(guild: discord.Guild | None, lines: Iterable[BoardLine]) -> dict[int, str]:
    lines = list(lines)
    members = None if guild is None else await guild_member_names(guild, (line.entry.discord_id for line in lines))
    names = {}
    for line in lines:
        discord_id = line.entry.discord_id
        if members is not None:
            names[discord_id] = members.get(discord_id) or line.pseudonym
        else:
            names[discord_id] = line.entry.display_name or line.pseudonym
    return names
