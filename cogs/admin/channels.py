"""/admin channel set|off|show: where the bot posts tasks, how often, which kinds, in which language."""

from __future__ import annotations

import discord
from discord import app_commands

from bot.labelling.errors import LabellingError
from bot.labelling.post_channels import KIND_WORDS, MAX_INTERVAL_MINUTES, ChannelConfig, PostChannels

# What the bot needs in a task channel: post, show embeds and files, seed reactions, and take a member's
# reaction off their own text (Manage Messages).
NEEDED = ("view_channel", "send_messages", "embed_links", "attach_files", "add_reactions", "read_message_history",
          "manage_messages")


def post_channels(client: discord.Client) -> PostChannels:
    services = client.services  # type: ignore[attr-defined]
    return PostChannels(services.sessions, services.labelling.ctx, client.settings.posts)  # type: ignore[attr-defined]


def describe(config: ChannelConfig, next_post: object = None) -> str:
    kinds = ", ".join(KIND_WORDS[k] for k in config.kinds)
    text = (f"<#{config.channel_id}>: every **{config.interval_minutes} min**, {kinds}, "
            f"language **{config.language}**")
    if next_post is not None:
        text += f"; next post {discord.utils.format_dt(next_post, 'R')}"  # type: ignore[arg-type]
    return text


class ChannelCommands:
    """Mixed into the /admin group cog (cogs/admin/__init__.py)."""

    channel = app_commands.Group(name="channel", description="Task posts in channels: where, how often, which kinds")

    @channel.command(name="set", description="Post tasks in a channel on a schedule (or change its schedule)")
    @app_commands.describe(
        channel="The channel to post tasks in",
        interval="Minutes between posts (default 60)",
        kinds="Comma-separated: prompt, reply, review, rank (default: all)",
        language="Language of the tasks, e.g. en or de (default: the campaign's)",
    )
    async def channel_set(self, interaction: discord.Interaction, channel: discord.TextChannel,
                          interval: app_commands.Range[int, 1, MAX_INTERVAL_MINUTES] | None = None,
                          kinds: app_commands.Range[str, 1, 100] | None = None,
                          language: app_commands.Range[str, 2, 16] | None = None) -> None:
        assert interaction.guild is not None
        target = interaction.guild.get_channel(channel.id)
        me = interaction.guild.me
        if not isinstance(target, discord.TextChannel) or me is None:
            await interaction.response.send_message("I cannot see that channel; nothing was changed.", ephemeral=True)
            return
        permissions = target.permissions_for(me)
        missing = [name.replace("_", " ").title() for name in NEEDED if not getattr(permissions, name)]
        if missing:
            await interaction.response.send_message(
                f"I need these permissions in {target.mention} first: {', '.join(missing)}. Nothing was changed.",
                ephemeral=True)
            return
        try:
            config = await post_channels(interaction.client).set(
                interaction.guild.id, target.id, interval_minutes=interval, kinds=kinds, language=language,
                actor_discord_id=interaction.user.id, actor_name=interaction.user.display_name)
        except LabellingError as refused:
            await interaction.response.send_message(f"{refused.message} Nothing was changed.", ephemeral=True)
            return
        posts = interaction.client.get_cog("Posts")
        first = posts.schedule(config, new=True) if posts is not None else None  # type: ignore[attr-defined]
        note = "" if posts is not None else "\nTask posts are switched off on this bot (cogs.labelling.posts_cog)."
        await interaction.response.send_message(f"Task channel set: {describe(config, first)}.{note}", ephemeral=True)

    @channel.command(name="off", description="Stop posting tasks in a channel")
    @app_commands.describe(channel="The task channel to switch off (needed when there are several)")
    async def channel_off(self, interaction: discord.Interaction,
                          channel: discord.TextChannel | None = None) -> None:
        assert interaction.guild is not None
        try:
            config = await post_channels(interaction.client).off(
                interaction.guild.id, channel.id if channel else None, actor_discord_id=interaction.user.id,
                actor_name=interaction.user.display_name)
        except LabellingError as refused:
            await interaction.response.send_message(refused.message, ephemeral=True)
            return
        posts = interaction.client.get_cog("Posts")
        if posts is not None:
            posts.unschedule(config.channel_id)  # type: ignore[attr-defined]
        await interaction.response.send_message(
            f"No more task posts in <#{config.channel_id}>. Its posts stay; reactions on them still count.",
            ephemeral=True)

    @channel.command(name="show", description="The task channels of this server and their schedules")
    async def channel_show(self, interaction: discord.Interaction) -> None:
        assert interaction.guild is not None
        configs = await post_channels(interaction.client).list(interaction.guild.id)
        if not configs:
            await interaction.response.send_message(
                "No task channels yet: /admin channel set picks one.", ephemeral=True)
            return
        posts = interaction.client.get_cog("Posts")
        lines = [describe(c, posts.next_run(c.channel_id) if posts is not None else None)  # type: ignore[attr-defined]
                 for c in configs]
        await interaction.response.send_message("\n".join(lines), ephemeral=True)
