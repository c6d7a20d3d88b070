"""/settings: the member's labelling language and their opt-out from exports and leaderboards."""

from __future__ import annotations

from typing import Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.labelling.members import AUTO, MemberRefused, MemberService
from cogs import delivery
from cogs.labelling import render_profile as render
from cogs.labelling.member_edge import caller_of, member_service, send_refusal


class MemberSettingsCog(commands.Cog, name="MemberSettings"):
    settings_group = app_commands.Group(name="settings", description="Your labelling language and data opt-out")

    def __init__(self, members: MemberService) -> None:
        self.members = members

    @settings_group.command(name="language", description="The language of your tasks (auto: your Discord language)")
    @app_commands.describe(tag="A language tag such as en, de, fr or pt-BR; auto follows your Discord language")
    async def language(self, interaction: discord.Interaction, tag: app_commands.Range[str, 1, 35]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            settings = await self.members.set_language(caller_of(interaction), tag)
        except MemberRefused as refused:
            await send_refusal(interaction, refused)
            return
        done = (f"Your tasks are now in **{settings.language}**." if settings.language
                else f"Your tasks now follow your Discord language (**{settings.effective_language}**).")
        await delivery.followup(interaction, done, embed=render.settings_embed(settings), ephemeral=True)

    @language.autocomplete("tag")
    async def language_choices(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        locale = str(interaction.locale)
        suggestions = dict.fromkeys([AUTO, locale.split("-")[0], "en", "de", "es", "fr", "it", "pt-BR", "ru", "zh"])
        return [app_commands.Choice(name=tag, value=tag) for tag in suggestions
                if tag.lower().startswith(current.strip().lower())][:25]

    @settings_group.command(name="optout", description="Keep your contributions out of exports and leaderboards")
    @app_commands.describe(state="on: keep them out; off: allow their use and list you again")
    async def optout(self, interaction: discord.Interaction, state: Literal["on", "off"]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        settings = await self.members.set_opted_out(caller_of(interaction), state == "on")
        done = ("Done: your contributions and chats stay out of every export from now on, and you are no longer "
                "listed on leaderboards." if settings.opted_out
                else "Done: your contributions may be exported (under a pseudonym) and you are listed on "
                "leaderboards again. Thank you!")
        await delivery.followup(interaction, done, embed=render.settings_embed(settings), ephemeral=True)

    @settings_group.command(name="show", description="Show your labelling settings")
    async def show(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        settings = await self.members.settings(caller_of(interaction))
        await delivery.followup(interaction, embed=render.settings_embed(settings), ephemeral=True)


async def setup(bot: Any) -> None:
    await bot.add_cog(MemberSettingsCog(member_service(bot)))
