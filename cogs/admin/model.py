"""/admin model show and /admin model reload: which chat model runs and how it does, and loading a
replaced model file without restarting the bot (model_runner/reloadable.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import discord
from discord import app_commands

from cogs.admin.render import done, person, say
from model_runner.errors import ModelRunnerError
from model_runner.reloadable import ReloadableRunner, RunnerStats


def _runner(interaction: discord.Interaction) -> tuple[ReloadableRunner | None, str | None]:
    services = interaction.client.services  # type: ignore[attr-defined]
    runner = services.chat_runner
    if isinstance(runner, ReloadableRunner):
        return runner, None
    return None, services.chat_unavailable_reason or "Chat is not running on this bot."


def model_embed(stats: RunnerStats) -> discord.Embed:
    embed = discord.Embed(title=f"Chat model: {stats.model_name}", colour=discord.Colour.blurple())
    embed.add_field(name="Backend", value=stats.backend)
    embed.add_field(name="Model file" if stats.backend == "llama.cpp" else "Server",
                    value=f"`{stats.model_file}`" if stats.model_file else "bundled")
    embed.add_field(name="Queue", value=f"{stats.waiting} waiting, {stats.active} generating")
    speed = "no replies yet" if stats.recent_tokens_per_second is None else \
        f"{stats.recent_tokens_per_second:.1f} tokens/s"
    embed.add_field(name="Recent speed", value=speed)
    embed.add_field(name="Requests served", value=(f"{stats.requests_served} ({stats.completion_tokens} tokens)"
                                                   + (f", {stats.requests_failed} failed" if stats.requests_failed
                                                      else "")))
    loaded = discord.utils.format_dt(datetime.fromtimestamp(stats.loaded_at, UTC), "R")
    embed.add_field(name="Loaded", value=loaded + (f" (reloaded {stats.reloads}×)" if stats.reloads else ""))
    return embed


class ModelCommands:
    """Mixed into the /admin group cog (cogs/admin/__init__.py)."""

    model = app_commands.Group(name="model", description="The chat model: what runs, and reloading it")

    @model.command(name="show", description="Backend, model file, queue, recent speed and requests served")
    async def model_show(self, interaction: discord.Interaction) -> None:
        runner, why = _runner(interaction)
        if runner is None:
            await say(interaction, why)
            return
        await say(interaction, embed=model_embed(runner.runner_stats()))

    @model.command(name="reload", description="Load the configured model file again (after replacing it)")
    async def model_reload(self, interaction: discord.Interaction) -> None:
        runner, why = _runner(interaction)
        if runner is None:
            await say(interaction, why)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        actor = person(interaction.user.id, interaction.user.display_name)
        try:
            stats = await runner.reload()
        except ModelRunnerError as exc:
            await say(interaction, f"The model was not reloaded: {exc}\nThe current model keeps serving.")
            return
        await done(interaction, f"Reloaded: **{stats.model_name}** now answers new chats; replies already "
                                "being written finish on the previous copy.",
                   f"🔄 {actor} reloaded the chat model ({stats.model_name}).")
