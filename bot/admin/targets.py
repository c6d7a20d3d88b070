"""What a moderator points at: a Discord message link, the Discord id of a bot post, or our own id.

A bot post may show several tree messages (a ranking post shows every reply), so a post resolves to a
list of our message ids through ``post_message_ids`` (and back through ``posts_of``), both through the
post-message mapping (bot_posts, post_messages).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.labelling.errors import LabellingError
from storage.ids import MAX_DISCORD_ID, MAX_ROW_ID
from storage.models import BotPost, Message, MessageTree, PostMessage

LINK = re.compile(
    r"<?https?://(?:(?:ptb|canary)\.)?discord(?:app)?\.com/channels/(?:[0-9]+|@me)/[0-9]+/(?P<message>[0-9]+)>?"
)
NUMBER = re.compile(r"#?(?P<number>[0-9]{1,20})")


class TargetError(LabellingError):
    default_messages = {
        "bad_target": ("Give a Discord message link (Copy Message Link), the id of a bot post, or our "
                       "message number. Nothing was changed."),
        "message_not_found": "No campaign message matches that. Nothing was changed.",
        "tree_not_found": "No conversation tree matches that. Nothing was changed.",
        "not_a_post": "That Discord message is not a campaign post of this bot.",
    }


@dataclass(frozen=True)
class TargetRef:
    """A parsed target: a Discord message (from a link), or a bare number (a post id or our id)."""

    discord_message_id: int | None = None
    number: int | None = None


def parse_target(text: str) -> TargetRef:
    text = text.strip()
    link = LINK.fullmatch(text)
    if link and int(link["message"]) <= MAX_DISCORD_ID:
        return TargetRef(discord_message_id=int(link["message"]))
    number = NUMBER.fullmatch(text)
    if number and int(number["number"]) <= MAX_DISCORD_ID:
        return TargetRef(number=int(number["number"]))
    raise TargetError("bad_target")


async def post_message_ids(session: AsyncSession, discord_message_id: int) -> list[int]:
    """Our messages that a bot post (by its Discord message id) is about, oldest first: its subject and
    the replies it ranks (the conversation above them is only context)."""
    return list((await session.scalars(
        select(PostMessage.message_id).join(BotPost, BotPost.id == PostMessage.post_id)
        .where(BotPost.discord_message_id == discord_message_id, PostMessage.role != "context")
        .order_by(PostMessage.message_id)
    )).all())


async def posts_of(session: AsyncSession, message_ids: list[int]) -> list[tuple[int, int]]:
    """(channel id, Discord message id) of the bot posts that show these messages: the reverse lookup
    through the post-message mapping (indexed by message)."""
    if not message_ids:
        return []
    rows = await session.execute(
        select(BotPost.channel_id, BotPost.discord_message_id).distinct()
        .join(PostMessage, PostMessage.post_id == BotPost.id)
        .where(PostMessage.message_id.in_(message_ids)).order_by(BotPost.discord_message_id)
    )
    return [(int(channel), int(post)) for channel, post in rows.all()]


def _one(ids: list[int]) -> int:
    if len(ids) > 1:
        listed = ", ".join(f"#{i}" for i in ids[:20])
        raise TargetError("several_messages",
                          f"That post shows several messages ({listed}); give the number of the one you mean.")
    return ids[0]


async def resolve_message(session: AsyncSession, ref: TargetRef) -> Message:
    """A link must be a bot post; a bare number is a bot post's id first, else our message id."""
    if ref.discord_message_id is not None:
        ids = await post_message_ids(session, ref.discord_message_id)
        if not ids:
            raise TargetError("not_a_post")
        message_id = _one(ids)
    else:
        assert ref.number is not None
        ids = await post_message_ids(session, ref.number)
        message_id = _one(ids) if ids else ref.number
    # A bare number too big for a row id is no message of ours (and could not be looked up).
    message = await session.get(Message, message_id) if message_id <= MAX_ROW_ID else None
    if message is None:
        raise TargetError("message_not_found")
    return message


async def resolve_post(session: AsyncSession, discord_message_id: int) -> Message:
    """The message a right-clicked bot post shows."""
    return await resolve_message(session, TargetRef(discord_message_id=discord_message_id))


async def resolve_tree(session: AsyncSession, ref: TargetRef) -> MessageTree:
    """A link or post id names the tree its messages belong to; a bare number that is no post is a tree id."""
    post = ref.discord_message_id if ref.discord_message_id is not None else ref.number
    ids = await post_message_ids(session, post) if post is not None else []
    if ref.discord_message_id is not None and not ids:
        raise TargetError("not_a_post")
    if ids:
        tree_id = await session.scalar(select(Message.tree_id).where(Message.id == ids[0]))
    else:
        tree_id = ref.number
    tree = await session.get(MessageTree, tree_id) if tree_id is not None and tree_id <= MAX_ROW_ID else None
    if tree is None:
        raise TargetError("tree_not_found")
    return tree
