"""The buttons of moderator messages. Each is a DynamicItem whose custom_id carries its whole state, so a
confirmation or a queue page keeps working after a restart; every click runs the moderator check again
(a forged or forwarded custom_id from a non-moderator is refused, audited, and changes nothing).

custom_ids: ``adm:ok:<action>:<id>[:<reason>]`` (confirm a destructive action), ``adm:no`` (cancel),
``adm:fq:<keep|del|ban>:<message>:<page>`` (flag queue entry), ``adm:pg:<flagged|audit>:<page>:<member>:<p|r|n>``
(paging; member 0 = everyone).
"""

from __future__ import annotations

import re
from typing import Any

import discord

from cogs.admin.checks import NotModerator, answer_refusal, require_moderator
from cogs.command_errors import answers_failures
from cogs.custom_ids import DISCORD_ID, PAGE, ROW_ID

ADMIN_COG = "AdminCog"
CONFIRM_ACTIONS = ("ban", "banauthor", "del", "halt")
# Discord allows 100 characters in a custom_id; a ban reason rides in what is left.
REASON_CHARS = 60


async def _checked(interaction: discord.Interaction) -> Any | None:
    """The admin cog if the clicker is a moderator; otherwise the refusal is answered and None returned."""
    try:
        await require_moderator(interaction)
    except NotModerator as refused:
        await answer_refusal(interaction, refused)
        return None
    return interaction.client.get_cog(ADMIN_COG)  # type: ignore[union-attr]


class ConfirmButton(discord.ui.DynamicItem[discord.ui.Button],
                    template=rf"adm:ok:(?:(?P<ban>ban):(?P<member>{DISCORD_ID})|(?P<action>banauthor|del|halt):"
                             rf"(?P<row>{ROW_ID}))(?::(?P<reason>.*))?"):
    """A ban names a member by Discord id; the other actions name one of our messages or trees."""

    def __init__(self, action: str, target: int, reason: str | None = None, *, label: str = "Confirm") -> None:
        custom_id = f"adm:ok:{action}:{target}" + (f":{reason[:REASON_CHARS]}" if reason else "")
        super().__init__(discord.ui.Button(label=label, style=discord.ButtonStyle.danger, custom_id=custom_id))
        self.action, self.target, self.reason = action, target, reason or None

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button,
                             match: re.Match[str]) -> ConfirmButton:
        return cls(match["ban"] or match["action"], int(match["member"] or match["row"]), match["reason"],
                   label=item.label or "Confirm")

    @answers_failures
    async def callback(self, interaction: discord.Interaction) -> None:
        cog = await _checked(interaction)
        if cog is not None:
            await cog.on_confirm(interaction, self.action, self.target, self.reason)


class CancelButton(discord.ui.DynamicItem[discord.ui.Button], template=r"adm:no"):
    def __init__(self) -> None:
        super().__init__(discord.ui.Button(label="Cancel", style=discord.ButtonStyle.secondary, custom_id="adm:no"))

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button,
                             match: re.Match[str]) -> CancelButton:
        return cls()

    @answers_failures
    async def callback(self, interaction: discord.Interaction) -> None:
        if await _checked(interaction) is not None:
            await interaction.response.edit_message(content="Cancelled: nothing was changed.", embeds=[], view=None)


class FlagButton(discord.ui.DynamicItem[discord.ui.Button],
                 template=rf"adm:fq:(?P<action>keep|del|ban):(?P<message>{ROW_ID}):(?P<page>{PAGE})"):
    LOOK = {"keep": ("Keep", discord.ButtonStyle.success), "del": ("Delete", discord.ButtonStyle.danger),
            "ban": ("Ban author", discord.ButtonStyle.danger)}

    def __init__(self, action: str, message_id: int, page: int, *, disabled: bool = False) -> None:
        label, style = self.LOOK[action]
        super().__init__(discord.ui.Button(label=f"{label} #{message_id}" if action != "ban" else label, style=style,
                                           disabled=disabled, custom_id=f"adm:fq:{action}:{message_id}:{page}"))
        self.action, self.message_id, self.page = action, message_id, page

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button,
                             match: re.Match[str]) -> FlagButton:
        return cls(match["action"], int(match["message"]), int(match["page"]))

    @answers_failures
    async def callback(self, interaction: discord.Interaction) -> None:
        cog = await _checked(interaction)
        if cog is not None:
            await cog.on_flag_button(interaction, self.action, self.message_id, self.page)


class PageButton(discord.ui.DynamicItem[discord.ui.Button],
                 template=rf"adm:pg:(?P<view>flagged|audit):(?P<page>{PAGE}):(?P<member>{DISCORD_ID}):(?P<tag>[prn])"):
    """``tag`` (previous, refresh, next) keeps the three buttons' custom_ids apart on the first page."""

    def __init__(self, view: str, page: int, member: int = 0, tag: str = "r", *, label: str,
                 disabled: bool = False) -> None:
        super().__init__(discord.ui.Button(label=label, style=discord.ButtonStyle.secondary, disabled=disabled,
                                           custom_id=f"adm:pg:{view}:{page}:{member}:{tag}"))
        self.screen, self.page, self.member = view, page, member

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button,
                             match: re.Match[str]) -> PageButton:
        return cls(match["view"], int(match["page"]), int(match["member"]), match["tag"], label=item.label or "")

    @answers_failures
    async def callback(self, interaction: discord.Interaction) -> None:
        cog = await _checked(interaction)
        if cog is not None:
            await cog.on_page(interaction, self.screen, self.page, self.member or None)


DYNAMIC_ITEMS = (ConfirmButton, CancelButton, FlagButton, PageButton)


def confirm_view(action: str, target: int, reason: str | None = None, *, label: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(ConfirmButton(action, target, reason, label=label))
    view.add_item(CancelButton())
    return view


def pager(view_name: str, page: int, pages: int, member: int = 0) -> list[discord.ui.Item]:
    """Previous / Refresh / Next; Refresh re-reads the current page."""
    return [
        PageButton(view_name, max(page - 1, 0), member, "p", label="◀ Previous", disabled=page <= 0),
        PageButton(view_name, page, member, "r", label=f"Refresh ({page + 1}/{pages})"),
        PageButton(view_name, page + 1, member, "n", label="Next ▶", disabled=page + 1 >= pages),
    ]
