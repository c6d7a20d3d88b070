"""Reactions on task posts, from raw gateway events only (add, remove, clear, clear-emoji): the
service decides what counts (bot/labelling/post_reactions.py). The bot ignores its own reactions,
takes a member's reaction off their own text and tells them why (by DM if they allow it, else at
their next click on a post), and has posts edited when a reaction finished their work."""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord.ext import commands

from bot.labelling.post_reactions import HANDLED, PostReactions, ReactionOutcome
from bot.labelling.posts import PostService

log = logging.getLogger(__name__)


def emoji_name(emoji: discord.PartialEmoji) -> str | None:
    return emoji.name if emoji.is_unicode_emoji() else None


class PostReactionsCog(commands.Cog, name="PostReactions"):
    def __init__(self, bot: Any, reactions: PostReactions) -> None:
        self.bot = bot
        self.reactions = reactions
        self.posts: PostService = reactions.posts

    def _ours(self, payload: discord.RawReactionActionEvent) -> str | None:
        emoji = emoji_name(payload.emoji)
        if payload.guild_id is None or emoji not in HANDLED or payload.user_id == self.bot.user.id:
            return None
        return emoji

    async def _post_recorded(self, channel_id: int) -> None:
        """A reaction on a post the bot is still recording waits for it; events that waited resume in
        their order. Otherwise nothing is awaited, so a member's events reach their lock in order."""
        posts_cog = self.bot.get_cog("Posts")
        recorded = posts_cog.posting(channel_id) if posts_cog is not None else None
        if recorded is not None:
            await recorded.wait()

    @commands.Cog.listener()
    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        emoji = self._ours(payload)
        if emoji is not None:
            await self._post_recorded(payload.channel_id)
            name = payload.member.display_name if payload.member else None
            # No other wait before the service: it takes the member's lock first, keeping their events in order.
            outcome = await self.reactions.react(payload.user_id, payload.message_id, emoji, added=True,
                                                 display_name=name)
            await self._after(payload, outcome)

    @commands.Cog.listener()
    async def on_raw_reaction_remove(self, payload: discord.RawReactionActionEvent) -> None:
        emoji = self._ours(payload)
        if emoji is not None:
            await self._post_recorded(payload.channel_id)
            await self._after(payload, await self.reactions.react(payload.user_id, payload.message_id, emoji,
                                                                  added=False))

    @commands.Cog.listener()
    async def on_raw_reaction_clear(self, payload: discord.RawReactionClearEvent) -> None:
        self._refresh(await self.reactions.clear(payload.message_id))

    @commands.Cog.listener()
    async def on_raw_reaction_clear_emoji(self, payload: discord.RawReactionClearEmojiEvent) -> None:
        emoji = emoji_name(payload.emoji)
        if emoji in HANDLED:
            self._refresh(await self.reactions.clear(payload.message_id, emoji))

    async def _after(self, payload: discord.RawReactionActionEvent, outcome: ReactionOutcome | None) -> None:
        if outcome is None:
            return
        if outcome.remove:
            message = self.bot.get_partial_messageable(payload.channel_id).get_partial_message(payload.message_id)
            for emoji in outcome.remove:
                try:
                    await message.remove_reaction(emoji, discord.Object(payload.user_id))
                except discord.HTTPException as exc:  # no Manage Messages here: it stays, and counts for nothing
                    log.warning("could not remove a reaction on post %s: %s", payload.message_id, exc)
        if outcome.notice:
            await self._tell(payload.user_id, payload.member, outcome.notice)
        self._refresh(outcome)

    async def _tell(self, user_id: int, member: discord.Member | None, text: str) -> None:
        try:
            user = member or self.bot.get_user(user_id) or await self.bot.fetch_user(user_id)
            await user.send(text)
        except discord.HTTPException:
            await self.posts.add_notice(user_id, text)

    def _refresh(self, outcome: ReactionOutcome | None) -> None:
        if outcome is None or outcome.tree_id is None:
            return
        if outcome.reviewed or outcome.ranked or outcome.removed_by_flags or outcome.effect == "cleared":
            posts_cog = self.bot.get_cog("Posts")
            if posts_cog is not None:
                posts_cog.refresh_trees([outcome.tree_id])


async def setup(bot: Any) -> None:
    await bot.add_cog(PostReactionsCog(bot, PostReactions(PostService(bot.services.labelling, bot.settings.posts))))
