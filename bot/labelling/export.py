"""Export the collected data: oasst1 trees and messages, preference pairs, SFT conversations.

Formats (one JSON object per line; gzip when the file name ends in ``.gz``):

``oasst-trees``
    ``{message_tree_id, tree_state, prompt}`` with the root message nested; each message carries
    message_id, parent_id, user_id, created_date (ISO 8601), text, role (prompter|assistant), lang,
    review_count, review_result, deleted, rank, synthetic, model_name, emojis {code: count},
    labels {name: {value: mean, count}} and replies (by rank, unranked ones after them, then by
    creation). As in oasst1, nested messages do not repeat the tree's id and state.
``oasst-messages``
    The flat Hugging Face layout: one message per line, depth first, without replies, with
    message_tree_id and tree_state, emojis as {name: [...], count: [...]} and labels as
    {name: [...], value: [...], count: [...]}.
``preferences``
    TRL's conversational preference layout, ``{prompt: [...], chosen: [...], rejected: [...]}``
    with messages ``{role: system|user|assistant, content}``, plus metadata. From the trees: one
    pair per pair of accepted, non-deleted assistant siblings of different consensus rank
    (``source: "ranking"``). From the chat tables: one pair per ChatPreference (``source: "chat"``,
    with ``model_name``); the prompt is the chain of messages up to the answered turn, after the
    conversation's system prompt when it has one.
``ratings``
    TRL's KTO layout, ``{prompt: [...], completion: [...], label: bool}``: one line per chat reply
    its owner rated 👍 (true) or 👎 (false), with a pseudonymous ``user_id`` (see
    ``bot.chat.export``).
``sft``
    ``{messages: [...]}`` along the best path of each tree: from the prompt, the rank-0 accepted
    child at each step (without ranks, the first accepted child by creation), cut after the last
    assistant message.

Decisions:

* Ids. Message ids are our integer ids as decimal strings: stable across exports, short, and
  joinable with the database. ``message_tree_id`` is the id of the tree's prompt, the oasst1
  convention (there a tree's id is its root message's id), not our ``message_trees.id``.
* User ids are pseudonymous unless ``raw_ids`` (see ``bot.labelling.pseudonyms`` for the hash and
  where the salt comes from); raw ids are Discord user ids. Only the oasst layouts carry user ids;
  preferences and sft carry none, so they need no salt.
* Empty fields are dropped: None, empty dicts and lists. False and 0 are kept (``deleted: false``,
  ``rank: 0``), as in oasst1.
* Opted-out users: their chats are left out, and so are their tree messages together with the
  subtree below each (a reply cannot stand without its parent); a tree whose prompt they wrote
  is left out whole. Deleted messages go the same way unless ``include_deleted`` (then they
  appear with ``deleted: true``); the training formats (preferences, sft) never use deleted,
  rejected or unreviewed messages.
* Filters: ``lang`` and ``states`` select trees. Chat pairs have no tree: ``states`` does not
  apply to them, and their language is the conversation owner's locale (``en`` from ``en-US``).

Memory stays bounded: trees are read in batches by keyset pagination on their id (one short read
transaction per batch, so a live bot's writers are not held up), chat pairs likewise by
conversation id, and lines go to the file as each batch is done. The file is written under a
temporary name and renamed at the end, so a failed export never leaves a truncated file behind.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import String, func, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.chat.export import chat_ratings
from bot.labelling.pseudonyms import resolve_salt, user_id_mapper
from storage.enums import ChatMessageState, Role, TreeState
from storage.models import (
    ChatConversation,
    ChatMessage,
    ChatPreference,
    Label,
    Message,
    MessageTree,
    Reaction,
    User,
)

# One encoder for the whole run: json.dumps with any option builds a new encoder on every call.
_ENCODER = json.JSONEncoder(ensure_ascii=False)
FORMATS = ("oasst-trees", "oasst-messages", "preferences", "sft", "ratings")
DEFAULT_STATES = (TreeState.READY_FOR_EXPORT.value,)
BATCH_TREES = 250


@dataclass(slots=True, eq=False)
class _Node:
    id: int
    parent_id: int | None
    role: str
    text: str
    lang: str
    review_count: int
    review_result: bool | None
    rank: int | None
    synthetic: bool
    model_name: str | None
    deleted: bool
    created_at: datetime
    user_id: str | None
    opted_out: bool
    emojis: dict[str, int] = field(default_factory=dict)
    labels: dict[str, tuple[float, int]] = field(default_factory=dict)
    replies: list[_Node] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        """Fit for training: accepted and not deleted."""
        return self.review_result is True and not self.deleted

    def sort_key(self) -> tuple[bool, int, datetime, int]:
        return (self.rank is None, self.rank or 0, self.created_at, self.id)


@dataclass(slots=True)
class _Tree:
    id: int
    state: str
    lang: str
    prompt: _Node


def _utc(value: str | datetime) -> datetime:
    """SQLite hands back its stored UTC text, PostgreSQL a datetime."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _compact(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if v is not None and v != {} and v != []}


