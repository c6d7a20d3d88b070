"""/admin stats: the campaign's figures in an embed, with one PNG chart drawn in a worker thread."""

from __future__ import annotations

import asyncio
import io

import discord
from discord import app_commands

from bot.admin.stats import DAYS, CampaignStats, campaign_stats, render_chart
from cogs import delivery

CHART_NAME = "campaign-stats.png"


def _lines(counts: dict[str, int], limit: int = 10) -> str:
    shown = [f"{name.replace('_', ' ')}: **{count}**" for name, count in list(counts.items())[:limit]]
    more = len(counts) - limit
    return "\n".join(shown + ([f"… and {more} more"] if more > 0 else [])) or "none yet"


def stats_embed(stats: CampaignStats) -> discord.Embed:
    embed = discord.Embed(title="Campaign statistics", colour=discord.Colour.blurple())
    embed.add_field(name=f"Trees ({stats.trees})", value=_lines(stats.trees_by_state))
    embed.add_field(name=f"Tasks done ({stats.tasks_done})", value=_lines(stats.tasks_done_by_kind))
    recent = [count for _, count in stats.contributions_by_day]
    busiest_day, busiest = max(stats.contributions_by_day, key=lambda dc: (dc[1], dc[0]))
    embed.add_field(name=f"Last {DAYS} days", value=(
        f"tasks done: **{sum(recent)}**\ntoday: **{recent[-1]}**\n"
        + (f"busiest: **{busiest}** on {busiest_day:%d %b}" if busiest else "no work done")))
    mean = "no scored rankings yet" if stats.mean_agreement is None else \
        f"mean **{stats.mean_agreement:.2f}** over **{stats.rankings_scored}** rankings"
    embed.add_field(name="Ranking agreement", value=mean)
    embed.add_field(name="Messages by language", value=_lines(stats.messages_by_language))
    embed.set_image(url=f"attachment://{CHART_NAME}")
    return embed


class StatsCommands:
    """Mixed into the /admin group cog (cogs/admin/__init__.py)."""

    @app_commands.command(name="stats", description="How the campaign goes: trees, tasks, activity, agreement")
    async def stats(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        figures = await campaign_stats(interaction.client.services.sessions)  # type: ignore[attr-defined]
        # Drawing takes tens of milliseconds of CPU: never on the event loop.
        png = await asyncio.to_thread(render_chart, figures)
        await delivery.followup(interaction, embed=stats_embed(figures),
                                file=discord.File(io.BytesIO(png), CHART_NAME), ephemeral=True)
