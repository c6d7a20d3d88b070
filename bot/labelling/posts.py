"""Task posts in channels: what to post next, what a post shows, when its work is done, and a member's
task from a post's button. Discord ids at the edge; one transaction per call.

A post shows tree messages (the many-to-many ``post_messages`` mapping): its *subject* (the message to
review, or to reply to, or whose replies are ranked: votes on the post count for it), the *candidates*
of a ranking by number, and the conversation above as *context*. Work on a post goes through the
engine's own task selection narrowed to the post's target, so every rule of Open-Assistant applies
(nobody reviews or ranks their own text, once per member, the reply lock, rate limits).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import PostSettings
from bot.labelling import tasks
from bot.labelling.context import Context
from bot.labelling.errors import LabellingError, NoTaskAvailable
from bot.labelling.labels import label_names
from bot.labelling.member_tasks import Member
from bot.labelling.service import LabellingService, get_or_create_user
from bot.labelling.trees import (
    CLOSED_STATES,
    LABEL_KINDS,
    LIVE,
    RANK_KINDS,
    RANKING_STATES,
    REPLY_KINDS,
    ranking_counts,
    settled,
)
from storage.enums import Role, TaskKind, TaskState, TreeState
from storage.models import (
    BotPost,
    Label,
    MemberNotice,
    Message,
    MessageTree,
    PostMessage,
    Ranking,
    Task,
    TaskChannel,
)

# The engine's weight groups behind each kind of post.
POST_GROUPS: dict[str, tuple[str, ...]] = {
    "prompt": ("initial_prompt",), "reply": ("reply",), "review": ("label_prompt", "label_reply"), "rank": ("rank",),
}
POST_TASK_KINDS: dict[str, tuple[TaskKind, ...]] = {
    "prompt": (TaskKind.INITIAL_PROMPT,), "reply": REPLY_KINDS, "review": LABEL_KINDS, "rank": RANK_KINDS,
}
# Work picked for a post belongs to nobody yet: no member has this user id.
NOBODY = 0
# Outcomes after which a post never changes again ("ranked" still waits for the consensus).
FINAL = {"accepted", "rejected", "full", "consensus", "removed", "stopped", "superseded", "expired"}


class PostRefused(LabellingError):
    default_messages = {
        "not_a_post": "This is not one of my task posts (or it is from an older version); nothing was recorded.",
        "post_closed": "This post is closed: its work is done. Watch the channel for the next one.",
        "removed": "That text was removed by moderation.",
        "own_text": "This post shows your own text: nobody reviews, ranks or answers their own work.",
        "already_done": "You already did this one; thank you! Watch the channel for the next post.",
        "busy": "Someone is writing a reply here right now; please try again in a few minutes.",
        "post_full": "This post needs no more work of that kind; watch the channel for the next one.",
    }


@dataclass(frozen=True)
class PostText:
    message_id: int
    role: str
    text: str
    removed: bool = False


@dataclass(frozen=True)
class PostContent:
    """What a post shows: the conversation down to its subject, the numbered candidates of a ranking,
    and, once known, its outcome with the figures behind it."""

    kind: str
    lang: str
    target_message_id: int | None = None
    tree_id: int | None = None
    conversation: tuple[PostText, ...] = ()
    candidates: tuple[PostText, ...] = ()
    outcome: str | None = None
    progress: int | None = None
    needed: int | None = None
    # Candidate positions, best first, once the consensus is known.
    consensus: tuple[int, ...] = ()


@dataclass(frozen=True)
class PostRef:
    post_id: int
    channel_id: int
    discord_message_id: int


@dataclass(frozen=True)
class PostTask:
    """A member's task from a post, and what the bot still had to tell them."""

    offer: tasks.TaskOffer
    notices: tuple[str, ...] = field(default_factory=tuple)


def _open(post_table: type[BotPost] = BotPost) -> object:
    return or_(post_table.closed_at.is_(None), post_table.outcome == "ranked")