def _listify(value: str | Iterable[str] | None) -> tuple[str, ...] | None:
    """Accept "a", "a,b" or ["a", "b,c"]; None stays None (no filter)."""
    if value is None:
        return None
    items = [value] if isinstance(value, str) else list(value)
    out = tuple(part.strip() for item in items for part in item.split(",") if part.strip())
    return out or None


# ---------------------------------------------------------------- reading trees in batches


def _tree_filter(states: Sequence[str], langs: Sequence[str] | None) -> list[Any]:
    where = [MessageTree.state.in_(states)]
    if langs:
        where.append(MessageTree.lang.in_(langs))
    return where


async def _count_trees(sessions: async_sessionmaker[AsyncSession], where: list[Any]) -> int:
    async with sessions() as session:
        return int((await session.execute(select(func.count()).select_from(MessageTree).where(*where))).scalar())


_MESSAGE_COLUMNS = (
    Message.id,
    Message.tree_id,
    Message.parent_id,
    Message.role,
    Message.text,
    Message.lang,
    Message.review_count,
    Message.review_result,
    Message.rank,
    Message.synthetic,
    Message.model_name,
    Message.deleted,
    # As stored: UTCDateTime's per-row conversion is a good part of the export's time on SQLite.
    type_coerce(Message.created_at, String),
    User.discord_id,
    User.opted_out,
)


@dataclass(slots=True)
class _Batch:
    heads: list[Any]  # (tree id, state, lang)
    rows: list[Any]  # _MESSAGE_COLUMNS
    emojis: dict[int, dict[str, int]]
    labels: dict[int, dict[str, tuple[float, int]]]


async def _fetch_batch(
    sessions: async_sessionmaker[AsyncSession], where: list[Any], after: int, limit: int, with_annotations: bool
) -> _Batch:
    # Core rows through the session's connection: the ORM's per-row bookkeeping would cost more
    # than the query itself.
    async with sessions() as session:
        conn = await session.connection()
        heads = (
            await conn.execute(
                select(MessageTree.id, MessageTree.state, MessageTree.lang)
                .where(*where, MessageTree.id > after)
                .order_by(MessageTree.id)
                .limit(limit)
            )
        ).all()
        batch = _Batch(heads, [], defaultdict(dict), defaultdict(dict))
        if not heads:
            return batch
        ids = [row[0] for row in heads]
        batch.rows = (
            await conn.execute(
                select(*_MESSAGE_COLUMNS)
                .outerjoin(User, User.id == Message.author_id)
                .where(Message.tree_id.in_(ids))
            )
        ).all()
        if with_annotations:
            for message_id, emoji, count in (await conn.execute(
                select(Reaction.message_id, Reaction.emoji, func.count())
                .join(Message, Message.id == Reaction.message_id)
                .where(Message.tree_id.in_(ids))
                .group_by(Reaction.message_id, Reaction.emoji)
            )).all():
                batch.emojis[message_id][emoji] = count
            for message_id, name, mean, count in (await conn.execute(
                select(Label.message_id, Label.name, func.avg(Label.value), func.count())
                .join(Message, Message.id == Label.message_id)
                .where(Message.tree_id.in_(ids))
                .group_by(Label.message_id, Label.name)
            )).all():
                batch.labels[message_id][name] = (float(mean), count)
        return batch


