"""Submissions: prompts, replies, labels, rankings and skips, each in one transaction with every
transition it causes. A task is claimed by a conditional UPDATE, so a double click or two workers
racing record it once; any refusal raised afterwards rolls the claim back."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.labelling import points
from bot.labelling.context import Context
from bot.labelling.errors import TaskRefused
from bot.labelling.labels import acceptance_score, invalid_label_problem
from bot.labelling.moderation_core import halt_tree_now
from bot.labelling.tasks import reply_rate_retry_at
from bot.labelling.texts import text_refusal
from bot.labelling.trees import (
    ACTIVE_STATES,
    CLOSED_STATES,
    LABEL_KINDS,
    LIVE,
    RANK_KINDS,
    RANKING_STATES,
    REPLY_KINDS,
    abort_tree,
    activate_or_queue,
    advance_tree,
)
from storage.enums import Role, TaskKind, TaskState, TreeState
from storage.models import Label, Message, MessageTree, Ranking, Task, User


@dataclass(frozen=True)
class SubmissionResult:
    """What happened: the points just earned and the tree's state afterwards."""

    task_id: int
    points: float
    message_id: int | None = None
    tree_id: int | None = None
    tree_state: str | None = None
    review_decided: bool | None = None


def refuse_unworkable(task: Task | None, user: User | None, user_id: int | None, now: datetime) -> Task:
    """The task, if this user may still answer it; otherwise the reason as a refusal. A ban comes before
    the task's state: banning cancels the user's tasks, and "banned" is the true reason."""
    if task is None:
        raise TaskRefused("task_not_found")
    if user_id is None or task.user_id != user_id:
        raise TaskRefused("not_your_task")
    if user is None or user.banned:
        raise TaskRefused("banned")
    if task.state in (TaskState.DONE, TaskState.SKIPPED):
        raise TaskRefused("already_done")
    if task.state == TaskState.CANCELLED:
        raise TaskRefused("task_cancelled")
    if task.state == TaskState.EXPIRED or task.expires_at <= now:
        raise TaskRefused("task_expired")
    return task


async def _claim(session: AsyncSession, ctx: Context, task_id: int, user_id: int,
                 kinds: Collection[str], state: str = TaskState.DONE) -> tuple[Task, User]:
    now = ctx.now()
    user = await session.get(User, user_id)
    task = refuse_unworkable(await session.get(Task, task_id), user, user_id, now)
    if task.kind not in kinds:
        raise TaskRefused("wrong_task_kind")
    claimed = await session.execute(
        update(Task)
        .where(Task.id == task_id, Task.state == TaskState.OFFERED)
        .values(state=state, done_at=now)
    )
    if claimed.rowcount != 1:
        raise TaskRefused("already_done")
    return task, user


def _clean_text(ctx: Context, text: str) -> str:
    text = (text or "").strip()
    refusal = text_refusal(text)
    if refusal is not None:
        raise TaskRefused(refusal)
    limit = ctx.settings.max_text_length
    if len(text) > limit:
        raise TaskRefused("text_too_long", f"The text is {len(text)} characters long; the limit is {limit}.")
    return text


async def _refuse_duplicate(session: AsyncSession, ctx: Context, user_id: int, text: str) -> None:
    since = ctx.now() - timedelta(minutes=ctx.settings.duplicate_text_window_minutes)
    found = await session.scalar(
        select(Message.id)
        .where(Message.author_id == user_id, Message.created_at > since, Message.text == text).limit(1)
    )
    if found is not None:
        raise TaskRefused("duplicate_text")


async def _tree_for(session: AsyncSession, tree_id: int | None) -> MessageTree:
    """The task's tree, row-locked on PostgreSQL so that concurrent submissions to one tree count reviews
    and decide transitions one after the other (SQLite already serialises writers)."""
    tree = await session.get(MessageTree, tree_id, with_for_update=True) if tree_id is not None else None
    if tree is None:
        raise TaskRefused("tree_closed")
    return tree


