"""Task posts in channels: one scheduler job per task channel posts the next piece of work, the post's
buttons open part 1's flows for the clicking member, and posts are edited when their work is done.

custom_ids: buttons ``lp:write`` / ``lp:review`` / ``lp:rank`` (the post is found by the Discord message
they sit on, so they work after a restart), the write modal ``lp:m:<task>:<kind letter>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import discord
from discord.ext import commands

from bot.labelling.errors import LabellingError
from bot.labelling.member_tasks import MemberTasks, Outcome
from bot.labelling.post_channels import ChannelConfig, PostChannels
from bot.labelling.posts import PostContent, PostRef, PostService
from cogs import delivery
from cogs.command_errors import DATABASE_BUSY, answers_failures
from cogs.custom_ids import ROW_ID
from cogs.labelling import answering, render, render_posts
from cogs.labelling.task_cog import (
    STALE_FORM,
    TEXT_INPUT_MAX,
    echo_text,
    member_of,
    refusal_text,
    submit_text,
    task_message,
)
from cogs.labelling.task_views import WRITE_CODES, modal_text, outcome_view, text_modal

log = logging.getLogger(__name__)
COG = "Posts"
POST_MODAL_PREFIX = "lp:m:"
POST_MODAL_ID = re.compile(rf"{POST_MODAL_PREFIX}(?P<task>{ROW_ID}):(?P<code>[a-z]?)")
BUTTONS = {
    "prompt": [("write", "Write a prompt", "✍️")],
    "reply": [("write", "Reply", "✍️")],
    "review": [("review", "Full review", "📝")],
    "rank": [("rank", "Rank privately", "🔒")],
}


class PostButton(discord.ui.DynamicItem[discord.ui.Button], template=r"lp:(?P<action>write|review|rank)"):
    def __init__(self, action: str, label: str = "", emoji: str | None = None) -> None:
        super().__init__(discord.ui.Button(label=label, emoji=emoji, custom_id=f"lp:{action}",
                                           style=discord.ButtonStyle.primary))
        self.action = action

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button,
                             match: re.Match[str]) -> PostButton:
        return cls(match["action"], item.label or "")

    @answers_failures
    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.client.get_cog(COG).on_post_button(interaction, self.action)  # type: ignore[union-attr]


def post_view(content: PostContent) -> discord.ui.View | None:
    if render_posts.is_closed(content):
        return None
    view = discord.ui.View(timeout=None)
    for action, label, emoji in BUTTONS[content.kind]:
        view.add_item(PostButton(action, label, emoji))
    return view


def job_id(channel_id: int) -> str:
    return f"posts:{channel_id}"


def with_notices(notices: Iterable[str], text: str | None) -> str | None:
    lines = [f"📣 {notice}" for notice in notices]
    if text:
        lines.append(text)
    return "\n".join(lines) or None


class PostsCog(commands.Cog, name=COG):
    def __init__(self, bot: Any, posts: PostService, channels: PostChannels, members: MemberTasks) -> None:
        self.bot = bot
        self.posts = posts
        self.channels = channels
        self.members = members
        # Posts waiting for an edit, per channel, each channel edited by one worker at a time: Discord
        # allows about 5 edits per 5 s per channel, and discord.py waits out the limit by itself.
        self._pending: dict[int, dict[int, PostRef]] = {}
        self._workers: dict[int, asyncio.Task[None]] = {}
        self._lookups: set[asyncio.Task[None]] = set()
        # Channels where a post is being sent and recorded right now.
        self._posting: dict[int, asyncio.Event] = {}

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(PostButton)
        for config in await self.channels.list():
            # Another process runs the shard of that guild, and posts there.
            if self.bot.handles_guild(config.guild_id):
                self.schedule(config, new=False)

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(PostButton)
        for config in await self.channels.list():
            self.unschedule(config.channel_id)
        workers = [*self._workers.values(), *self._lookups]
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)

    # ----- schedule ---------------------------------------------------------------------------------

    def schedule(self, config: ChannelConfig, *, new: bool) -> datetime:
        """(Re)start the channel's job; returns when it first posts. A restart keeps the rhythm: the next
        post comes one interval after the last one."""
        now = datetime.now(UTC)
        if new or config.last_posted_at is None:
            first = now + timedelta(seconds=self.posts.settings.first_post_delay_seconds)
        else:
            first = max(config.last_posted_at + timedelta(minutes=config.interval_minutes), now + timedelta(seconds=5))
        # A post Discord refuses is retried until the channel's next run at most, which then posts instead.
        retry = min(self.retry_minutes, config.interval_minutes)
        self.bot.jobs.add_interval(job_id(config.channel_id),
                                   lambda: self.post_next(config.channel_id, retry_minutes=retry),
                                   config.interval_minutes, first_run=first)
        return first

    def unschedule(self, channel_id: int) -> None:
        self.bot.jobs.remove(job_id(channel_id))

    def next_run(self, channel_id: int) -> datetime | None:
        job = self.bot.jobs.scheduler.get_job(job_id(channel_id))
        return job.next_run_time if job is not None else None

    # ----- posting ----------------------------------------------------------------------------------

    @property
    def retry_minutes(self) -> float:
        return self.bot.settings.discord.delivery_retry_minutes

    async def post_next(self, channel_id: int, *, retry_minutes: float | None = None) -> PostRef | None:
        """The scheduler's entry point: bring the channel's open posts up to date, then post the next
        piece of work (None when there is none, or the channel is gone). A post Discord refuses is
        retried for ``retry_minutes``; one that never went out is not recorded, so a later run posts it."""
        await self.bot.wait_until_ready()
        self.request_refresh(await self.posts.posts_to_refresh(channel_id=channel_id))
        content = await self.posts.next_post(channel_id)
        if content is None:
            return None
        channel = self.bot.get_channel(channel_id)
        if not isinstance(channel, discord.abc.Messageable):
            log.warning("task channel %s is gone or not visible; nothing posted", channel_id)
            return None
        view = post_view(content)
        # The same nonce on every attempt: if Discord posted it but the answer was lost, a retry gets that post.
        key = delivery.nonce()
        until = delivery.deadline_in(self.retry_minutes if retry_minutes is None else retry_minutes)

        async def send() -> discord.Message:
            embeds, file = render_posts.post_embeds(content)  # a File is spent by each attempt
            extra: dict[str, Any] = {"file": file} if file else {}
            if view is not None:
                extra["view"] = view
            # Members may react before the post is recorded: their events wait for it (see posted()); only
            # while a send is under way, so reactions on the channel's other posts never wait out an outage.
            self._posting[channel_id] = asyncio.Event()
            try:
                return await channel.send(embeds=embeds, nonce=key, **extra)
            except BaseException:
                self._posted(channel_id)
                raise

        try:
            message = await delivery.deliver(send, until=until, what=f"post in channel {channel_id}")
        except (discord.HTTPException, delivery.Undelivered) as exc:
            log.warning("could not post in channel %s: %s", channel_id, exc)
            return None
        try:
            guild = getattr(channel, "guild", None)
            try:
                ref = await self.posts.record_post(channel_id, guild.id if guild else None, message.id, content)
            except Exception:
                # Not recorded (the database away): a post whose reactions and buttons count for nothing
                # must not stay. The channel's next run posts again.
                with contextlib.suppress(discord.HTTPException):
                    await message.delete()
                raise
        finally:
            self._posted(channel_id)
        for emoji in render_posts.seeds(content):
            try:
                await delivery.deliver(lambda emoji=emoji: message.add_reaction(emoji), until=until,
                                       what=f"seed {emoji} on post {message.id}")
            except (discord.HTTPException, delivery.Undelivered) as exc:
                log.warning("could not seed %s on post %s: %s", emoji, message.id, exc)
        if content.kind == "prompt":
            self.request_refresh(await self.posts.posts_to_refresh(channel_id=channel_id))
        return ref

    def _posted(self, channel_id: int) -> None:
        recorded = self._posting.pop(channel_id, None)
        if recorded is not None:
            recorded.set()

    def posting(self, channel_id: int) -> asyncio.Event | None:
        """Set once the post being sent in this channel is recorded; None when nothing is being posted."""
        return self._posting.get(channel_id)

    # ----- editing posts ----------------------------------------------------------------------------

    def request_refresh(self, refs: Iterable[PostRef]) -> None:
        for ref in refs:
            self._pending.setdefault(ref.channel_id, {})[ref.post_id] = ref
            worker = self._workers.get(ref.channel_id)
            if worker is None or worker.done():
                self._workers[ref.channel_id] = asyncio.create_task(self._refresh_channel(ref.channel_id))

    def refresh_trees(self, tree_ids: Iterable[int]) -> None:
        """Edit, in the background, the posts of these trees whose work is done now."""
        async def find_and_refresh() -> None:
            self.request_refresh(await self.posts.posts_to_refresh(tree_ids=list(tree_ids)))

        task = asyncio.create_task(find_and_refresh())
        self._lookups.add(task)
        task.add_done_callback(self._lookups.discard)

    async def _refresh_channel(self, channel_id: int) -> None:
        pending = self._pending.setdefault(channel_id, {})
        while pending:
            post_id = next(iter(pending))
            ref = pending.pop(post_id)
            try:
                content = await self.posts.refresh(post_id)
                if content is not None:
                    await self._edit(ref, content)
            except Exception:
                log.exception("could not bring post %s up to date", post_id)

    async def _edit(self, ref: PostRef, content: PostContent) -> None:
        embeds, _file = render_posts.post_embeds(content)
        message = self.bot.get_partial_messageable(ref.channel_id).get_partial_message(ref.discord_message_id)
        try:
            await delivery.deliver(lambda: message.edit(embeds=embeds, view=post_view(content)),
                                   until=delivery.deadline_in(self.retry_minutes),
                                   what=f"bring post {ref.discord_message_id} up to date")
        except discord.NotFound:
            log.info("post %s was deleted in Discord; nothing to edit", ref.discord_message_id)
        except delivery.Undelivered:
            pass  # logged; the post shows its older state until its next change

    async def wait_for_edits(self) -> None:
        """Until every requested edit is done (tests and shutdown)."""
        while self._lookups or any(not w.done() for w in self._workers.values()):
            await asyncio.gather(*self._lookups, *self._workers.values(), return_exceptions=True)

    # ----- buttons and the write modal ---------------------------------------------------------------

    async def on_post_button(self, interaction: discord.Interaction, action: str) -> None:
        member = member_of(interaction)
        message_id = interaction.message.id if interaction.message else 0
        if action == "write":
            # A modal must be the first answer: the task is asked for first (one short transaction).
            try:
                work = await answering.before_modal(self.posts.open_on_post(member, message_id, action,
                                                                            take_notices=False))
            except LabellingError as refused:
                await answering.note(interaction, refusal_text(refused))
                return
            if work is None:
                log.warning("Write on post %s for user %s: the database did not answer in time to open the box",
                            message_id, interaction.user.id)
                await answering.note(interaction, DATABASE_BUSY)
                return
            code = WRITE_CODES[work.offer.kind]
            modal = text_modal(work.offer.task_id, code, self.text_limit)
            modal.custom_id = f"lp:m:{work.offer.task_id}:{code}"
            modal.title = render.KINDS[work.offer.kind].title
            await interaction.response.send_modal(modal)
            return
        try:
            work = await answering.run(interaction, self.posts.open_on_post(member, message_id, action), thinking=True)
        except LabellingError as refused:
            await answering.show(interaction, content=refusal_text(refused))
            return
        message = task_message(work.offer)
        message["content"] = with_notices(work.notices, message.get("content"))
        await answering.show(interaction, **message)

    @property
    def text_limit(self) -> int:
        return min(self.members.ctx.settings.max_text_length, TEXT_INPUT_MAX)

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """A prompt or reply written from a post: the answer is a new message only the member sees (the
        post itself stays as it is for everyone)."""
        custom_id = str((interaction.data or {}).get("custom_id", ""))
        if interaction.type is not discord.InteractionType.modal_submit or not custom_id.startswith(POST_MODAL_PREFIX):
            return
        text = modal_text(dict(interaction.data or {})) or ""
        match = POST_MODAL_ID.fullmatch(custom_id)
        if match is None:
            await echo_text(interaction, STALE_FORM, text)
            return
        task_id, code = int(match["task"]), match["code"]
        outcome = await submit_text(interaction, self.members, task_id, code, text)
        if outcome is None:
            return
        notices = await self.posts.take_notices(interaction.user.id)
        self.bot.dispatch("task_outcome", outcome)
        await answering.note(interaction, with_notices(notices, None), embed=render.outcome_embed(outcome),
                             view=outcome_view(outcome))

    @commands.Cog.listener()
    async def on_task_outcome(self, outcome: Outcome) -> None:
        """Work recorded anywhere (a post, /task, Next task) may complete posts of the same tree."""
        self.request_refresh(await self.posts.posts_to_refresh(task_id=outcome.task_id))


async def setup(bot: Any) -> None:
    posts = PostService(bot.services.labelling, bot.settings.posts)
    channels = PostChannels(bot.services.sessions, bot.services.labelling.ctx, bot.settings.posts)
    await bot.add_cog(PostsCog(bot, posts, channels, MemberTasks(bot.services.labelling)))
