"""/leaderboard (paged), /profile and /tasks: where a member sees the campaign and their place in it."""

from __future__ import annotations

import re
from typing import Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.labelling.members import BoardPage, MemberRefused, MemberService
from cogs import delivery
from cogs.command_errors import answers_failures
from cogs.custom_ids import PAGE
from cogs.labelling import render_profile as render
from cogs.labelling.member_edge import caller_of, line_names, member_service, send_refusal

Period = Literal["day", "week", "month", "all"]


class PageButton(discord.ui.DynamicItem[discord.ui.Button],
                 template=rf"board:(?P<period>[a-z]+):(?P<page>{PAGE}):(?P<owner>[0-9a-f]{{1,16}})"):
    """Previous / Next under a leaderboard. The owner is who asked for it: their clicks turn the page in
    place, anyone else gets their own copy of that page (with their own standing) privately. The owner is
    written as a keyed token, not as their Discord id."""

    def __init__(self, period: str, page: int, owner: str, *, label: str = "Next", disabled: bool = False) -> None:
        super().__init__(discord.ui.Button(label=label, style=discord.ButtonStyle.secondary, disabled=disabled,
                                           custom_id=f"board:{period}:{page}:{owner}"))
        self.period, self.page, self.owner = period, page, owner

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button,
                             match: re.Match[str]) -> PageButton:
        return cls(match["period"], int(match["page"]), match["owner"])

    @answers_failures
    async def callback(self, interaction: discord.Interaction) -> None:
        cog: BoardCog | None = interaction.client.get_cog("Board")  # type: ignore[union-attr]
        if cog is None:
            await interaction.response.send_message("The leaderboard is not available right now.", ephemeral=True)
            return
        await cog.turn_page(interaction, self.period, self.page, self.owner)


def board_view(board: BoardPage, owner: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    # On the first or last page the disabled button still needs a custom_id of its own.
    view.add_item(PageButton(board.period, max(board.page - 1, 0), owner, label="◀ Previous",
                             disabled=board.page == 0))
    view.add_item(PageButton(board.period, board.page + 1, owner, label="Next ▶",
                             disabled=board.page + 1 >= board.pages))
    return view


class BoardCog(commands.Cog, name="Board"):
    def __init__(self, bot: Any, members: MemberService) -> None:
        self.bot = bot
        self.members = members

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(PageButton)

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(PageButton)

    async def _board_message(self, interaction: discord.Interaction, period: str, page: int
                             ) -> tuple[discord.Embed, discord.ui.View]:
        board = await self.members.leaderboard(caller_of(interaction), period, page)
        lines = board.lines + ([board.standing.line] if board.standing.line else [])
        names = await line_names(interaction, lines)
        owner = self.members.owner_token(interaction.user.id)
        return render.leaderboard_embed(board, names, interaction.user.id), board_view(board, owner)

    @app_commands.command(name="leaderboard", description="Who earned the most points, with your own standing")
    @app_commands.describe(period="Which points count: the last day, week (default), month, or all time")
    async def leaderboard(self, interaction: discord.Interaction, period: Period = "week") -> None:
        # Member names may need a round trip to the gateway: answer Discord first.
        await interaction.response.defer(thinking=True)
        try:
            embed, view = await self._board_message(interaction, period, 0)
        except MemberRefused as refused:
            await send_refusal(interaction, refused)
            return
        await delivery.followup(interaction, embed=embed, view=view)

    async def turn_page(self, interaction: discord.Interaction, period: str, page: int, owner: str) -> None:
        mine = self.members.owner_token(interaction.user.id) == owner
        if mine:
            await interaction.response.defer()
        else:
            await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            embed, view = await self._board_message(interaction, period, page)
        except MemberRefused as refused:
            await send_refusal(interaction, refused)
            return
        if mine:
            await delivery.edit_original(interaction, embed=embed, view=view)
        else:
            await delivery.followup(interaction, embed=embed, view=view, ephemeral=True)

    @app_commands.command(name="profile", description="Points, level, streak and contributions of you or a member")
    @app_commands.describe(member="Whose profile to show (default: yours)")
    async def profile(self, interaction: discord.Interaction, member: discord.User | None = None) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            profile = await self.members.profile(caller_of(interaction), None if member is None else member.id)
        except MemberRefused as refused:
            await send_refusal(interaction, refused)
            return
        name = (member or interaction.user).display_name
        embed = render.profile_embed(profile, name, self.members.ctx.settings.good_agreement)
        await delivery.followup(interaction, embed=embed, ephemeral=True)

    @app_commands.command(name="tasks", description="What work is waiting for you now, in your language")
    @app_commands.describe(language="A language tag such as en, de or pt-BR (default: your settings)")
    async def tasks(self, interaction: discord.Interaction, language: str | None = None) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            overview = await self.members.tasks_overview(caller_of(interaction), language)
        except MemberRefused as refused:
            await send_refusal(interaction, refused)
            return
        await delivery.followup(interaction, embed=render.tasks_embed(overview), ephemeral=True)


async def setup(bot: Any) -> None:
    await bot.add_cog(BoardCog(bot, member_service(bot)))