async def _tree_batches(
    sessions: async_sessionmaker[AsyncSession],
    where: list[Any],
    *,
    batch_size: int,
    with_annotations: bool,
    include_deleted: bool,
    user_id: Any,
) -> AsyncIterator[tuple[int, list[_Tree]]]:
    """Yield (trees read so far, the batch's exportable trees)."""
    # Reading the next batch while writing this one was measured: no gain, both sides need the GIL.
    seen = 0
    after = 0
    while True:
        batch = await _fetch_batch(sessions, where, after, batch_size, with_annotations)
        if not batch.heads:
            return
        seen += len(batch.heads)
        after = batch.heads[-1][0]
        by_tree: dict[int, list[_Node]] = defaultdict(list)
        emojis, labels = batch.emojis, batch.labels
        for row in batch.rows:
            node = _Node(
                row[0], row[2], row[3], row[4], row[5], row[6], row[7], row[8], bool(row[9]), row[10],
                bool(row[11]), _utc(row[12]), user_id(row[13]), bool(row[14]),
            )
            if with_annotations:
                node.emojis = emojis.get(node.id, {})
                node.labels = labels.get(node.id, {})
            by_tree[row[1]].append(node)
        trees = []
        for tree_id, state, lang in batch.heads:
            prompt = _assemble(by_tree.get(tree_id, ()), include_deleted)
            if prompt is not None:
                trees.append(_Tree(tree_id, state, lang, prompt))
        yield seen, trees


def _assemble(nodes: Iterable[_Node], include_deleted: bool) -> _Node | None:
    """Link a tree's messages; drop excluded messages with their subtrees. Returns the prompt."""
    children: dict[int | None, list[_Node]] = defaultdict(list)
    for node in nodes:
        if node.opted_out or (node.deleted and not include_deleted):
            continue  # its subtree becomes unreachable below
        children[node.parent_id].append(node)
    roots = children.get(None)
    if not roots:
        return None
    # Iterative walk: depth is a setting, not something the stack should have to trust.
    root = min(roots, key=lambda n: (n.created_at, n.id))
    stack = [root]
    while stack:
        node = stack.pop()
        node.replies = sorted(children.get(node.id, ()), key=_Node.sort_key)
        stack.extend(node.replies)
    return root


# ---------------------------------------------------------------- the formats


def _message_record(node: _Node) -> dict[str, Any]:
    """The message's own fields, empty ones left out (built directly: this runs once per message)."""
    record: dict[str, Any] = {"message_id": str(node.id)}
    if node.parent_id is not None:
        record["parent_id"] = str(node.parent_id)
    if node.user_id is not None:
        record["user_id"] = node.user_id
    record["created_date"] = node.created_at.isoformat()
    record["text"] = node.text
    record["role"] = node.role
    if node.lang:
        record["lang"] = node.lang
    record["review_count"] = node.review_count
    if node.review_result is not None:
        record["review_result"] = node.review_result
    record["deleted"] = node.deleted
    if node.rank is not None:
        record["rank"] = node.rank
    record["synthetic"] = node.synthetic
    if node.model_name:
        record["model_name"] = node.model_name
    return record


def _nested(node: _Node) -> dict[str, Any]:
    record = _message_record(node)
    if node.emojis:
        record["emojis"] = dict(sorted(node.emojis.items()))
    if node.labels:
        record["labels"] = {name: {"value": mean, "count": count} for name, (mean, count) in sorted(node.labels.items())}
    if node.replies:
        record["replies"] = [_nested(child) for child in node.replies]
    return record


