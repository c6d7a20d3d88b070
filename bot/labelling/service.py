"""The labelling engine's front door for the Discord cogs: one method, one transaction.

Every method opens its own session, commits on success and rolls back on a refusal, so a cog only
translates Discord input into plain ids and renders the result or the error's ``message``.
The functions it wraps take an AsyncSession and can be composed inside a caller's transaction.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import LabellingSettings
from bot.labelling import jobs, leaderboard, moderation, submissions, tasks, votes
from bot.labelling.context import Context, _utcnow
from bot.labelling.errors import TaskRefused, UnknownUser, VoteRefused
from storage.enums import TaskKind, TaskState
from storage.models import BotPost, Message, PostMessage, Task, User
from storage.users import get_or_create_user as _get_or_create_user


@dataclass(frozen=True)
class UserInfo:
    id: int
    discord_id: int
    display_name: str
    locale: str
    banned: bool
    synthetic: bool


def _info(user: User) -> UserInfo:
    return UserInfo(user.id, user.discord_id, user.display_name, user.locale, user.banned, user.synthetic)


async def get_or_create_user(session: AsyncSession, discord_id: int, *, display_name: str | None = None,
                             locale: str | None = None, synthetic: bool = False) -> User:
    """Our user for a Discord id, created on first contact (race-safe)."""
    user = await _get_or_create_user(session, discord_id, display_name=display_name, locale=locale)
    if synthetic and not user.synthetic:
        user.synthetic = True
    return user


class LabellingService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: LabellingSettings | None = None, *,
                 rng: random.Random | None = None, clock: Callable[[], datetime] | None = None) -> None:
        self.sessions = sessions
        self.ctx = Context(settings or LabellingSettings(), rng or random.Random(), clock or _utcnow)

    @property
    def settings(self) -> LabellingSettings:
        return self.ctx.settings

    # Users
    async def get_or_create_user(self, discord_id: int, *, display_name: str | None = None,
                                 locale: str | None = None, synthetic: bool = False) -> UserInfo:
        async with self.sessions.begin() as session:
            user = await get_or_create_user(session, discord_id, display_name=display_name, locale=locale,
                                            synthetic=synthetic)
            await session.flush()
            return _info(user)

    async def user(self, user_id: int) -> UserInfo:
        async with self.sessions() as session:
            user = await session.get(User, user_id)
            if user is None:
                raise UnknownUser("user_not_found")
            return _info(user)

    # Tasks
    async def request_task(self, user_id: int, lang: str | None = None,
                           kinds: Collection[TaskKind] | TaskKind | None = None) -> tasks.TaskOffer:
        """``kinds``: one kind the user asked for, several, or None for the engine's pick."""
        if isinstance(kinds, str):
            kinds = [TaskKind(kinds)]
        async with self.sessions.begin() as session:
            return await tasks.request_task(session, self.ctx, user_id, lang or self.settings.default_language,
                                            kinds)

    async def work_overview(self, user_id: int, lang: str | None = None) -> tasks.WorkOverview:
        async with self.sessions() as session:
            return await tasks.work_overview(session, self.ctx, user_id, lang or self.settings.default_language)

    async def open_task(self, task_id: int, user_id: int) -> tasks.TaskOffer:
        """Show an open task again (e.g. after a restart, from a persistent button)."""
        async with self.sessions() as session:
            task = await session.get(Task, task_id)
            if task is None:
                raise TaskRefused("task_not_found")
            if task.user_id != user_id:
                raise TaskRefused("not_your_task")
            return await tasks.describe_task(session, task)

    async def open_tasks(self, user_id: int) -> list[tasks.TaskOffer]:
        """The user's tasks still waiting for an answer, oldest first."""
        async with self.sessions() as session:
            rows = (await session.scalars(
                select(Task).where(Task.user_id == user_id, Task.state == TaskState.OFFERED,
                                   Task.expires_at > self.ctx.now()).order_by(Task.id)
            )).all()
            return [await tasks.describe_task(session, task) for task in rows]

    async def submit_initial_prompt(self, task_id: int, user_id: int, text: str) -> submissions.SubmissionResult:
        async with self.sessions.begin() as session:
            return await submissions.submit_initial_prompt(session, self.ctx, task_id, user_id, text)

    async def submit_reply(self, task_id: int, user_id: int, text: str, *,
                           model_name: str | None = None) -> submissions.SubmissionResult:
        """``model_name`` marks a reply a model wrote (synthetic), as Open-Assistant did."""
        async with self.sessions.begin() as session:
            return await submissions.submit_reply(session, self.ctx, task_id, user_id, text, model_name=model_name)

    async def submit_labels(self, task_id: int, user_id: int,
                            labels: Mapping[str, float]) -> submissions.SubmissionResult:
        async with self.sessions.begin() as session:
            return await submissions.submit_labels(session, self.ctx, task_id, user_id, labels)

    async def submit_ranking(self, task_id: int, user_id: int, ordered_ids: Sequence[int] | None,
                             *, not_rankable: bool = False) -> submissions.SubmissionResult:
        async with self.sessions.begin() as session:
            return await submissions.submit_ranking(session, self.ctx, task_id, user_id, ordered_ids,
                                                    not_rankable=not_rankable)

    async def skip_task(self, task_id: int, user_id: int, reason: str | None = None) -> submissions.SubmissionResult:
        async with self.sessions.begin() as session:
            return await submissions.skip_task(session, self.ctx, task_id, user_id, reason)

    # Votes
    async def vote(self, user_id: int, message_id: int, emoji: str, *, added: bool = True) -> votes.VoteResult:
        async with self.sessions.begin() as session:
            return await votes.vote(session, self.ctx, user_id, message_id, emoji, added=added)

    async def record_discord_location(self, message_id: int, channel_id: int, discord_message_id: int) -> None:
        """Remember a Discord message of the bot that shows one campaign message, so reactions on it
        become votes on that message (channel posts record richer posts, see bot/labelling/posts.py)."""
        async with self.sessions.begin() as session:
            message = await session.get(Message, message_id)
            if message is None:
                raise VoteRefused("message_not_found")
            post = BotPost(discord_message_id=discord_message_id, channel_id=channel_id, kind="message",
                           target_message_id=message.id, tree_id=message.tree_id, lang=message.lang,
                           created_at=self.ctx.now())
            session.add(post)
            await session.flush()
            session.add(PostMessage(post_id=post.id, message_id=message.id, role="subject"))

    async def set_opted_out(self, user_id: int, opted_out: bool) -> None:
        """Hide (or show again) the user on leaderboards and in public exports."""
        async with self.sessions.begin() as session:
            user = await session.get(User, user_id)
            if user is None:
                raise UnknownUser("user_not_found")
            user.opted_out = opted_out

    async def message_id_for_discord(self, discord_message_id: int) -> int | None:
        """The campaign message a Discord message of the bot is about (the subject its votes count for)."""
        async with self.sessions() as session:
            return await session.scalar(
                select(PostMessage.message_id).join(BotPost, BotPost.id == PostMessage.post_id)
                .where(BotPost.discord_message_id == discord_message_id, PostMessage.role == "subject")
            )

    # Points
    async def leaderboard(self, period: str = "week", limit: int = 10, *,
                          include_synthetic: bool = False) -> list[leaderboard.LeaderboardEntry]:
        async with self.sessions() as session:
            return await leaderboard.leaderboard(session, self.ctx, period, limit,
                                                 include_synthetic=include_synthetic)

    async def user_stats(self, user_id: int) -> leaderboard.UserStats:
        async with self.sessions() as session:
            return await leaderboard.user_stats(session, self.ctx, user_id)

    async def score_history(self, user_id: int, limit: int = 20) -> list[leaderboard.ScoreLine]:
        async with self.sessions() as session:
            return await leaderboard.score_history(session, user_id, limit)

    # Moderation (the cog checks moderator rights before calling)
    async def ban_user(self, moderator_id: int | None, user_id: int, reason: str | None = None) -> int:
        async with self.sessions.begin() as session:
            return await moderation.ban_user(session, self.ctx, moderator_id, user_id, reason)

    async def unban_user(self, moderator_id: int | None, user_id: int, reason: str | None = None) -> None:
        async with self.sessions.begin() as session:
            await moderation.unban_user(session, self.ctx, moderator_id, user_id, reason)

    async def delete_message(self, moderator_id: int | None, message_id: int,
                             reason: str | None = None) -> list[int]:
        async with self.sessions.begin() as session:
            return await moderation.delete_message(session, self.ctx, moderator_id, message_id, reason)

    async def edit_message(self, moderator_id: int | None, message_id: int, text: str,
                           reason: str | None = None) -> None:
        async with self.sessions.begin() as session:
            await moderation.edit_message(session, self.ctx, moderator_id, message_id, text, reason)

    async def halt_tree(self, moderator_id: int | None, tree_id: int, reason: str | None = None) -> str:
        async with self.sessions.begin() as session:
            return await moderation.halt_tree(session, self.ctx, moderator_id, tree_id, reason)

    async def resume_tree(self, moderator_id: int | None, tree_id: int, reason: str | None = None) -> str:
        async with self.sessions.begin() as session:
            return await moderation.resume_tree(session, self.ctx, moderator_id, tree_id, reason)

    async def flagged_messages(self, limit: int = 20) -> list[moderation.FlaggedMessage]:
        async with self.sessions() as session:
            return await moderation.flagged_messages(session, limit)

    async def resolve_flag(self, moderator_id: int | None, message_id: int, resolution: str = "kept") -> None:
        async with self.sessions.begin() as session:
            await moderation.resolve_flag(session, self.ctx, moderator_id, message_id, resolution)

    async def trollboard(self, limit: int = 10) -> list[moderation.TrollScore]:
        async with self.sessions() as session:
            return await moderation.trollboard(session, limit)

    # Scheduler jobs
    async def expire_tasks(self) -> int:
        return await jobs.expire_tasks(self.sessions, self.ctx)

    async def maintain_trees(self) -> jobs.MaintenanceReport:
        return await jobs.maintain_trees(self.sessions, self.ctx)