async def submit_initial_prompt(session: AsyncSession, ctx: Context, task_id: int, user_id: int,
                                text: str) -> SubmissionResult:
    task, user = await _claim(session, ctx, task_id, user_id, (TaskKind.INITIAL_PROMPT,))
    text = _clean_text(ctx, text)
    await _refuse_duplicate(session, ctx, user_id, text)
    now = ctx.now()
    tree = MessageTree(lang=task.lang, state=TreeState.INITIAL_PROMPT_REVIEW, created_at=now, updated_at=now)
    session.add(tree)
    await session.flush()
    message = Message(tree_id=tree.id, role=Role.PROMPTER, text=text, author_id=user_id, lang=task.lang,
                      depth=0, created_at=now)
    session.add(message)
    await session.flush()
    task.tree_id = tree.id
    earned = await points.award(session, ctx, user_id, ctx.settings.points.initial_prompt, "initial_prompt",
                                message_id=message.id, task_id=task_id)
    points.touch_streak(user, ctx)
    await session.flush()
    return SubmissionResult(task_id, earned, message.id, tree.id, tree.state)


async def submit_reply(session: AsyncSession, ctx: Context, task_id: int, user_id: int,
                       text: str, *, model_name: str | None = None) -> SubmissionResult:
    """An assistant or prompter reply to the task's parent message; with ``model_name``, a synthetic
    reply the model wrote."""
    task, user = await _claim(session, ctx, task_id, user_id, REPLY_KINDS)
    text = _clean_text(ctx, text)
    tree = await _tree_for(session, task.tree_id)
    parent = await session.get(Message, task.target_message_id, populate_existing=True)
    if parent is None or parent.deleted:
        raise TaskRefused("message_gone")
    if tree.state != TreeState.GROWING or parent.review_result is not True:
        raise TaskRefused("tree_closed")
    if parent.depth >= ctx.settings.max_tree_depth or (
        ctx.settings.answer_prompter_turns and parent.role == Role.ASSISTANT
        and parent.depth + 1 >= ctx.settings.max_tree_depth
    ):
        raise TaskRefused("parent_full")
    role = Role.ASSISTANT if task.kind == TaskKind.ASSISTANT_REPLY else Role.PROMPTER
    if await session.scalar(
        select(Message.id).where(Message.parent_id == parent.id, Message.author_id == user_id)
    ) is not None:
        raise TaskRefused("already_replied")
    children = await session.scalar(
        select(func.count()).select_from(Message)
        .where(Message.parent_id == parent.id, Message.deleted.is_(False), LIVE)
    )
    capacity = ctx.settings.num_prompter_replies if parent.role == Role.ASSISTANT else ctx.settings.max_children
    if (children or 0) >= capacity:
        raise TaskRefused("parent_full")
    await _refuse_duplicate(session, ctx, user_id, text)
    retry_at = await reply_rate_retry_at(session, ctx, user_id, role)
    if retry_at is not None:
        raise TaskRefused("rate_limited", retry_at=retry_at)
    message = Message(tree_id=tree.id, parent_id=parent.id, role=role, text=text, author_id=user_id,
                      lang=tree.lang, depth=parent.depth + 1, created_at=ctx.now(),
                      synthetic=model_name is not None, model_name=model_name)
    session.add(message)
    await session.flush()
    reason = "assistant_reply" if role == Role.ASSISTANT else "prompter_reply"
    earned = await points.award(session, ctx, user_id, getattr(ctx.settings.points, reason), reason,
                                message_id=message.id, task_id=task_id)
    points.touch_streak(user, ctx)
    await session.flush()
    return SubmissionResult(task_id, earned, message.id, tree.id, tree.state)