def _tree_lines(tree: _Tree) -> Iterator[dict[str, Any]]:
    yield {"message_tree_id": str(tree.prompt.id), "tree_state": tree.state, "prompt": _nested(tree.prompt)}


def _depth_first(root: _Node) -> Iterator[_Node]:
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node.replies))


def _message_lines(tree: _Tree) -> Iterator[dict[str, Any]]:
    tree_id = str(tree.prompt.id)
    for node in _depth_first(tree.prompt):
        record = _message_record(node)
        record["message_tree_id"] = tree_id
        record["tree_state"] = tree.state
        if node.emojis:
            names = sorted(node.emojis)
            record["emojis"] = {"name": names, "count": [node.emojis[n] for n in names]}
        if node.labels:
            names = sorted(node.labels)
            record["labels"] = {
                "name": names,
                "value": [node.labels[n][0] for n in names],
                "count": [node.labels[n][1] for n in names],
            }
        yield record


def _turn(node: _Node) -> dict[str, str]:
    return {"role": "user" if node.role == Role.PROMPTER else "assistant", "content": node.text}


def _preference_lines(tree: _Tree) -> Iterator[dict[str, Any]]:
    if not tree.prompt.usable:
        return
    tree_id = str(tree.prompt.id)
    # Walk usable paths only; `path` is the conversation up to and including `node`.
    stack: list[tuple[_Node, list[dict[str, str]]]] = [(tree.prompt, [_turn(tree.prompt)])]
    while stack:
        node, path = stack.pop()
        usable = [child for child in node.replies if child.usable]
        ranked = [c for c in usable if c.role == Role.ASSISTANT and c.rank is not None]
        for i, better in enumerate(ranked):
            for worse in ranked[i + 1 :]:
                if better.rank == worse.rank:
                    continue  # a tie says nothing about which is better
                yield {
                    "prompt": path,
                    "chosen": [_turn(better)],
                    "rejected": [_turn(worse)],
                    "source": "ranking",
                    "message_tree_id": tree_id,
                    "lang": tree.lang,
                    "parent_id": str(node.id),
                    "chosen_id": str(better.id),
                    "rejected_id": str(worse.id),
                    "chosen_rank": better.rank,
                    "rejected_rank": worse.rank,
                }
        for child in reversed(usable):
            stack.append((child, [*path, _turn(child)]))


def _sft_lines(tree: _Tree) -> Iterator[dict[str, Any]]:
    node = tree.prompt
    if not node.usable:
        return
    path = [node]
    while True:
        # Replies are already in rank order (unranked after, by creation), so the first usable wins.
        node = next((child for child in node.replies if child.usable), None)
        if node is None:
            break
        path.append(node)
    while path and path[-1].role != Role.ASSISTANT:
        path.pop()
    if path:
        yield {
            "messages": [_turn(n) for n in path],
            "message_tree_id": str(tree.prompt.id),
            "lang": tree.lang,
        }


_TREE_FORMATS = {
    "oasst-trees": _tree_lines,
    "oasst-messages": _message_lines,
    "preferences": _preference_lines,
    "sft": _sft_lines,
}


# ---------------------------------------------------------------- chat preference pairs


def _locale_lang(locale: str | None) -> str | None:
    return locale.replace("_", "-").split("-")[0].lower() if locale else None


