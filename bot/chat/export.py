"""Chat ratings as training data: 👍 / 👎 on a reply become one line of TRL's KTO layout.

``{"prompt": [messages before the reply], "completion": [{"role": "assistant", ...}], "label": true}``
(``label`` is true for 👍), plus metadata: a pseudonymous ``user_id`` (the same hash as the oasst
layouts), ``model_name``, ``lang`` and our ids. Only finished replies count; opted-out users'
chats are left out. Read in batches of conversations (keyset pagination), like the other exports.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.enums import ChatMessageState, ChatRole
from storage.models import ChatConversation, ChatMessage, User


def locale_lang(locale: str | None) -> str | None:
    return locale.replace("_", "-").split("-")[0].lower() if locale else None


def prompt_chain(messages: dict[int, Any], parent_id: int | None, system_prompt: str | None) -> list[dict[str, str]]:
    """The conversation up to ``parent_id`` (oldest first) as chat messages, after the system prompt."""
    chain = []
    parent = messages.get(parent_id) if parent_id is not None else None
    while parent is not None:
        chain.append({"role": parent.role, "content": parent.text})
        parent = messages.get(parent.parent_id) if parent.parent_id is not None else None
    chain.reverse()
    if system_prompt:
        chain.insert(0, {"role": "system", "content": system_prompt})
    return chain


async def chat_ratings(
    sessions: async_sessionmaker[AsyncSession],
    langs: Sequence[str] | None,
    user_id: Callable[[int | None], str | None],
    *,
    batch_size: int,
) -> AsyncIterator[tuple[int, list[dict[str, Any]]]]:
    """Yield (conversations read so far, their KTO lines) in batches of conversations."""
    rated = ChatMessage.__table__.alias("rated")
    last_id = 0
    seen = 0
    while True:
        async with sessions() as session:
            conversations = (
                await session.execute(
                    select(ChatConversation.id, ChatConversation.system_prompt, ChatConversation.model_name,
                           User.locale, User.discord_id)
                    .join(User, User.id == ChatConversation.user_id)
                    .where(
                        ChatConversation.id > last_id,
                        User.opted_out.is_(False),
                        select(rated.c.id)
                        .where(rated.c.conversation_id == ChatConversation.id, rated.c.feedback.in_((1, -1)))
                        .exists(),
                    )
                    .order_by(ChatConversation.id)
                    .limit(batch_size)
                )
            ).all()
            if not conversations:
                return
            last_id = conversations[-1].id
            seen += len(conversations)
            messages = {
                row.id: row
                for row in await session.execute(
                    select(ChatMessage.id, ChatMessage.conversation_id, ChatMessage.parent_id, ChatMessage.role,
                           ChatMessage.text, ChatMessage.state, ChatMessage.model_name, ChatMessage.feedback)
                    .where(ChatMessage.conversation_id.in_([c.id for c in conversations]))
                    .order_by(ChatMessage.id)
                )
            }
        info = {c.id: c for c in conversations}
        lines = []
        for message in messages.values():
            if (message.role != ChatRole.ASSISTANT or message.feedback not in (1, -1)
                    or message.state != ChatMessageState.COMPLETE):
                continue
            conversation = info[message.conversation_id]
            lang = locale_lang(conversation.locale)
            if langs and lang not in langs:
                continue
            record = {
                "prompt": prompt_chain(messages, message.parent_id, conversation.system_prompt),
                "completion": [{"role": "assistant", "content": message.text}],
                "label": message.feedback == 1,
                "source": "chat",
                "user_id": user_id(conversation.discord_id),
                "model_name": message.model_name or conversation.model_name,
                "lang": lang,
                "conversation_id": str(conversation.id),
                "message_id": str(message.id),
            }
            lines.append({key: value for key, value in record.items() if value is not None})
        yield seen, lines
