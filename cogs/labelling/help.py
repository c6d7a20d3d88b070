"""/help: what the bot is for, every command in one line, how points work, where to start."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from cogs.labelling import render_profile as render

ABOUT = (
    "This server builds an open dataset for training helpful AI assistants, the way Open-Assistant did: "
    "members write prompts and replies, review each other's messages and rank replies from best to worst. "
    "Finished conversations are exported for training (under pseudonyms; `/settings optout` keeps yours out). "
    "You can also chat with the bot's own model in DMs."
)
START = ("New here? `/tutorial` walks through each kind of task with examples; then `/task` gives you a real "
         "one. `/tasks` shows what is waiting in your language.")


def command_lines(tree: app_commands.CommandTree) -> Iterator[str]:
    """One line per slash command the bot has loaded, subcommands spelled out."""
    def walk(command: app_commands.Command | app_commands.Group) -> Iterator[str]:
        if isinstance(command, app_commands.Group):
            for child in sorted(command.commands, key=lambda c: c.name):
                yield from walk(child)
        else:
            yield f"`/{command.qualified_name}` {command.description}"

    for command in sorted(tree.get_commands(type=discord.AppCommandType.chat_input), key=lambda c: c.name):
        yield from walk(command)


class HelpCog(commands.Cog, name="Help"):
    def __init__(self, bot: Any) -> None:
        self.bot = bot

    @app_commands.command(name="help", description="What this bot does, its commands and how points work")
    async def help(self, interaction: discord.Interaction) -> None:
        # The command list goes in the description, which holds 4096 characters (a field only 1024).
        commands_text = "\n".join(command_lines(self.bot.tree))
        embed = discord.Embed(title="How this bot works", colour=render.COLOUR,
                              description=f"{ABOUT}\n\n**Commands**\n{commands_text}"[:4096])
        embed.add_field(name="Where to start", value=START, inline=False)
        embed.add_field(name="Points", value=render.points_table(self.bot.settings.labelling.points), inline=False)
        embed.add_field(
            name="Levels and leaderboards",
            value="Points raise your level (see `/profile`). `/leaderboard` ranks everyone by the points of the "
                  "last day, week, month or all time. A review or ranking only counts once per message.",
            inline=False,
        )
        await interaction.response.send_message(embed=embed, ephemeral=True)


async def setup(bot: Any) -> None:
    await bot.add_cog(HelpCog(bot))