async def _chat_pairs(
    sessions: async_sessionmaker[AsyncSession], langs: Sequence[str] | None, *, batch_size: int
) -> AsyncIterator[tuple[int, list[dict[str, Any]]]]:
    """Yield (conversations read so far, their pairs) in batches of conversations."""
    last_id = 0
    seen = 0
    chosen = ChatMessage.__table__.alias("chosen")
    while True:
        async with sessions() as session:
            conversations = (
                await session.execute(
                    select(
                        ChatConversation.id,
                        ChatConversation.system_prompt,
                        ChatConversation.model_name,
                        User.locale,
                    )
                    .join(User, User.id == ChatConversation.user_id)
                    .where(
                        ChatConversation.id > last_id,
                        User.opted_out.is_(False),
                        # Correlated, so each conversation is checked through the indexes.
                        select(chosen.c.id)
                        .join(ChatPreference, ChatPreference.chosen_id == chosen.c.id)
                        .where(chosen.c.conversation_id == ChatConversation.id)
                        .exists(),
                    )
                    .order_by(ChatConversation.id)
                    .limit(batch_size)
                )
            ).all()
            if not conversations:
                return
            last_id = conversations[-1][0]
            seen += len(conversations)
            ids = [row[0] for row in conversations]
            messages = {
                row[0]: row
                for row in await session.execute(
                    select(
                        ChatMessage.id,
                        ChatMessage.conversation_id,
                        ChatMessage.parent_id,
                        ChatMessage.role,
                        ChatMessage.text,
                        ChatMessage.state,
                        ChatMessage.model_name,
                    ).where(ChatMessage.conversation_id.in_(ids))
                )
            }
            preferences = (
                await session.execute(
                    select(ChatPreference.chosen_id, ChatPreference.rejected_id)
                    .join(chosen, chosen.c.id == ChatPreference.chosen_id)
                    .where(chosen.c.conversation_id.in_(ids))
                    .order_by(chosen.c.conversation_id, ChatPreference.id)
                )
            ).all()

        info = {row[0]: row for row in conversations}
        pairs = []
        for chosen_id, rejected_id in preferences:
            good, bad = messages.get(chosen_id), messages.get(rejected_id)
            if good is None or bad is None or good[1] != bad[1]:
                continue  # a pair across conversations is not a pair for the same prompt
            if good[5] != ChatMessageState.COMPLETE or bad[5] != ChatMessageState.COMPLETE:
                continue  # a cancelled or failed answer is not what the user judged
            if good[4].strip() == bad[4].strip():
                continue  # the same text twice teaches nothing
            conversation_id, system_prompt, conv_model, locale = info[good[1]]
            lang = _locale_lang(locale)
            if langs and lang not in langs:
                continue
            chain = []
            parent = messages.get(good[2]) if good[2] is not None else None
            while parent is not None:
                chain.append({"role": parent[3], "content": parent[4]})
                parent = messages.get(parent[2]) if parent[2] is not None else None
            chain.reverse()
            if system_prompt:
                chain.insert(0, {"role": "system", "content": system_prompt})
            pairs.append(
                _compact(
                    {
                        "prompt": chain,
                        "chosen": [{"role": "assistant", "content": good[4]}],
                        "rejected": [{"role": "assistant", "content": bad[4]}],
                        "source": "chat",
                        "model_name": good[6] or conv_model,
                        "rejected_model_name": bad[6] if bad[6] and bad[6] != (good[6] or conv_model) else None,
                        "lang": lang,
                        "conversation_id": str(conversation_id),
                        "chosen_id": str(chosen_id),
                        "rejected_id": str(rejected_id),
                    }
                )
            )
        yield seen, pairs


# ---------------------------------------------------------------- output


