"""Shared rendering of the /admin group: who acts, answers and refusals, the log channel, and the embeds
of previews, queues and the audit log. Mentions are shown but never ping (allowed_mentions none)."""

from __future__ import annotations

import logging
from typing import Any

import discord

from bot.admin.actions import DeletePreview, MessageLine, Moderator
from bot.admin.queues import AuditPage, FlagPage, TrollLine
from bot.labelling.errors import LabellingError
from cogs import delivery
from cogs.admin.checks import guild_admin
from cogs.admin.components import FlagButton, pager

log = logging.getLogger(__name__)
QUIET = discord.AllowedMentions.none()
PREVIEW_CHARS = 300
EMBED_CHARS = 4000


def moderator_of(interaction: discord.Interaction) -> Moderator:
    return Moderator(interaction.user.id, interaction.user.display_name,
                     interaction.guild.id if interaction.guild else None)


def short(text: str, limit: int = PREVIEW_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def person(discord_id: int | None, name: str) -> str:
    if discord_id is None:
        return f"**{name or 'someone unknown'}**"
    return f"**{discord.utils.escape_markdown(name)}** (<@{discord_id}>)" if name else f"<@{discord_id}>"


async def say(interaction: discord.Interaction, content: str | None = None, **kwargs: Any) -> None:
    """An ephemeral answer, or a follow-up once the interaction was answered or deferred."""
    kwargs.setdefault("allowed_mentions", QUIET)
    if "view" in kwargs and kwargs["view"] is None:
        del kwargs["view"]  # a page without buttons (discord.py takes None only when editing)
    if interaction.response.is_done():
        await delivery.followup(interaction, content, ephemeral=True, **kwargs)
    else:
        await interaction.response.send_message(content, ephemeral=True, **kwargs)


async def refuse(interaction: discord.Interaction, error: LabellingError) -> None:
    await say(interaction, error.message)


async def post_log(interaction: discord.Interaction, text: str) -> bool:
    """One message in the guild's log channel; False when none is set or the bot cannot post there."""
    guild = interaction.guild
    if guild is None:
        return False
    config = await guild_admin(interaction.client).config(guild.id)
    channel = guild.get_channel(config.log_channel_id) if config.log_channel_id else None
    if not isinstance(channel, discord.abc.Messageable):
        return False
    try:
        await channel.send(text[:2000], allowed_mentions=QUIET)
    except discord.HTTPException as exc:
        log.warning("could not post to the log channel %s of guild %s: %s", channel.id, guild.id, exc)
        return False
    return True


async def done(interaction: discord.Interaction, answer: str, log_line: str, *, update: bool = False) -> None:
    """Tell the moderator what happened (editing the confirmation when ``update``) and log it."""
    logged = await post_log(interaction, log_line)
    if not logged:
        answer += "\n-# Not posted to a log channel: set one with `/admin log-channel`, and let the bot post there."
    if update:
        await interaction.response.edit_message(content=answer, embeds=[], view=None, allowed_mentions=QUIET)
    else:
        await say(interaction, answer)


def _line(line: MessageLine) -> str:
    indent = "  " * line.depth
    author = f" by {line.author_name}" if line.author_name else ""
    return f"{indent}• #{line.id} {line.role}{author}: {short(line.text, 120)}"


def preview_embed(preview: DeletePreview) -> discord.Embed:
    root = preview.message
    hidden = preview.total - 1
    embed = discord.Embed(
        title=f"Delete message #{root.id} of tree #{root.tree_id}?",
        description="\n".join(_line(line) for line in preview.subtree)[:EMBED_CHARS],
        colour=discord.Colour.red(),
    )
    more = preview.total - len(preview.subtree)
    footer = (f"{preview.total} message(s) will be hidden: this one and {hidden} below it"
              + (f" ({more} not listed)" if more > 0 else "") + ". Their authors lose the points earned with them.")
    if root.parent_id is None:
        footer += " It is the prompt: the whole tree is aborted."
    embed.set_footer(text=footer)
    return embed


def flag_page_message(page: FlagPage) -> dict[str, Any]:
    if not page.entries:
        return {"content": "The moderation queue is empty.", "embeds": [], "view": None}
    embeds, view = [], discord.ui.View(timeout=None)
    for row, entry in enumerate(page.entries):
        embed = discord.Embed(title=f"Message #{entry.message_id} (tree #{entry.tree_id})",
                              description=short(entry.text, 1000), colour=discord.Colour.orange())
        embed.add_field(name="Red flags", value=str(entry.red_flags))
        author = person(entry.author_discord_id, entry.author_name) + (" (banned)" if entry.author_banned else "")
        embed.add_field(name="Author", value=author)
        if entry.deleted:
            embed.add_field(name="State", value="deleted")
        embeds.append(embed)
        for action in ("keep", "del", "ban"):
            disabled = (action == "del" and entry.deleted) or (action == "ban" and
                                                               (entry.author_banned or entry.author_discord_id is None))
            item = FlagButton(action, entry.message_id, page.page, disabled=disabled)
            item.item.row = row
            view.add_item(item)
    for item in pager("flagged", page.page, page.pages):
        item.item.row = 4
        view.add_item(item)
    content = f"Moderation queue: {page.total} flagged message(s), most flagged first."
    return {"content": content, "embeds": embeds, "view": view}


def _details(details: dict[str, Any]) -> str:
    parts = []
    for key, value in details.items():
        if value in (None, "", {}, []):
            continue
        if key == "discord_user_id":
            continue
        parts.append(f"{key}={short(str(value), 60)}")
    return ", ".join(parts)


def audit_page_message(page: AuditPage) -> dict[str, Any]:
    lines = []
    for line in page.lines:
        when = discord.utils.format_dt(line.created_at, "f")
        actor = person(line.actor_discord_id, line.actor_name) if line.actor_discord_id else "**the bot**"
        target = (person(line.target_discord_id, "") if line.target_discord_id
                  else f"{line.target_type} #{line.target_id}" if line.target_id is not None else line.target_type)
        extra = _details(line.details)
        lines.append(f"`{line.id}` {when} {actor} **{line.action}** {target}" + (f" ({extra})" if extra else ""))
    who = f" for <@{page.member_discord_id}>" if page.member_discord_id else ""
    embed = discord.Embed(title=f"Audit log{' (member)' if who else ''}",
                          description=("\n".join(lines) or "Nothing recorded yet.")[:EMBED_CHARS],
                          colour=discord.Colour.blurple())
    embed.set_footer(text=f"Page {page.page + 1} of {page.pages} · {page.total} entries, newest first")
    view = discord.ui.View(timeout=None)
    for item in pager("audit", page.page, page.pages, page.member_discord_id or 0):
        view.add_item(item)
    return {"content": f"Audit log{who}.", "embeds": [embed], "view": view}


def trollboard_embed(lines: list[TrollLine]) -> discord.Embed:
    rows = []
    for rank, line in enumerate(lines, 1):
        s = line.score
        banned = " · banned" if s.banned else ""
        rows.append(f"{rank}. {person(line.discord_id, s.display_name)} score **{s.score:g}**: "
                    f"{s.red_flags} red flags, {s.downvotes} downvotes, {s.upvotes} upvotes, "
                    f"{s.aborted_prompts} aborted prompts, {s.bad_labels} bad labels{banned}")
    embed = discord.Embed(title="Trollboard", colour=discord.Colour.dark_red(),
                          description=("\n".join(rows) or "Nobody has drawn flags or downvotes.")[:EMBED_CHARS])
    embed.set_footer(text="Score = 3 × red flags − upvotes + downvotes + aborted prompts + bad labels. "
                          "Ban with /admin ban.")
    return embed