class PostService:
    def __init__(self, service: LabellingService, settings: PostSettings) -> None:
        self.service = service
        self.sessions: async_sessionmaker[AsyncSession] = service.sessions
        self.ctx: Context = service.ctx
        self.settings = settings

    # ----- posting ----------------------------------------------------------------------------------

    async def next_post(self, channel_id: int) -> PostContent | None:
        """What the channel should post now, drawn by the engine's weights among its kinds that have
        work, leaving out the targets it already shows; None when the channel is off or has nothing."""
        async with self.sessions() as session:
            channel = await session.get(TaskChannel, channel_id)
            if channel is None:
                return None
            shown = select(BotPost.target_message_id).where(
                BotPost.channel_id == channel_id, _open(), BotPost.target_message_id.is_not(None))

            def scope(column: object) -> object:
                return column.not_in(shown)  # type: ignore[attr-defined]

            weights = self.ctx.settings.weights
            groups = {g: getattr(weights, g) for kind in channel.kinds for g in POST_GROUPS.get(kind, ())
                      if getattr(weights, g) > 0}
            if "initial_prompt" in groups and await self._latest_is_prompt_call(session, channel_id):
                del groups["initial_prompt"]  # the call is still the newest post: nothing new to say
            wanted = {k for kind in channel.kinds for k in POST_TASK_KINDS.get(kind, ())}
            if not self.ctx.settings.rank_prompter_replies:
                wanted.discard(TaskKind.RANK_PROMPTER_REPLIES)
            while groups:
                names = sorted(groups)
                group = self.ctx.rng.choices(names, weights=[groups[n] for n in names])[0]
                candidate = await tasks.find_candidate(session, self.ctx, group, NOBODY, channel.language, wanted,
                                                       scope)
                if candidate is None:
                    del groups[group]
                    continue
                kind = next(k for k, gs in POST_GROUPS.items() if group in gs)
                return await self._content(session, kind, channel.language, candidate.target_message_id,
                                           candidate.tree_id, candidate.payload.get("reply_ids", []))
            return None

    @staticmethod
    async def _latest_is_prompt_call(session: AsyncSession, channel_id: int) -> bool:
        latest = await session.scalar(
            select(BotPost.kind).where(BotPost.channel_id == channel_id).order_by(BotPost.id.desc()).limit(1))
        return latest == "prompt"

    async def _content(self, session: AsyncSession, kind: str, lang: str, target: int | None, tree_id: int | None,
                       candidate_ids: Sequence[int]) -> PostContent:
        chain = await tasks.conversation(session, target)
        found = {m.id: m for m in (await session.scalars(
            select(Message).where(Message.id.in_(list(candidate_ids))))).all()} if candidate_ids else {}
        return PostContent(
            kind, lang, target, tree_id,
            conversation=tuple(PostText(m.id, m.role, m.text) for m in chain),
            candidates=tuple(PostText(i, found[i].role, found[i].text) for i in candidate_ids if i in found),
        )

    async def record_post(self, channel_id: int, guild_id: int | None, discord_message_id: int,
                          content: PostContent) -> PostRef:
        """The bot posted ``content`` as this Discord message: remember what it shows."""
        async with self.sessions.begin() as session:
            now = self.ctx.now()
            post = BotPost(discord_message_id=discord_message_id, channel_id=channel_id, guild_id=guild_id,
                           kind=content.kind, target_message_id=content.target_message_id,
                           tree_id=content.tree_id, lang=content.lang, created_at=now)
            session.add(post)
            await session.flush()
            rows = {m.message_id: PostMessage(post_id=post.id, message_id=m.message_id, role="context")
                    for m in content.conversation}
            if content.target_message_id is not None:
                rows[content.target_message_id] = PostMessage(post_id=post.id, message_id=content.target_message_id,
                                                              role="subject")
            for position, candidate in enumerate(content.candidates):
                rows[candidate.message_id] = PostMessage(post_id=post.id, message_id=candidate.message_id,
                                                         role="candidate", position=position)
            session.add_all(rows.values())
            await session.execute(update(TaskChannel).where(TaskChannel.channel_id == channel_id)
                                  .values(last_posted_at=now))
            return PostRef(post.id, channel_id, discord_message_id)

    # ----- keeping posts up to date ----------------------------------------------------------------

    async def posts_to_refresh(self, *, channel_id: int | None = None, tree_ids: Collection[int] = (),
                               task_id: int | None = None) -> list[PostRef]:
        """Open posts of a channel (oldest first, a bounded number), of some trees, or of a task's tree."""
        async with self.sessions() as session:
            query = select(BotPost.id, BotPost.channel_id, BotPost.discord_message_id).where(_open())
            if task_id is not None:
                tree_ids = [t for t in [await session.scalar(select(Task.tree_id).where(Task.id == task_id))] if t]
            if channel_id is not None:
                query = query.where(BotPost.channel_id == channel_id).order_by(BotPost.id).limit(
                    self.settings.refresh_per_tick)
            else:
                if not tree_ids:
                    return []
                query = query.where(BotPost.tree_id.in_(list(tree_ids))).order_by(BotPost.id)
            return [PostRef(*row) for row in (await session.execute(query)).all()]

    async def refresh(self, post_id: int) -> PostContent | None:
        """The post's content when its outcome changed since it was last shown (to edit it), else None."""
        async with self.sessions.begin() as session:
            post = await session.get(BotPost, post_id)
            if post is None or post.outcome in FINAL:
                return None
            outcome = await self._outcome(session, post)
            if outcome == post.outcome:
                return None
            post.outcome = outcome
            if outcome in FINAL:
                post.closed_at = self.ctx.now()
            return await self.view(session, post)

    async def _outcome(self, session: AsyncSession, post: BotPost) -> str | None:
        settings = self.ctx.settings
        expired = post.created_at < self.ctx.now() - timedelta(hours=self.settings.expiry_hours)
        if post.kind == "prompt":
            newer = await session.scalar(select(exists().where(
                BotPost.channel_id == post.channel_id, BotPost.kind == "prompt", BotPost.id > post.id)))
            return "superseded" if newer else "expired" if expired else None
        target = await session.get(Message, post.target_message_id) if post.target_message_id else None
        tree = await session.get(MessageTree, post.tree_id) if post.tree_id else None
        if target is None or target.deleted or tree is None:
            return "removed"
        if post.kind == "rank":
            candidates = (await session.execute(
                select(Message.deleted, Message.rank).join(PostMessage, PostMessage.message_id == Message.id)
                .where(PostMessage.post_id == post.id, PostMessage.role == "candidate"))).all()
            if any(deleted for deleted, _ in candidates):
                return "removed"
            if candidates and all(rank is not None for _, rank in candidates):
                return "consensus"
            counts = await ranking_counts(session, [target.id])
            if settled(counts.get(target.id, (0, 0)), self.ctx) or tree.state not in RANKING_STATES:
                return "ranked" if tree.state not in (TreeState.ABORTED_LOW_GRADE, TreeState.HALTED_BY_MODERATOR) \
                    else "stopped"
        elif post.kind == "review":
            if target.review_result is not None:
                return "accepted" if target.review_result else "rejected"
            if tree.state in CLOSED_STATES:
                return "stopped"
        elif post.kind == "reply":
            if tree.state in CLOSED_STATES:
                return "stopped"
            live = await session.scalar(select(func.count()).select_from(Message).where(
                Message.parent_id == target.id, Message.deleted.is_(False), LIVE)) or 0
            capacity = settings.num_prompter_replies if target.role == Role.ASSISTANT else settings.max_children
            if tree.state != TreeState.GROWING or live >= capacity:
                return "full"
        return "expired" if expired else post.outcome if post.outcome == "ranked" else None

    async def view(self, session: AsyncSession, post: BotPost) -> PostContent:
        """What an existing post shows now: removed texts are hidden, figures are current."""
        rows = (await session.execute(
            select(PostMessage.role, PostMessage.position, Message)
            .join(Message, Message.id == PostMessage.message_id).where(PostMessage.post_id == post.id)
        )).all()
        shown = sorted((m for role, _, m in rows if role != "candidate"), key=lambda m: m.depth)
        candidates = sorted(((pos, m) for role, pos, m in rows if role == "candidate"), key=lambda pm: pm[0])
        progress = needed = None
        consensus: tuple[int, ...] = ()
        settings = self.ctx.settings
        target = next((m for role, _, m in rows if role == "subject"), None)
        if target is not None and post.kind == "review":
            progress = target.review_count
            needed = settings.reviews_initial_prompt if target.parent_id is None else settings.reviews_reply
        elif target is not None and post.kind == "reply":
            progress = await session.scalar(select(func.count()).select_from(Message).where(
                Message.parent_id == target.id, Message.deleted.is_(False))) or 0
        elif target is not None and post.kind == "rank":
            progress = (await ranking_counts(session, [target.id])).get(target.id, (0, 0))[0]
            needed = settings.rankings_needed
            if post.outcome == "consensus":
                consensus = tuple(pos for pos, m in sorted(candidates, key=lambda pm: pm[1].rank or 0))
        return PostContent(
            post.kind, post.lang, post.target_message_id, post.tree_id,
            conversation=tuple(PostText(m.id, m.role, m.text, m.deleted) for m in shown),
            candidates=tuple(PostText(m.id, m.role, m.text, m.deleted) for _, m in candidates),
            outcome=post.outcome, progress=progress, needed=needed, consensus=consensus,
        )

    # ----- a member's work from a post -------------------------------------------------------------

    async def open_on_post(self, member: Member, discord_message_id: int, action: str, *,
                           take_notices: bool = True) -> PostTask:
        """A task for this member on the post's target: ``write`` (a prompt or a reply), ``review`` (the
        full review) or ``rank`` (the private select flow). Refusals say why, in the member's terms."""
        async with self.sessions.begin() as session:
            post = await session.scalar(select(BotPost).where(BotPost.discord_message_id == discord_message_id))
            wanted = {"write": ("prompt", "reply"), "review": ("review",), "rank": ("rank",)}.get(action, ())
            if post is None or post.kind not in wanted:
                raise PostRefused("not_a_post")
            if post.outcome in FINAL or post.outcome == "ranked":
                raise PostRefused("post_closed")
            user = await get_or_create_user(session, member.discord_id, display_name=member.display_name,
                                            locale=member.locale)
            target = post.target_message_id
            try:
                async with session.begin_nested():
                    offer = await tasks.request_task(
                        session, self.ctx, user.id, post.lang, POST_TASK_KINDS[post.kind],
                        scope=None if target is None else (lambda column: column == target))
            except NoTaskAvailable as refused:
                if refused.reason != "no_work" or post.kind == "prompt":
                    raise
                raise PostRefused(await self._why_not(session, post, user.id)) from None
            task = await session.get(Task, offer.task_id)
            if post.kind == "review":
                message = await session.get(Message, target)
                task.payload = {**task.payload, "mode": "full", "asked": "review",
                                "labels": label_names(message.role, is_prompt=message.parent_id is None, mode="full")}
                await session.flush()
                offer = await tasks.describe_task(session, task)
            else:
                task.payload = {**task.payload, "asked": "any"}
            notices = await self._take_notices(session, member.discord_id) if take_notices else ()
            return PostTask(offer, notices)

    async def _why_not(self, session: AsyncSession, post: BotPost, user_id: int) -> str:
        """Why the engine has no task for this member on the post's target (only asked after a refusal)."""
        target = await session.get(Message, post.target_message_id)
        if target is None or target.deleted:
            return "removed"
        if post.kind == "rank":
            own = await session.scalar(select(exists().where(
                Message.parent_id == target.id, Message.author_id == user_id, Message.deleted.is_(False))))
            if own:
                return "own_text"
            done = await session.scalar(select(exists().where(Ranking.parent_id == target.id,
                                                               Ranking.user_id == user_id)))
            return "already_done" if done else "post_full"
        if target.author_id == user_id:
            return "own_text"
        if post.kind == "review":
            done = await session.scalar(select(exists().where(Label.message_id == target.id, Label.user_id == user_id)))
            return "already_done" if done else "post_full"
        replied = await session.scalar(select(exists().where(Message.parent_id == target.id,
                                                              Message.author_id == user_id)))
        if replied:
            return "already_done"
        busy = await session.scalar(select(exists().where(
            Task.target_message_id == target.id, Task.kind.in_(list(REPLY_KINDS)), Task.state == TaskState.OFFERED,
            Task.user_id != user_id, Task.expires_at > self.ctx.now(),
            Task.created_at > self.ctx.now() - timedelta(minutes=self.ctx.settings.reply_lock_minutes))))
        return "busy" if busy else "post_full"

    # ----- notices ------------------------------------------------------------------------------------

    async def add_notice(self, discord_user_id: int, text: str) -> None:
        """Keep a message for a member who could not be told at once (DMs closed)."""
        async with self.sessions.begin() as session:
            session.add(MemberNotice(discord_user_id=discord_user_id, text=text[:500], created_at=self.ctx.now()))

    async def _take_notices(self, session: AsyncSession, discord_user_id: int) -> tuple[str, ...]:
        rows = (await session.execute(
            select(MemberNotice.id, MemberNotice.text)
            .where(MemberNotice.discord_user_id == discord_user_id, MemberNotice.delivered_at.is_(None))
            .order_by(MemberNotice.id))).all()
        if rows:
            await session.execute(update(MemberNotice).where(MemberNotice.id.in_([r.id for r in rows]))
                                  .values(delivered_at=self.ctx.now()))
        return tuple(dict.fromkeys(r.text for r in rows))

    async def take_notices(self, discord_user_id: int) -> tuple[str, ...]:
        async with self.sessions.begin() as session:
            return await self._take_notices(session, discord_user_id)

    # ----- lookups ----------------------------------------------------------------------------------

    async def posts_showing(self, message_ids: Iterable[int]) -> list[PostRef]:
        """Every post that shows one of these tree messages (the mapping's indexed lookup)."""
        async with self.sessions() as session:
            rows = (await session.execute(
                select(BotPost.id, BotPost.channel_id, BotPost.discord_message_id).distinct()
                .join(PostMessage, and_(PostMessage.post_id == BotPost.id,
                                        PostMessage.message_id.in_(list(message_ids))))
                .order_by(BotPost.id))).all()
            return [PostRef(*row) for row in rows]