class _Progress:
    """A one-line progress bar on stderr; silent unless stderr is a terminal."""

    def __init__(self, enabled: bool, total: int, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled and self.stream.isatty()
        self.total = total
        self.start = time.monotonic()
        self.last_draw = 0.0

    def update(self, what: str, done: int, lines: int, *, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self.last_draw < 0.2:
            return
        self.last_draw = now
        rate = lines / max(now - self.start, 1e-9)
        if what == "trees" and self.total:
            width = 30
            filled = min(width, width * done // self.total)
            bar = f"[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} trees"
        else:
            bar = f"{done} {what}"
        # \x1b[K clears what a longer previous line left behind (only ever written to a terminal).
        self.stream.write(f"\r{bar}  {lines} lines  {rate:,.0f} lines/s\x1b[K")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def _open(path: Path, *, compress: bool) -> IO[str]:
    if compress:
        # Level 6: nearly the size of 9 at a fraction of the time.
        return gzip.open(path, "wt", encoding="utf-8", compresslevel=6)
    return path.open("w", encoding="utf-8")


def _database_url(sessions: async_sessionmaker[AsyncSession]) -> str | None:
    bind = sessions.kw.get("bind")
    return None if bind is None else bind.url.render_as_string(hide_password=False)


async def export(
    sessions: async_sessionmaker[AsyncSession],
    fmt: str,
    out_path: str | os.PathLike[str],
    *,
    lang: str | Iterable[str] | None = None,
    states: str | Iterable[str] = DEFAULT_STATES,
    include_deleted: bool = False,
    raw_ids: bool = False,
    salt: str | None = None,
    progress: bool = False,
    batch_size: int = BATCH_TREES,
    on_progress: Callable[[int, int, int], None] | None = None,
) -> int:
    """Write the export to ``out_path`` and return the number of lines written. ``on_progress(trees
    read, trees in all, lines written)`` is called after each batch (e.g. to show progress in Discord)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    state_list = _listify(states) or DEFAULT_STATES
    unknown = sorted(set(state_list) - {s.value for s in TreeState})
    if unknown:
        raise ValueError(f"unknown tree state {', '.join(unknown)}; known: {', '.join(s.value for s in TreeState)}")
    langs = _listify(lang)
    if batch_size < 1:
        raise ValueError("batch_size must be positive")

    # The oasst layouts and the ratings show user ids; the pair formats need no salt.
    needs_ids = fmt in ("oasst-trees", "oasst-messages", "ratings")
    user_id = user_id_mapper(
        resolve_salt(salt, _database_url(sessions)) if needs_ids and not raw_ids else None,
        raw=raw_ids or not needs_ids,
    )
    to_lines = _TREE_FORMATS.get(fmt)
    where = _tree_filter(state_list, langs)

    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    counted = progress or on_progress is not None
    bar = _Progress(progress, await _count_trees(sessions, where) if counted else 0)
    lines = 0
    try:
        with _open(partial, compress=path.suffix == ".gz") as out:

            encode = _ENCODER.encode

            def write(records: Iterable[dict[str, Any]]) -> int:
                count = 0
                for record in records:
                    out.write(encode(record))
                    out.write("\n")
                    count += 1
                return count

            if to_lines is not None:
                batches = _tree_batches(
                    sessions,
                    where,
                    batch_size=batch_size,
                    with_annotations=fmt in ("oasst-trees", "oasst-messages"),
                    include_deleted=include_deleted,
                    user_id=user_id,
                )
                # aclosing: after an error the generator's cleanup must run now, not once the loop is gone.
                async with contextlib.aclosing(batches):
                    async for seen, trees in batches:
                        for tree in trees:
                            lines += write(to_lines(tree))
                        bar.update("trees", seen, lines)
                        if on_progress is not None:
                            on_progress(seen, bar.total, lines)
                bar.update("trees", bar.total, lines, force=True)
            if fmt == "ratings":
                ratings = chat_ratings(sessions, langs, user_id, batch_size=batch_size)
                async with contextlib.aclosing(ratings):
                    seen = 0
                    async for seen, records in ratings:
                        lines += write(records)
                        bar.update("chat conversations", seen, lines)
                bar.update("chat conversations", seen, lines, force=True)
            if fmt == "preferences":
                pairs = _chat_pairs(sessions, langs, batch_size=batch_size)
                async with contextlib.aclosing(pairs):
                    seen = 0
                    async for seen, records in pairs:
                        lines += write(records)
                        bar.update("chat conversations", seen, lines)
                bar.update("chat conversations", seen, lines, force=True)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        bar.close()
    return lines
