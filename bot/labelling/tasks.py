"""Task selection: one call gives a user the best task now, or says truthfully why there is none.

Kinds are drawn by the reference's weights among the kinds that have work for this user. Drawing a
kind by weight and dropping it when it turns out empty gives exactly that distribution, and usually
costs one small query. Candidates are found from the few trees in an active state of the user's
language (the (state, lang) index), never by loading whole trees.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, literal_column, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.labelling.context import Context
from bot.labelling.errors import NoTaskAvailable, UnknownUser
from bot.labelling.labels import LabelSpec, label_names, label_specs
from bot.labelling.trees import (
    LABEL_KINDS,
    LIVE,
    RANK_KINDS,
    RANKING_STATES,
    REPLY_KINDS,
    live_children_count,
    open_prompter_turn,
    ranked_parent_roles,
    reply_capacity,
    takes_replies,
)
from storage.enums import Role, TaskKind, TaskState, TreeState
from storage.models import Label, Message, MessageTree, Ranking, Task, User

# Weight groups of the reference and the task kinds each one covers.
GROUPS: dict[str, tuple[TaskKind, ...]] = {
    "rank": RANK_KINDS,
    "label_reply": (TaskKind.LABEL_ASSISTANT_REPLY, TaskKind.LABEL_PROMPTER_REPLY),
    "label_prompt": (TaskKind.LABEL_INITIAL_PROMPT,),
    "reply": REPLY_KINDS,
    "initial_prompt": (TaskKind.INITIAL_PROMPT,),
}
REPLY_KIND_FOR_PARENT = {Role.PROMPTER: TaskKind.ASSISTANT_REPLY, Role.ASSISTANT: TaskKind.PROMPTER_REPLY}
LABEL_KIND_FOR_ROLE = {Role.PROMPTER: TaskKind.LABEL_PROMPTER_REPLY, Role.ASSISTANT: TaskKind.LABEL_ASSISTANT_REPLY}
RANK_KIND_FOR_PARENT = {Role.PROMPTER: TaskKind.RANK_ASSISTANT_REPLIES, Role.ASSISTANT: TaskKind.RANK_PROMPTER_REPLIES}
CANDIDATE_LIMIT = 200
# Ranking: the oldest parents still needing rankings, found a page of trees at a time.
RANK_CANDIDATES = 20
RANK_TREE_PAGE = 64
# An extra condition on the target message's id column, for work tied to one place: a channel post's
# target (only it), or the targets a channel already shows (all but those).
Scope = Callable[[Any], Any]


@dataclass(frozen=True)
class MessageView:
    id: int
    role: str
    text: str
    depth: int


@dataclass(frozen=True)
class TaskOffer:
    """What a cog shows: ``conversation`` runs from the prompt down to the message to label, to
    reply to, or whose replies to rank; ``replies`` are those replies, in the order to show them."""

    task_id: int
    kind: TaskKind
    lang: str
    expires_at: datetime
    target_message_id: int | None
    tree_id: int | None
    conversation: tuple[MessageView, ...] = ()
    replies: tuple[MessageView, ...] = ()
    label_names: tuple[str, ...] = ()
    # Review tasks: "simple" or "full", and how to ask each label, in the order to ask them.
    review_mode: str | None = None
    labels: tuple[LabelSpec, ...] = ()
    reply_role: str | None = None


@dataclass
class _Candidate:
    kind: TaskKind
    target_message_id: int | None = None
    tree_id: int | None = None
    payload: dict[str, Any] = field(default_factory=dict)


def _own_task_blocks(target: Any, user_id: int, kinds: Collection[str], now: datetime) -> Any:
    """The user already holds an open task on this target, or skipped it (skips never come back)."""
    return exists().where(
        Task.target_message_id == target, Task.user_id == user_id, Task.kind.in_(list(kinds)),
        or_(Task.state == TaskState.SKIPPED, and_(Task.state == TaskState.OFFERED, Task.expires_at > now)),
    )


def _nth_recent(created: Any, *conditions: Any, since: datetime, n: int) -> Any:
    """The n-th most recent timestamp after ``since``, or NULL when there are fewer than n."""
    return (
        select(created).where(*conditions, created > since)
        .order_by(created.desc()).limit(1).offset(n - 1).scalar_subquery()
    )


@dataclass(frozen=True)
class _Gate:
    banned: bool
    pending: int
    request_limit_from: datetime | None
    reply_limit_from: dict[str, datetime]


async def _gate(session: AsyncSession, ctx: Context, user_id: int) -> _Gate:
    """Everything that may stop a user from getting a task, in one round trip: ban, open tasks, the
    task-request rate and the reply rates (the n-th most recent event inside each window)."""
    settings, now = ctx.settings, ctx.now()
    request_window = timedelta(minutes=settings.task_request_window_minutes)
    reply_since = now - timedelta(minutes=settings.reply_window_minutes)
    # Open-Assistant's pending limit counts the open tasks given in the last few minutes, so tasks a
    # member walked away from stop blocking them soon, long before they expire.
    pending = (
        select(func.count()).select_from(Task)
        .where(Task.user_id == user_id, Task.state == TaskState.OFFERED, Task.expires_at > now,
               Task.created_at > now - timedelta(minutes=settings.pending_task_window_minutes))
        .scalar_subquery()
    )
    row = (
        await session.execute(
            select(
                User.banned,
                pending,
                _nth_recent(Task.created_at, Task.user_id == user_id, since=now - request_window,
                            n=settings.task_requests_per_window),
                _nth_recent(Message.created_at, Message.author_id == user_id, Message.role == Role.ASSISTANT,
                            Message.depth > 0, since=reply_since, n=settings.assistant_replies_per_window),
                _nth_recent(Message.created_at, Message.author_id == user_id, Message.role == Role.PROMPTER,
                            Message.depth > 0, since=reply_since, n=settings.prompter_replies_per_window),
            ).where(User.id == user_id)
        )
    ).one_or_none()
    if row is None:
        raise UnknownUser("user_not_found")
    banned, pending_count, request_nth, assistant_nth, prompter_nth = row
    reply_window = timedelta(minutes=settings.reply_window_minutes)
    blocked = {
        str(role): nth + reply_window
        for role, nth in ((Role.ASSISTANT, assistant_nth), (Role.PROMPTER, prompter_nth)) if nth is not None
    }
    return _Gate(bool(banned), pending_count or 0,
                 None if request_nth is None else request_nth + request_window, blocked)


async def reply_rate_retry_at(session: AsyncSession, ctx: Context, user_id: int, role: str) -> datetime | None:
    """When the user may write another reply of this role, or None if they may now."""
    return (await _gate(session, ctx, user_id)).reply_limit_from.get(str(role))


async def _find_initial_prompt(session: AsyncSession, ctx: Context, user_id: int, lang: str,
                               kinds: set[TaskKind]) -> _Candidate | None:
    waiting = dict((await session.execute(
        select(MessageTree.state, func.count())
        .where(MessageTree.state.in_([TreeState.INITIAL_PROMPT_REVIEW, TreeState.PROMPT_LOTTERY_WAITING]),
               MessageTree.lang == lang)
        .group_by(MessageTree.state)
    )).all())
    if (waiting.get(TreeState.INITIAL_PROMPT_REVIEW, 0) >= ctx.settings.max_prompts_in_review
            or waiting.get(TreeState.PROMPT_LOTTERY_WAITING, 0) >= ctx.settings.max_prompt_lottery_waiting):
        return None
    return _Candidate(TaskKind.INITIAL_PROMPT)


async def _find_label(session: AsyncSession, ctx: Context, user_id: int, lang: str, kinds: set[TaskKind],
                      *, prompts: bool, scope: Scope | None = None) -> _Candidate | None:
    now = ctx.now()
    # Start from the trees in review or growing: few by construction (the review queue and the growing
    # slots are capped), so this never scans the message table.
    tree_state = TreeState.INITIAL_PROMPT_REVIEW if prompts else TreeState.GROWING
    trees = select(MessageTree.id).where(MessageTree.state == tree_state, MessageTree.lang == lang)
    conditions = [
        Message.tree_id.in_(trees),
        Message.review_result.is_(None),
        Message.deleted.is_(False),
        or_(Message.author_id.is_(None), Message.author_id != user_id),
        ~exists().where(Label.message_id == Message.id, Label.user_id == user_id),
        ~_own_task_blocks(Message.id, user_id, LABEL_KINDS, now),
    ]
    if scope is not None:
        conditions.append(scope(Message.id))
    # Depth rather than parent_id: a parent_id condition tempts SQLite into scanning the parent index.
    if prompts:
        conditions.append(Message.depth == 0)
    else:
        roles = [role for role, kind in LABEL_KIND_FOR_ROLE.items() if kind in kinds]
        conditions += [Message.depth > 0, Message.role.in_(roles)]
    rows = (
        await session.execute(
            select(Message.id, Message.tree_id, Message.role, Message.review_count)
            .where(*conditions)
            .order_by(Message.tree_id, Message.id)
            .limit(CANDIDATE_LIMIT)
        )
    ).all()
    if not rows:
        return None
    # Finish what is closest to a decision first: the messages with the most reviews.
    most = max(row.review_count for row in rows)
    row = ctx.rng.choice([r for r in rows if r.review_count == most])
    kind = TaskKind.LABEL_INITIAL_PROMPT if prompts else LABEL_KIND_FOR_ROLE[Role(row.role)]
    settings = ctx.settings
    p_full = (settings.p_full_labeling_review_prompt if prompts
              else settings.p_full_labeling_review_reply_assistant if row.role == Role.ASSISTANT
              else settings.p_full_labeling_review_reply_prompter)
    mode = "full" if ctx.rng.random() < p_full else "simple"
    names = label_names(row.role, is_prompt=prompts, mode=mode)
    return _Candidate(kind, row.id, row.tree_id, {"mode": mode, "labels": names})


async def _growing_trees_by_room(session: AsyncSession, ctx: Context, lang: str) -> tuple[list[int], list[int]]:
    """Growing trees whose accepted plus in-review messages are below the goal size, and those that
    reached it (which still answer their open user turns when ``answer_prompter_turns`` is on)."""
    rows = (
        await session.execute(
            select(MessageTree.id, func.count(Message.id))
            .join(Message, and_(Message.tree_id == MessageTree.id, Message.deleted.is_(False), LIVE))
            .where(MessageTree.state == TreeState.GROWING, MessageTree.lang == lang)
            .group_by(MessageTree.id)
        )
    ).all()
    goal = ctx.settings.goal_tree_size
    return [t for t, size in rows if size < goal], [t for t, size in rows if size >= goal]


async def _find_reply(session: AsyncSession, ctx: Context, user_id: int, lang: str,
                      kinds: set[TaskKind], scope: Scope | None = None) -> _Candidate | None:
    with_room, full = await _growing_trees_by_room(session, ctx, lang)
    if not ctx.settings.answer_prompter_turns:
        full = []
    if not with_room and not full:
        return None
    now = ctx.now()
    settings = ctx.settings
    child = Message.__table__.alias("child")
    live_children = live_children_count(Message)
    open_turn = open_prompter_turn(ctx, Message, live_children)
    lock_since = now - timedelta(minutes=settings.reply_lock_minutes)
    # ``state || ''`` keeps SQLite off the (state, expires_at) index: through it, this check read every
    # open task of the campaign for each candidate parent, instead of the parent's few tasks.
    reserved_by_other = exists().where(
        Task.target_message_id == Message.id, Task.kind.in_(list(REPLY_KINDS)),
        Task.state.concat(literal_column("''")) == TaskState.OFFERED,
        Task.user_id != user_id, Task.created_at > lock_since, Task.expires_at > now,
    )
    parent_roles = [role for role, kind in REPLY_KIND_FOR_PARENT.items() if kind in kinds]
    rows = (
        await session.execute(
            select(Message.id, Message.tree_id, Message.role, live_children.label("children"),
                   open_turn.label("open_turn"))
            .where(
                or_(Message.tree_id.in_(with_room), and_(Message.tree_id.in_(full), open_turn)),
                takes_replies(ctx, Message),
                Message.role.in_(parent_roles),
                or_(Message.author_id.is_(None), Message.author_id != user_id),
                live_children < reply_capacity(ctx, Message),
                ~exists().where(child.c.parent_id == Message.id, child.c.author_id == user_id),
                ~_own_task_blocks(Message.id, user_id, REPLY_KINDS, now),
                ~reserved_by_other,
                *([scope(Message.id)] if scope is not None else []),
            )
            .order_by(Message.tree_id, Message.id)
            .limit(CANDIDATE_LIMIT)
        )
    ).all()
    if not rows:
        return None
    # Our extension (answer_prompter_turns): a user turn still waiting for its answer comes first.
    open_turns = [r for r in rows if r.open_turn] if settings.answer_prompter_turns else []
    # Open-Assistant's "lonely children": a user turn with exactly one reply needs a second one to
    # become rankable.
    lonely = [r for r in rows if r.children == 1 and r.role == Role.PROMPTER]
    if open_turns:
        pool = open_turns
    elif lonely and ctx.rng.random() < settings.lonely_children_probability:
        pool = lonely
    else:
        pool = rows
    row = ctx.rng.choice(pool)
    kind = REPLY_KIND_FOR_PARENT[Role(row.role)]
    role = Role.ASSISTANT if kind == TaskKind.ASSISTANT_REPLY else Role.PROMPTER
    return _Candidate(kind, row.id, row.tree_id, {"role": str(role)})


async def _find_rank(session: AsyncSession, ctx: Context, user_id: int, lang: str,
                     kinds: set[TaskKind], scope: Scope | None = None) -> _Candidate | None:
    now = ctx.now()
    settings = ctx.settings
    child = Message.__table__.alias("child")
    accepted_children = (
        select(func.count()).select_from(child)
        .where(child.c.parent_id == Message.id, child.c.deleted.is_(False), child.c.review_result.is_(True))
        .scalar_subquery()
    )
    real_rankings = (
        select(func.count()).select_from(Ranking)
        .where(Ranking.parent_id == Message.id, Ranking.not_rankable.is_(False)).scalar_subquery()
    )
    not_rankable = (
        select(func.count()).select_from(Ranking)
        .where(Ranking.parent_id == Message.id, Ranking.not_rankable.is_(True)).scalar_subquery()
    )
    roles = [r for r in ranked_parent_roles(ctx) if RANK_KIND_FOR_PARENT[Role(r)] in kinds]
    if not roles:
        return None
    conditions = [
        Message.deleted.is_(False), Message.review_result.is_(True), Message.role.in_(roles),
        accepted_children >= 2,
        real_rankings < settings.rankings_needed,
        not_rankable < settings.rankings_needed,
        ~exists().where(Ranking.parent_id == Message.id, Ranking.user_id == user_id),
        # Nobody ranks a set holding their own reply.
        ~exists().where(child.c.parent_id == Message.id, child.c.author_id == user_id,
                        child.c.deleted.is_(False)),
        ~_own_task_blocks(Message.id, user_id, RANK_KINDS, now),
    ]
    if scope is not None:
        conditions.append(scope(Message.id))
    # A big campaign has thousands of trees in ranking per language. Checking every parent of all of
    # them and sorting the lot to keep the first RANK_CANDIDATES costs tens of milliseconds, so walk
    # the trees oldest first in pages (keyset on the tree id, pages growing so that a user with no
    # work left takes few round trips) and stop as soon as enough candidates are found: the same
    # rows, in the same order, as one query over every tree would give. Usually the first page has
    # enough, in one round trip; a page short of candidates also asks where it ended.
    rows: list[Any] = []
    after, page = 0, RANK_TREE_PAGE
    while len(rows) < RANK_CANDIDATES:
        trees = (
            select(MessageTree.id)
            .where(MessageTree.state.in_(RANKING_STATES), MessageTree.lang == lang, MessageTree.id > after)
            .order_by(MessageTree.id)
            .limit(page)
            .subquery()
        )
        rows += (
            await session.execute(
                select(Message.id, Message.tree_id, Message.role)
                .where(Message.tree_id.in_(select(trees.c.id)), *conditions)
                .order_by(Message.tree_id, Message.id)
                .limit(RANK_CANDIDATES - len(rows))
            )
        ).all()
        if len(rows) >= RANK_CANDIDATES:
            break
        walked, last = (await session.execute(select(func.count(), func.max(trees.c.id)))).one()
        if walked < page:
            break
        after, page = last, page * 4
    if not rows:
        return None
    row = ctx.rng.choice(rows)
    reply_ids = list(
        (
            await session.scalars(
                select(Message.id).where(Message.parent_id == row.id, Message.deleted.is_(False),
                                         Message.review_result.is_(True)).order_by(Message.id)
            )
        ).all()
    )
    ctx.rng.shuffle(reply_ids)
    return _Candidate(RANK_KIND_FOR_PARENT[Role(row.role)], row.id, row.tree_id, {"reply_ids": reply_ids})


async def find_candidate(session: AsyncSession, ctx: Context, group: str, user_id: int, lang: str,
                         kinds: set[TaskKind], scope: Scope | None = None) -> _Candidate | None:
    """Work of one weight group for this user, or None; ``scope`` narrows the target messages (a new
    prompt has no target, so it ignores the scope)."""
    if group == "initial_prompt":
        return await _find_initial_prompt(session, ctx, user_id, lang, kinds)
    if group == "label_prompt":
        return await _find_label(session, ctx, user_id, lang, kinds, prompts=True, scope=scope)
    if group == "label_reply":
        return await _find_label(session, ctx, user_id, lang, kinds, prompts=False, scope=scope)
    if group == "reply":
        return await _find_reply(session, ctx, user_id, lang, kinds, scope)
    return await _find_rank(session, ctx, user_id, lang, kinds, scope)


async def conversation(session: AsyncSession, message_id: int | None) -> tuple[MessageView, ...]:
    """The chain from the prompt down to ``message_id``, in one recursive query."""
    if message_id is None:
        return ()
    chain = select(Message.id, Message.parent_id).where(Message.id == message_id).cte("chain", recursive=True)
    chain = chain.union_all(select(Message.id, Message.parent_id).join(chain, Message.id == chain.c.parent_id))
    rows = (
        await session.execute(
            select(Message.id, Message.role, Message.text, Message.depth)
            .where(Message.id.in_(select(chain.c.id)))
            .order_by(Message.depth)
        )
    ).all()
    return tuple(MessageView(*row) for row in rows)


async def describe_task(session: AsyncSession, task: Task) -> TaskOffer:
    """Everything a cog needs to show the task (also to show an open task again)."""
    replies: tuple[MessageView, ...] = ()
    if task.kind in RANK_KINDS:
        ids = list(task.payload.get("reply_ids", []))
        found = {m.id: m for m in (await session.scalars(select(Message).where(Message.id.in_(ids)))).all()}
        replies = tuple(MessageView(i, found[i].role, found[i].text, found[i].depth) for i in ids if i in found)
    return TaskOffer(
        task_id=task.id, kind=TaskKind(task.kind), lang=task.lang, expires_at=task.expires_at,
        target_message_id=task.target_message_id, tree_id=task.tree_id,
        conversation=await conversation(session, task.target_message_id), replies=replies,
        label_names=tuple(task.payload.get("labels", ())), review_mode=task.payload.get("mode"),
        labels=label_specs(task.payload.get("labels", ())),
        reply_role=task.payload.get("role"),
    )


async def request_task(session: AsyncSession, ctx: Context, user_id: int, lang: str,
                       kinds: Collection[TaskKind] | None = None, scope: Scope | None = None) -> TaskOffer:
    """The best task for this user now, among ``kinds`` (default: every kind), in ``lang``; with
    ``scope``, only on the target messages it allows (e.g. the one a channel post shows).

    Raises NoTaskAvailable with reason banned, rate_limited (with retry_at), too_many_pending or no_work.
    """
    gate = await _gate(session, ctx, user_id)
    if gate.banned:
        raise NoTaskAvailable("banned")
    if gate.request_limit_from is not None:
        raise NoTaskAvailable("rate_limited", retry_at=gate.request_limit_from)
    if gate.pending >= ctx.settings.max_pending_tasks_per_user:
        raise NoTaskAvailable("too_many_pending")
    now = ctx.now()

    wanted = set(TaskKind) if kinds is None else {TaskKind(k) for k in kinds}
    if not ctx.settings.rank_prompter_replies:
        wanted.discard(TaskKind.RANK_PROMPTER_REPLIES)
    # Reply kinds the user is writing too fast for are left out; if that leaves nothing, say until when.
    retry_at = None
    if wanted & set(REPLY_KINDS):
        blocked = gate.reply_limit_from
        for kind, role in ((TaskKind.ASSISTANT_REPLY, Role.ASSISTANT), (TaskKind.PROMPTER_REPLY, Role.PROMPTER)):
            if kind in wanted and role in blocked:
                wanted.discard(kind)
                retry_at = blocked[role] if retry_at is None else min(retry_at, blocked[role])
    weights = ctx.settings.weights
    groups = {
        name: getattr(weights, name)
        for name, members in GROUPS.items()
        if wanted & set(members) and getattr(weights, name) > 0
    }
    while groups:
        names = sorted(groups)
        group = ctx.rng.choices(names, weights=[groups[n] for n in names])[0]
        candidate = await find_candidate(session, ctx, group, user_id, lang, wanted, scope)
        if candidate is None:
            del groups[group]
            continue
        task = Task(
            kind=candidate.kind, user_id=user_id, target_message_id=candidate.target_message_id,
            tree_id=candidate.tree_id, lang=lang, state=TaskState.OFFERED, payload=candidate.payload,
            created_at=now, expires_at=now + timedelta(hours=ctx.settings.task_expiry_hours),
        )
        session.add(task)
        await session.flush()
        return await describe_task(session, task)
    if retry_at is not None:
        raise NoTaskAvailable("rate_limited", "You are writing replies faster than allowed.", retry_at=retry_at)
    raise NoTaskAvailable("no_work")


@dataclass(frozen=True)
class WorkOverview:
    """What a user could do right now in a language (for a "what can I do?" view), and the campaign's
    trees by state there."""

    lang: str
    available: dict[str, bool]
    trees_by_state: dict[str, int]


async def work_overview(session: AsyncSession, ctx: Context, user_id: int, lang: str) -> WorkOverview:
    """Which weight groups (rank, label_reply, label_prompt, reply, initial_prompt) have work for this
    user now. Read-only: nothing is offered or reserved."""
    available = {}
    kinds = set(TaskKind)
    for group in GROUPS:
        available[group] = await find_candidate(session, ctx, group, user_id, lang, kinds) is not None
    rows = (await session.execute(
        select(MessageTree.state, func.count()).where(MessageTree.lang == lang).group_by(MessageTree.state)
    )).all()
    return WorkOverview(lang, available, {str(state): count for state, count in rows})
