"""Reactions on task posts, from raw gateway events only (add, remove, clear, clear-emoji): the
service decides what counts (bot/labelling/post_reactions.py). The bot ignores its own reactions,
takes a member's reaction off their own text and tells them why (by DM if they allow it, else at
their next click on a post), and has posts edited when a reaction finished their work. At each start
(READY) it fetches the reactions on its recent posts and replays what it missed while away."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import discord
from discord.ext import commands

from bot.labelling.post_reactions import HANDLED, PostReactions, ReactionOutcome
from bot.labelling.posts import PostService

log = logging.getLogger(__name__)
RECONCILE_PASSES = 20
RECONCILE_PAUSE = 1.0  # seconds between passes, for busy members to settle


def emoji_name(emoji: discord.PartialEmoji) -> str | None:
    return emoji.name if emoji.is_unicode_emoji() else None


class _LiveMembers:
    """The members with live events on a post since the pass began, as they are at each lookup."""

    def __init__(self, live: set[tuple[int, int]], message_id: int) -> None:
        self.live, self.message_id = live, message_id

    def __contains__(self, user_id: object) -> bool:
        return (self.message_id, user_id) in self.live


class PostReactionsCog(commands.Cog, name="PostReactions"):
    def __init__(self, bot: Any, reactions: PostReactions) -> None:
        self.bot = bot
        self.reactions = reactions
        self.posts: PostService = reactions.posts
        # While reconciling: (post, member) pairs that live events touched, whose stored state is newer.
        self._live: set[tuple[int, int]] | None = None
        self._reconciling: asyncio.Task[None] | None = None

    async def cog_unload(self) -> None:
        if self._reconciling is not None:
            self._reconciling.cancel()
            await asyncio.gather(self._reconciling, return_exceptions=True)

    def _ours(self, payload: discord.RawReactionActionEvent) -> str | None:
        emoji = emoji_name(payload.emoji)
        if payload.guild_id is None or emoji not in HANDLED or payload.user_id == self.bot.user.id:
            return None
        if self._live is not None:
            self._live.add((payload.message_id, payload.user_id))
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

    @commands.Cog.listener()
    async def on_ready(self) -> None:
        """A new session (a start, or a session Discord did not let us resume): events sent while we were
        away are lost, so the posts' reactions are read back from Discord."""
        if self._reconciling is None or self._reconciling.done():
            self._reconciling = asyncio.create_task(self.reconcile())

    async def reconcile(self) -> None:
        """Passes over the posts until no member's live events overlapped the read of a post: a member
        whose events arrived meanwhile is left out of that pass (what was read may be older than what was
        stored) and their post is read again in the next pass."""
        try:
            pending = await self.reactions.posts_to_reconcile()
            for attempt in range(RECONCILE_PASSES):
                if attempt:
                    await asyncio.sleep(RECONCILE_PAUSE)
                self._live = set()
                again = []
                for channel_id, message_id in pending:
                    try:
                        if await self._reconcile_post(channel_id, message_id):
                            again.append((channel_id, message_id))
                    except discord.NotFound:
                        continue  # the post was deleted in Discord
                    except discord.HTTPException as exc:
                        log.warning("could not read the reactions on post %s: %s", message_id, exc)
                        again.append((channel_id, message_id))
                pending = again
                if not pending:
                    return
            log.warning("%d posts still busy after %d passes; their reactions are read at the next start",
                        len(pending), RECONCILE_PASSES)
        except Exception:
            log.exception("reconciling the reactions on task posts failed")
        finally:
            self._live = None

    async def _reconcile_post(self, channel_id: int, message_id: int) -> bool:
        """True when a member was left out because their live events overlapped."""
        message = await self.bot.get_partial_messageable(channel_id).fetch_message(message_id)
        shown = []
        for reaction in message.reactions:
            emoji = reaction.emoji if isinstance(reaction.emoji, str) else None
            if emoji in HANDLED:
                shown += [(user.id, emoji) async for user in reaction.users() if user.id != self.bot.user.id]
        live = _LiveMembers(self._live or set(), message_id)  # read at each member: events keep coming
        for user_id, outcome in await self.reactions.reconcile(message_id, shown, skip_users=live):
            await self._apply(channel_id, message_id, user_id, None, outcome)
        return any(post == message_id for post, _ in self._live or ())

    async def _after(self, payload: discord.RawReactionActionEvent, outcome: ReactionOutcome | None) -> None:
        await self._apply(payload.channel_id, payload.message_id, payload.user_id, payload.member, outcome)

    async def _apply(self, channel_id: int, message_id: int, user_id: int, member: discord.Member | None,
                     outcome: ReactionOutcome | None) -> None:
        if outcome is None:
            return
        if outcome.remove:
            message = self.bot.get_partial_messageable(channel_id).get_partial_message(message_id)
            for emoji in outcome.remove:
                try:
                    await message.remove_reaction(emoji, discord.Object(user_id))
                except discord.HTTPException as exc:  # no Manage Messages here: it stays, and counts for nothing
                    log.warning("could not remove a reaction on post %s: %s", message_id, exc)
        if outcome.notice:
            await self._tell(user_id, member, outcome.notice)
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