async def _decide_review(session: AsyncSession, ctx: Context, message: Message, tree: MessageTree,
                         needed: int) -> bool | None:
    """Open-Assistant's acceptance rule, run on every review once enough have arrived and while the tree
    is still in review: a rejection can turn into acceptance, an acceptance is never taken back.
    Returns whether the message is accepted now, or None while a contested rejection waits for more
    reviews."""
    rows = (
        await session.execute(
            select(Label.user_id, Label.name, Label.value)
            .where(Label.message_id == message.id, Label.name.in_(("spam", "lang_mismatch")))
        )
    ).all()
    spam = [value for _, name, value in rows if name == "spam"]
    lang = [value for _, name, value in rows if name == "lang_mismatch"]
    is_prompt = message.parent_id is None
    threshold = (ctx.settings.acceptance_threshold_initial_prompt if is_prompt
                 else ctx.settings.acceptance_threshold_reply)
    accepted = acceptance_score(spam, lang, message.review_count) > threshold
    # Our extension (contested_extra_reviews): one reviewer who ticks both spam and wrong language
    # rejects a message under the mean rule (1 - 2/3). When the required reviews would reject but some
    # reviewer found nothing wrong, the message waits for the extra reviews and is then decided by
    # Open-Assistant's rule over all of them.
    if message.review_result is None and message.review_count < needed + ctx.settings.contested_extra_reviews:
        if message.review_count > needed:
            return None
        if not accepted:
            flagged: dict[int, float] = {}
            for user_id, _, value in rows:
                flagged[user_id] = flagged.get(user_id, 0.0) + value
            if any(total == 0 for total in flagged.values()):
                return None
    if not accepted:
        if message.review_result is None:
            message.review_result = False
            await session.flush()
            if is_prompt:
                await abort_tree(session, ctx, tree)
            await advance_tree(session, ctx, tree)
        return False
    message.review_result = True
    reason = "initial_prompt" if is_prompt else f"{message.role}_reply"
    await points.award(session, ctx, message.author_id, getattr(ctx.settings.points, reason),
                       f"{reason}_accepted", message_id=message.id)
    await session.flush()
    if is_prompt:
        await activate_or_queue(session, ctx, tree)
    await advance_tree(session, ctx, tree)
    return True


async def submit_labels(session: AsyncSession, ctx: Context, task_id: int, user_id: int,
                        labels: Mapping[str, float]) -> SubmissionResult:
    """One review: values in [0, 1] for the labels the task asked for (spam is required)."""
    task, user = await _claim(session, ctx, task_id, user_id, LABEL_KINDS)
    tree = await _tree_for(session, task.tree_id)
    message = await session.get(Message, task.target_message_id, populate_existing=True)
    if message is None or message.deleted:
        raise TaskRefused("message_gone")
    if message.author_id == user_id:
        raise TaskRefused("own_message")
    if tree.state in CLOSED_STATES:
        raise TaskRefused("tree_closed")
    problem = invalid_label_problem(labels, task.payload.get("labels", ()))
    if problem:
        raise TaskRefused("invalid_labels", problem)
    if await session.scalar(
        select(Label.id).where(Label.message_id == message.id, Label.user_id == user_id).limit(1)
    ) is not None:
        raise TaskRefused("already_labelled")
    mode = task.payload.get("mode", "simple")
    now = ctx.now()
    session.add_all(
        Label(message_id=message.id, user_id=user_id, task_id=task_id, name=name, value=float(value),
              mode=mode, created_at=now)
        for name, value in labels.items()
    )
    message.review_count += 1
    reason = "label_full" if mode == "full" else "label_simple"
    earned = await points.award(session, ctx, user_id, getattr(ctx.settings.points, reason), reason,
                                message_id=message.id, task_id=task_id)
    points.touch_streak(user, ctx)
    await session.flush()
    needed = ctx.settings.reviews_initial_prompt if message.parent_id is None else ctx.settings.reviews_reply
    in_review = tree.state == (TreeState.INITIAL_PROMPT_REVIEW if message.parent_id is None else TreeState.GROWING)
    decided = None
    if message.review_result is not True and message.review_count >= needed and in_review:
        decided = await _decide_review(session, ctx, message, tree, needed)
    return SubmissionResult(task_id, earned, message.id, tree.id, tree.state, decided)


