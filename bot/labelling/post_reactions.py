"""Reactions on task posts, from raw gateway events: votes, quick reviews and rankings by numbers.

What Discord shows is stored as it is (``post_reactions``: one row per post, member and emoji), so a
duplicated event counts once and a removal undoes its add. The engine's votes are then derived from
that state, never counted per event: a member's vote on a message is what they hold on every post
whose subject it is, and 👍 with 👎 together cancel each other (Open-Assistant's +1/-1 rule). Any order
of events that ends in the same reactions leaves the same votes.

- 👍 / 👎 / 🚩 on any post with a subject: votes (+1, -1, red_flag) through the engine's vote service;
  red flags may auto-moderate (removed_by_flags). Never on one's own text.
- 👍 / 👎 on a review post, with ``[posts] reaction_reviews`` (our extension): also a quick review of
  the subject, recorded once, as a submitted /task review is: 👍 = not spam and in the right language,
  👎 = spam. Removing the reaction takes the vote back, not the review.
- 1️⃣ 2️⃣ 3️⃣... on a ranking post: best first. The ranking is submitted when the member has reacted to
  every number; removing one of theirs before that starts over. The partial order is stored, so a
  restart loses nothing.

Events of one member are handled one after the other, in the order they arrived (a lock per member,
taken before any other wait), because a ranking is the order of their reactions.

Reactions added or removed while the bot was away (down, or between sessions) send it no event: at each
start it compares what Discord shows on its recent posts with ``post_reactions`` and replays the
difference through the same rules (``reconcile``). The order of missed keycaps is not known; they are
taken in number order.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Container
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.labelling import submissions, tasks, votes
from bot.labelling.errors import LabellingError, VoteRefused
from bot.labelling.posts import FINAL, PostService
from bot.labelling.service import get_or_create_user
from bot.labelling.trees import LABEL_KINDS, RANK_KINDS
from storage.db import describe_error, is_unavailable
from storage.models import (
    BotPost,
    Message,
    MessageTree,
    PostMessage,
    PostRankOrder,
    PostReaction,
    Ranking,
    Reaction,
    Task,
    User,
)
from storage.users import insert_ignoring_conflicts

VOTE_EMOJI = {"👍": votes.UPVOTE, "👎": votes.DOWNVOTE, "🚩": votes.RED_FLAG}
KEYCAPS = ("1️⃣", "2️⃣", "3️⃣", "4️⃣", "5️⃣", "6️⃣", "7️⃣", "8️⃣", "9️⃣", "🔟")
HANDLED = frozenset(VOTE_EMOJI) | frozenset(KEYCAPS)
# Pauses between tries of a reaction the database could not take: doubling from the first to the last.
RETRY_FIRST_PAUSE, RETRY_MAX_PAUSE = 0.5, 10.0
# At most this many of the newest posts are compared with Discord at a start.
RECONCILE_LIMIT = 500
log = logging.getLogger(__name__)
T = TypeVar("T")
QUICK_REVIEW = {"👍": {"spam": 0.0, "lang_mismatch": 0.0}, "👎": {"spam": 1.0, "lang_mismatch": 0.0}}

OWN_TEXT_NOTICE = ("I removed your {emoji} reaction on a task post: it shows your own text, and nobody votes on, "
                   "reviews or ranks their own work. Thank you for writing it!")


@dataclass(frozen=True)
class ReactionOutcome:
    """What a reaction event did. ``remove`` lists the member's reactions the bot should take off the
    post (on their own text; the rest of an abandoned ranking), ``notice`` what to tell them."""

    post_id: int
    tree_id: int | None
    effect: str  # counted, ignored, own_text, restart, ranked, cleared
    remove: tuple[str, ...] = ()
    notice: str | None = None
    removed_by_flags: bool = False
    reviewed: bool = False
    ranked: bool = False


class _MemberLocks:
    """One asyncio lock per member, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[int, asyncio.Lock] = {}
        self._users: dict[int, int] = defaultdict(int)

    @asynccontextmanager
    async def hold(self, key: int) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] += 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key], self._locks[key]