async def submit_ranking(session: AsyncSession, ctx: Context, task_id: int, user_id: int,
                         ordered_ids: Sequence[int] | None, *, not_rankable: bool = False) -> SubmissionResult:
    """Best first: a permutation of exactly the replies shown, which must still be the parent's
    accepted replies. ``not_rankable`` flags the set instead of ordering it."""
    task, user = await _claim(session, ctx, task_id, user_id, RANK_KINDS)
    tree = await _tree_for(session, task.tree_id)
    parent = await session.get(Message, task.target_message_id, populate_existing=True)
    if parent is None or parent.deleted:
        raise TaskRefused("message_gone")
    if tree.state not in RANKING_STATES:
        raise TaskRefused("tree_closed")
    current = (
        await session.execute(
            select(Message.id, Message.author_id)
            .where(Message.parent_id == parent.id, Message.deleted.is_(False), Message.review_result.is_(True))
        )
    ).all()
    if any(author == user_id for _, author in current):
        raise TaskRefused("own_message")
    current_ids = {message_id for message_id, _ in current}
    if set(task.payload.get("reply_ids", ())) != current_ids:
        raise TaskRefused("stale_ranking")
    order: list[int] = []
    if not not_rankable:
        order = [int(i) for i in (ordered_ids or ())]
        if len(order) != len(current_ids) or set(order) != current_ids:
            raise TaskRefused("invalid_ranking")
    if await session.scalar(
        select(Ranking.id).where(Ranking.parent_id == parent.id, Ranking.user_id == user_id)
    ) is not None:
        raise TaskRefused("already_ranked")
    session.add(Ranking(parent_id=parent.id, user_id=user_id, task_id=task_id, ordered_ids=order,
                        not_rankable=not_rankable, created_at=ctx.now()))
    earned = await points.award(session, ctx, user_id, ctx.settings.points.ranking, "ranking",
                                detail="not rankable" if not_rankable else None,
                                message_id=parent.id, task_id=task_id)
    # Open-Assistant pays placement per individual ranking: each time a ranking puts a reply 1st, 2nd
    # or 3rd, its author earns 9, 3 or 1.
    authors = dict(current)
    for position, (message_id, bonus) in enumerate(zip(order, ctx.settings.points.placement, strict=False)):
        await points.award(session, ctx, authors[message_id], bonus, points.placement_reason(position),
                            detail=f"a ranking put your reply #{position + 1}", message_id=message_id,
                            task_id=task_id)
    points.touch_streak(user, ctx)
    state = await advance_tree(session, ctx, tree)
    return SubmissionResult(task_id, earned, None, tree.id, state)


async def skip_task(session: AsyncSession, ctx: Context, task_id: int, user_id: int,
                    reason: str | None = None) -> SubmissionResult:
    """Recorded; the same target never comes back to this user. Enough skipped replies halt the tree."""
    task, _user = await _claim(session, ctx, task_id, user_id, set(TaskKind), state=TaskState.SKIPPED)
    if reason:
        task.payload = {**task.payload, "skip_reason": reason[:200]}
    tree = await session.get(MessageTree, task.tree_id) if task.tree_id is not None else None
    # Open-Assistant halts a tree when a message collects many skipped *reply* tasks (people find it
    # unanswerable), and only while the tree is in review or growing.
    if tree is not None and task.kind in REPLY_KINDS and tree.state in ACTIVE_STATES:
        skips = await session.scalar(
            select(func.count()).select_from(Task)
            .where(Task.target_message_id == task.target_message_id, Task.state == TaskState.SKIPPED,
                   Task.kind.in_(list(REPLY_KINDS)))
        )
        if (skips or 0) >= ctx.settings.skips_to_halt:
            await halt_tree_now(session, ctx, tree, actor_id=None, action="auto_halt_skips",
                                details={"message_id": task.target_message_id, "skips": skips})
    tree_state = tree.state if tree is not None else None
    await session.flush()
    return SubmissionResult(task_id, 0.0, task.target_message_id, task.tree_id, tree_state)