class PostReactions:
    def __init__(self, posts: PostService) -> None:
        self.posts = posts
        self.ctx = posts.ctx
        self.sessions = posts.sessions
        self._locks = _MemberLocks()

    async def react(self, discord_user_id: int, discord_message_id: int, emoji: str, *, added: bool,
                    display_name: str | None = None) -> ReactionOutcome | None:
        """One MESSAGE_REACTION_ADD/REMOVE event; None when the message is not a post or the emoji
        means nothing there."""
        if emoji not in HANDLED:
            return None
        async with self._locks.hold(discord_user_id):
            return await self._until_done(
                lambda: self._react(discord_user_id, discord_message_id, emoji, added, display_name),
                f"reaction {emoji} {'added' if added else 'removed'} on post {discord_message_id}")

    @staticmethod
    async def _until_done(work: Callable[[], Awaitable[T]], what: str) -> T:
        """A reaction event is not sent again, so a write the database could not take now is tried again
        until it is stored (the member's later events wait): a lock that outlasted the busy timeout, a
        server away, or one of two deadlocked transactions that PostgreSQL ended (seen with two shards: a
        quick review waiting for its tree's row lock while holding rows another transaction on that tree
        waits for). Each failed try was rolled back whole. A bot stopped meanwhile reads the post's
        reactions back from Discord at its next start; the reads of that reconciliation wait the same way."""
        pause = RETRY_FIRST_PAUSE
        while True:
            try:
                return await work()
            except Exception as error:
                if not is_unavailable(error):
                    raise
                level = logging.WARNING if pause == RETRY_FIRST_PAUSE else logging.DEBUG
                log.log(level, "%s waits for the database (%s); trying again", what, describe_error(error))
            await asyncio.sleep(pause)
            pause = min(pause * 2, RETRY_MAX_PAUSE)

    async def _react(self, discord_user_id: int, discord_message_id: int, emoji: str, added: bool,
                     display_name: str | None) -> ReactionOutcome | None:
        async with self.sessions.begin() as session:
            post = await session.scalar(select(BotPost).where(BotPost.discord_message_id == discord_message_id))
            if post is None:
                return None
            # The member's row before the tree's, as /task and submissions take them: on first contact the
            # insert waits for the member's own /task creating the same row, and that transaction may need
            # the tree (its new task's foreign key) while we would hold its row lock (PostgreSQL deadlock).
            if added:
                user = await get_or_create_user(session, discord_user_id, display_name=display_name)
            else:
                user = await session.scalar(select(User).where(User.discord_id == discord_user_id))
                if user is None:
                    return ReactionOutcome(post.id, post.tree_id, "ignored")
            if post.tree_id is not None:
                # The tree's row lock next, as every engine write on a tree takes it: votes and quick reviews
                # that lock it only after their own rows deadlock each other on PostgreSQL.
                await session.get(MessageTree, post.tree_id, with_for_update=True)
            if emoji in VOTE_EMOJI:
                return await self._vote(session, post, user, emoji, added)
            if post.kind == "rank":
                return await self._rank(session, post, user, emoji, added)
            return None

    async def clear(self, discord_message_id: int, emoji: str | None = None) -> ReactionOutcome | None:
        """MESSAGE_REACTION_REMOVE_ALL (``emoji`` None) or _REMOVE_EMOJI: everyone's reactions go."""
        if emoji is not None and emoji not in HANDLED:
            return None
        return await self._until_done(lambda: self._clear(discord_message_id, emoji),
                                        f"clearing {emoji or 'the reactions'} on post {discord_message_id}")

    async def _clear(self, discord_message_id: int, emoji: str | None) -> ReactionOutcome | None:
        async with self.sessions.begin() as session:
            post = await session.scalar(select(BotPost).where(BotPost.discord_message_id == discord_message_id))
            if post is None:
                return None
            removed = PostReaction.post_id == post.id
            if emoji is not None:
                removed = removed & (PostReaction.emoji == emoji)
            users = set((await session.scalars(select(PostReaction.user_id).where(removed))).all())
            await session.execute(delete(PostReaction).where(removed))
            if emoji is None or emoji in KEYCAPS:
                await session.execute(delete(PostRankOrder).where(PostRankOrder.post_id == post.id))
            flagged = False
            subject = await self._subject(session, post)
            if subject is not None and (emoji is None or emoji in VOTE_EMOJI):
                for user_id in sorted(users):
                    flagged |= await self._settle_votes(session, user_id, subject)
            return ReactionOutcome(post.id, post.tree_id, "cleared", removed_by_flags=flagged)

    # ----- reactions missed while away ---------------------------------------------------------------

    async def posts_to_reconcile(self) -> list[tuple[int, int]]:
        """(channel id, Discord message id) of the posts whose reactions still count: those younger than
        the post expiry, newest first."""
        since = self.ctx.now() - timedelta(hours=self.posts.settings.expiry_hours)

        async def read() -> list[tuple[int, int]]:
            async with self.sessions() as session:
                rows = await session.execute(
                    select(BotPost.channel_id, BotPost.discord_message_id).where(BotPost.created_at >= since)
                    .order_by(BotPost.id.desc()).limit(RECONCILE_LIMIT))
                return [(channel_id, message_id) for channel_id, message_id in rows.all()]

        return await self._until_done(read, "reconciliation (the list of posts)")

    async def reconcile(self, discord_message_id: int, shown: Collection[tuple[int, str]],
                        skip_users: Container[int] = ()) -> list[tuple[int, ReactionOutcome]]:
        """Bring the stored reactions of a post in line with what Discord shows, ``shown`` being
        (Discord user id, emoji) pairs of the handled emoji (the bot's own left out). Members in
        ``skip_users`` are left alone: their live events since ``shown`` was read are newer. Returns
        each replayed event's member and outcome."""
        async def read() -> set[tuple[int, str]]:
            async with self.sessions() as session:
                return {(discord_id, emoji) for discord_id, emoji in (await session.execute(
                    select(User.discord_id, PostReaction.emoji).join(User, User.id == PostReaction.user_id)
                    .join(BotPost, BotPost.id == PostReaction.post_id)
                    .where(BotPost.discord_message_id == discord_message_id))).all()}

        held = await self._until_done(read, f"reconciliation of post {discord_message_id}")
        shown = {(user, emoji) for user, emoji in shown if emoji in HANDLED}
        order = {emoji: i for i, emoji in enumerate([*VOTE_EMOJI, *KEYCAPS])}
        replay = [(user, emoji, False) for user, emoji in sorted(held - shown, key=lambda p: (p[0], order[p[1]]))]
        replay += [(user, emoji, True) for user, emoji in sorted(shown - held, key=lambda p: (p[0], order[p[1]]))]
        outcomes = []
        for user, emoji, added in replay:
            if user in skip_users:
                continue
            outcome = await self.react(user, discord_message_id, emoji, added=added)
            if outcome is not None:
                outcomes.append((user, outcome))
        return outcomes

    # ----- votes and quick reviews --------------------------------------------------------------------

    @staticmethod
    async def _subject(session: AsyncSession, post: BotPost) -> Message | None:
        message_id = await session.scalar(select(PostMessage.message_id).where(
            PostMessage.post_id == post.id, PostMessage.role == "subject"))
        return await session.get(Message, message_id) if message_id is not None else None

    async def _vote(self, session: AsyncSession, post: BotPost, user: User, emoji: str,
                    added: bool) -> ReactionOutcome:
        subject = await self._subject(session, post)
        if subject is None:
            return ReactionOutcome(post.id, post.tree_id, "ignored")
        if added and subject.author_id == user.id:
            return ReactionOutcome(post.id, post.tree_id, "own_text", remove=(emoji,),
                                   notice=OWN_TEXT_NOTICE.format(emoji=emoji))
        held = await self._hold(session, post, user, emoji, added)
        flagged = await self._settle_votes(session, user.id, subject.id) if held else False
        reviewed = False
        if (added and held and post.kind == "review" and emoji in QUICK_REVIEW and post.outcome not in FINAL
                and self.posts.settings.reaction_reviews and not user.banned):
            reviewed = await self._quick_review(session, post, user, emoji)
        return ReactionOutcome(post.id, post.tree_id, "counted" if held else "ignored", removed_by_flags=flagged,
                               reviewed=reviewed)

    async def _hold(self, session: AsyncSession, post: BotPost, user: User, emoji: str, added: bool) -> bool:
        """Record that the member holds (or no longer holds) this reaction; False when nothing changed."""
        if added:
            result = await session.execute(insert_ignoring_conflicts(
                session, PostReaction, post_id=post.id, user_id=user.id, emoji=emoji, created_at=self.ctx.now()))
        else:
            result = await session.execute(delete(PostReaction).where(
                PostReaction.post_id == post.id, PostReaction.user_id == user.id, PostReaction.emoji == emoji))
        return (result.rowcount or 0) > 0

    async def _settle_votes(self, session: AsyncSession, user_id: int, message_id: int) -> bool:
        """Make the engine's votes of this member on this message match the reactions they hold on the
        posts about it; True when red flags removed the message."""
        held = set((await session.scalars(
            select(PostReaction.emoji).join(PostMessage, PostMessage.post_id == PostReaction.post_id)
            .where(PostMessage.message_id == message_id, PostMessage.role == "subject",
                   PostReaction.user_id == user_id, PostReaction.emoji.in_(list(VOTE_EMOJI)))
        )).all())
        wanted = {VOTE_EMOJI[e] for e in held}
        if {votes.UPVOTE, votes.DOWNVOTE} <= wanted:
            wanted -= {votes.UPVOTE, votes.DOWNVOTE}
        current = set((await session.scalars(select(Reaction.emoji).where(
            Reaction.message_id == message_id, Reaction.user_id == user_id,
            Reaction.emoji.in_(list(VOTE_EMOJI.values()))))).all())
        removed = False
        try:
            for code in sorted(current - wanted):
                await votes.vote(session, self.ctx, user_id, message_id, code, added=False)
            for code in sorted(wanted - current):
                removed |= (await votes.vote(session, self.ctx, user_id, message_id, code)).removed_by_flags
        except VoteRefused:
            return False  # a banned member's reactions stay on Discord but count for nothing
        return removed

    async def _quick_review(self, session: AsyncSession, post: BotPost, user: User, emoji: str) -> bool:
        """Our extension: 👍 / 👎 on a review post is a quick review, once per member, by the engine's rules
        (nothing is recorded when they may not review it, e.g. it is closed or they reviewed it)."""
        target = post.target_message_id
        try:
            async with session.begin_nested():
                offer = await tasks.request_task(session, self.ctx, user.id, post.lang, LABEL_KINDS,
                                                 scope=lambda column: column == target)
                await self._simple(session, offer.task_id)
                await submissions.submit_labels(session, self.ctx, offer.task_id, user.id, QUICK_REVIEW[emoji])
        except LabellingError:
            return False
        return True

    @staticmethod
    async def _simple(session: AsyncSession, task_id: int) -> None:
        task = await session.get(Task, task_id)
        task.payload = {**task.payload, "mode": "simple", "labels": ["spam", "lang_mismatch"], "asked": "reaction"}
        await session.flush()

    # ----- rankings by numbers ----------------------------------------------------------------------

    async def _rank(self, session: AsyncSession, post: BotPost, user: User, emoji: str,
                    added: bool) -> ReactionOutcome | None:
        rows = (await session.execute(
            select(PostMessage.position, PostMessage.message_id, Message.author_id)
            .join(Message, Message.id == PostMessage.message_id)
            .where(PostMessage.post_id == post.id, PostMessage.role == "candidate")
            .order_by(PostMessage.position))).all()
        position = KEYCAPS.index(emoji)
        if position >= len(rows):
            return None
        if added and any(author == user.id for _, _, author in rows):
            return ReactionOutcome(post.id, post.tree_id, "own_text", remove=(emoji,),
                                   notice=OWN_TEXT_NOTICE.format(emoji=emoji))
        held = await self._hold(session, post, user, emoji, added)
        order = await session.get(PostRankOrder, (post.id, user.id))
        if not added:
            if order is None or position not in order.positions:
                return ReactionOutcome(post.id, post.tree_id, "ignored")
            others = tuple(KEYCAPS[p] for p in order.positions if p != position)
            await session.delete(order)
            return ReactionOutcome(post.id, post.tree_id, "restart", remove=others)
        ranked = await session.scalar(select(Ranking.id).where(Ranking.parent_id == post.target_message_id,
                                                                Ranking.user_id == user.id))
        if not held or ranked is not None or post.outcome in FINAL or post.outcome == "ranked":
            return ReactionOutcome(post.id, post.tree_id, "ignored")
        if order is None:
            order = PostRankOrder(post_id=post.id, user_id=user.id, positions=[], updated_at=self.ctx.now())
            session.add(order)
        if position in order.positions:
            return ReactionOutcome(post.id, post.tree_id, "ignored")
        order.positions = [*order.positions, position]
        order.updated_at = self.ctx.now()
        if len(order.positions) < len(rows):
            return ReactionOutcome(post.id, post.tree_id, "counted")
        ordered_ids = [rows[p].message_id for p in order.positions]
        await session.delete(order)
        target = post.target_message_id
        try:
            async with session.begin_nested():
                offer = await tasks.request_task(session, self.ctx, user.id, post.lang, RANK_KINDS,
                                                 scope=lambda column: column == target)
                await submissions.submit_ranking(session, self.ctx, offer.task_id, user.id, ordered_ids)
        except LabellingError as refused:
            return ReactionOutcome(post.id, post.tree_id, "ignored",
                                   notice=f"Your ranking by reactions was not recorded: {refused.message}")
        return ReactionOutcome(post.id, post.tree_id, "ranked", ranked=True)
