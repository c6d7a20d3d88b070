"""DM chat: stored conversations, token-budgeted context, feedback and preference pairs.

Discord-free: the chat cog calls these methods with Discord user ids and renders the results.
A message is accepted (rate limit, length, replays) the moment it arrives: the user's text and its
reply row (state ``generating``) are stored at once, so a crash or a restart never loses what a
user wrote and rate limits count regenerations too. The reply is generated later, one turn at a
time per user (``user_lock``), through ``start_generation``: the context is read then, so a quick
second message sees the first reply.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.chat.locks import KeyedLocks
from bot.chat.sampling import reply_params
from bot.chat.text import storable
from bot.config import ChatSettings
from model_runner import ChatRunner
from model_runner.params import PRESETS
from storage.enums import ChatMessageState, ChatRole
from storage.models import ChatConversation, ChatMessage, ChatPreference, User
from storage.users import get_or_create_user, insert_ignoring_conflicts

if TYPE_CHECKING:
    from bot.chat.generation import PositionCallback, ReplyGeneration

PRESET_NAMES = tuple(PRESETS)
GENERATING = ChatMessageState.GENERATING
# Tokens a chat template adds around each message (ChatML: "<|im_start|>role\n" ... "<|im_end|>\n").
TEMPLATE_TOKENS_PER_MESSAGE = 5
# The header that opens the reply ("<|im_start|>assistant\n").
GENERATION_PROMPT_TOKENS = 3


class ChatError(Exception):
    """A request the service refuses; `message` is safe to show to the user."""

    reason = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RateLimited(ChatError):
    reason = "rate_limited"

    def __init__(self, retry_at: datetime, limit: int, minutes: int) -> None:
        super().__init__(f"You can send {limit} chat messages every {minutes} minutes. Try again later.")
        self.retry_at = retry_at


class InvalidInput(ChatError):
    reason = "invalid_input"


class MessageTooLong(InvalidInput):
    reason = "too_long"

    def __init__(self, length: int, max_chars: int) -> None:
        if max_chars <= 0:
            text = ("Your system prompt leaves me no room to read a message: shorten it with /chat system "
                    "or reset it.")
        else:
            text = (f"Your message is too long for me to read at once: I can take about {max_chars} characters "
                    f"and yours has {length}. Please shorten it or split it over several messages.")
        super().__init__(text)
        self.max_chars = max_chars


class Duplicate(ChatError):
    """The same Discord message arrived again (a replayed gateway event): it is answered once."""

    reason = "duplicate"


class NotFound(ChatError):
    reason = "not_found"


class NotYours(ChatError):
    reason = "not_yours"


class NotCurrent(ChatError):
    reason = "not_current"


@dataclass(frozen=True)
class ChatTurn:
    """Everything the cog needs to ask the model for one reply."""

    conversation_id: int
    user_discord_id: int
    user_message_id: int
    reply_id: int
    messages: list[dict[str, str]]
    dropped_messages: int
    preset: str
    owner_key: str
    conversation_key: str
    # Another answer to the same message exists: sample differently (see bot.chat.sampling).
    regeneration: bool = False
    channel_id: int | None = None
    # Discord messages an interrupted attempt already streamed into; the reply is finished there.
    page_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class ShownReply:
    """A reply posted in Discord whose buttons may need redrawing."""

    reply_id: int
    discord_message_id: int
    feedback: int | None
    kept: bool


@dataclass(frozen=True)
class AcceptedMessage:
    """A stored user message (or regeneration request) whose reply is still to be written."""

    reply_id: int
    user_discord_id: int


@dataclass(frozen=True)
class Resumable:
    """A reply a restart interrupted: finish it in ``page_ids`` (or a new message) in ``channel_id``."""

    reply_id: int
    user_discord_id: int
    channel_id: int | None
    page_ids: tuple[int, ...]


@dataclass(frozen=True)
class UserChatSettings:
    system_prompt: str
    custom_system_prompt: bool
    preset: str
    opted_out: bool


@dataclass(frozen=True)
class KeepResult:
    pairs_recorded: int
    alternatives: list[int]
    # The other alternatives shown in Discord: their Keep button no longer shows as chosen.
    others_shown: list[ShownReply]


def budget_context(
    system_prompt: str | None,
    history: list[tuple[str, str, int]],
    max_prompt_tokens: int,
    system_tokens: int,
) -> tuple[list[dict[str, str]], int]:
    """The system prompt plus the newest (role, text, tokens) turns that fit; returns (messages, dropped).

    The newest message is always kept (``accept_message`` refused it if it alone cannot fit, so
    it fits unless the system prompt grew since); older turns go first and a conversation never
    starts on an assistant turn.
    """
    budget = max_prompt_tokens - (system_tokens + TEMPLATE_TOKENS_PER_MESSAGE if system_prompt else 0)
    kept: list[tuple[str, str, int]] = []
    for role, text, tokens in reversed(history):
        cost = tokens + TEMPLATE_TOKENS_PER_MESSAGE
        if kept and cost > budget:
            break
        kept.append((role, text, tokens))
        budget -= cost
    kept.reverse()
    while len(kept) > 1 and kept[0][0] == ChatRole.ASSISTANT:
        kept.pop(0)
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages += [{"role": role, "content": text} for role, text, _tokens in kept]
    return messages, len(history) - len(kept)


class ChatService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: ChatSettings,
                 runner: ChatRunner) -> None:
        self.sessions = sessions
        self.settings = settings
        self.runner = runner
        self._token_cache: dict[str, int] = {}
        self._user_locks = KeyedLocks()
        # Short: one reply opened at a time per user, so that messages arriving together are counted
        # against the rate limit one after another, and a double click opens one answer.
        self._opening_locks = KeyedLocks()

    @property
    def model_name(self) -> str:
        return self.runner.model_name

    def user_lock(self, discord_id: int) -> Any:
        """``async with chat.user_lock(id):`` one reply at a time per user, so each sees the last."""
        return self._user_locks(discord_id)

    async def _tokens(self, text: str) -> int:
        # History is recounted every turn; caching by text keeps that to one tokenisation per message.
        cached = self._token_cache.get(text)
        if cached is None:
            cached = await self.runner.count_tokens(text)
            if len(self._token_cache) > 20_000:
                self._token_cache.clear()
            self._token_cache[text] = cached
        return cached

    # ----- per-user settings -------------------------------------------------------------------

    def _effective(self, user: User) -> UserChatSettings:
        return UserChatSettings(
            system_prompt=user.chat_system_prompt or self.settings.system_prompt,
            custom_system_prompt=user.chat_system_prompt is not None,
            preset=user.chat_preset or self.settings.preset,
            opted_out=user.opted_out,
        )

    async def user_settings(self, discord_id: int, *, display_name: str | None = None) -> UserChatSettings:
        async with self.sessions() as session:
            user = await get_or_create_user(session, discord_id, display_name=display_name)
            await session.commit()
            return self._effective(user)

    async def set_system_prompt(self, discord_id: int, text: str | None, *,
                                display_name: str | None = None) -> UserChatSettings:
        """Set (or with None/blank, reset) the user's system prompt; applies to the current conversation."""
        text = storable(text or "").strip() or None
        if text is not None and len(text) > self.settings.max_system_prompt_chars:
            raise InvalidInput(
                f"A system prompt can be at most {self.settings.max_system_prompt_chars} characters "
                f"(yours has {len(text)})."
            )
        async with self.sessions() as session:
            user = await get_or_create_user(session, discord_id, display_name=display_name)
            user.chat_system_prompt = text
            await session.execute(
                update(ChatConversation)
                .where(ChatConversation.user_id == user.id, ChatConversation.active.is_(True))
                .values(system_prompt=text or self.settings.system_prompt)
            )
            await session.commit()
            return self._effective(user)

    async def set_preset(self, discord_id: int, preset: str, *, display_name: str | None = None) -> UserChatSettings:
        if preset not in PRESET_NAMES:
            raise InvalidInput(f"Unknown preset '{preset}'. Choose one of: {', '.join(PRESET_NAMES)}.")
        async with self.sessions() as session:
            user = await get_or_create_user(session, discord_id, display_name=display_name)
            user.chat_preset = preset
            await session.commit()
            return self._effective(user)

    async def set_opt_out(self, discord_id: int, opted_out: bool, *,
                          display_name: str | None = None) -> UserChatSettings:
        async with self.sessions() as session:
            user = await get_or_create_user(session, discord_id, display_name=display_name)
            user.opted_out = opted_out
            await session.commit()
            return self._effective(user)

    async def reset(self, discord_id: int, *, display_name: str | None = None) -> bool:
        """End the active conversation; the next message starts a new one. False if there was none."""
        async with self.sessions() as session:
            user = await get_or_create_user(session, discord_id, display_name=display_name)
            result = await session.execute(
                update(ChatConversation)
                .where(ChatConversation.user_id == user.id, ChatConversation.active.is_(True))
                .values(active=False)
            )
            await session.commit()
            return bool(result.rowcount)

    # ----- accepting messages ------------------------------------------------------------------

    async def _check_rate(self, session: AsyncSession, user: User, now: datetime) -> None:
        window = timedelta(minutes=self.settings.rate_limit_window_minutes)
        times = (
            await session.scalars(
                select(ChatMessage.created_at)
                .join(ChatConversation, ChatConversation.id == ChatMessage.conversation_id)
                .where(
                    ChatConversation.user_id == user.id,
                    ChatMessage.role == ChatRole.ASSISTANT,
                    ChatMessage.created_at > now - window,
                )
                .order_by(ChatMessage.created_at)
            )
        ).all()
        if len(times) >= self.settings.rate_limit_messages:
            retry_at = times[len(times) - self.settings.rate_limit_messages] + window
            raise RateLimited(retry_at, self.settings.rate_limit_messages, self.settings.rate_limit_window_minutes)

    def _max_prompt_tokens(self) -> int:
        return self.settings.context_size - self.settings.max_reply_tokens

    async def _check_fits(self, text: str, system_prompt: str | None) -> None:
        """Refuse a message that cannot fit the context even alone, naming the limit in characters."""
        room = self._max_prompt_tokens() - GENERATION_PROMPT_TOKENS - TEMPLATE_TOKENS_PER_MESSAGE
        if system_prompt:
            room -= await self._tokens(system_prompt) + TEMPLATE_TOKENS_PER_MESSAGE
        tokens = await self._tokens(text)
        if tokens > room:
            # Characters per token of this very text, so the figure suits its language and script.
            max_chars = len(text) * max(room, 0) // tokens
            raise MessageTooLong(len(text), max_chars // 10 * 10 if max_chars >= 100 else max_chars)

    async def accept_message(
        self,
        discord_id: int,
        text: str,
        *,
        display_name: str | None = None,
        channel_id: int | None = None,
        discord_message_id: int | None = None,
        now: datetime | None = None,
    ) -> AcceptedMessage:
        """Store the user's message and open its reply, or refuse it (ChatError) changing nothing.

        Checked here, when the message arrives: its length, the rate limit and whether this
        Discord message was stored before (a replayed gateway event raises Duplicate)."""
        text = storable(text).strip()
        if not text:
            raise InvalidInput("Your message is empty: write some text for me to answer.")
        now = now or datetime.now(UTC)
        async with self._opening_locks(discord_id), self.sessions() as session:
            if discord_message_id is not None and await session.scalar(
                select(ChatMessage.id).where(ChatMessage.discord_message_id == discord_message_id)
            ):
                raise Duplicate("This message was already answered.")
            user = await get_or_create_user(session, discord_id, display_name=display_name)
            await self._check_rate(session, user, now)
            conversation = await session.scalar(
                select(ChatConversation)
                .where(ChatConversation.user_id == user.id, ChatConversation.active.is_(True))
                .order_by(ChatConversation.id.desc())
                .limit(1)
            )
            effective = self._effective(user)
            await self._check_fits(text, conversation.system_prompt if conversation else effective.system_prompt)
            if conversation is None:
                conversation = ChatConversation(
                    user_id=user.id,
                    model_name=self.model_name,
                    system_prompt=effective.system_prompt,
                    preset=effective.preset,
                    discord_channel_id=channel_id,
                    created_at=now,
                    updated_at=now,
                )
                session.add(conversation)
                await session.flush()
            else:
                await self._settle_alternatives(session, conversation.id)
            message = ChatMessage(
                conversation_id=conversation.id,
                role=ChatRole.USER,
                text=text,
                discord_message_id=discord_message_id,
                created_at=now,
            )
            session.add(message)
            try:
                await session.flush()
            except IntegrityError:  # the replay raced the original between the check and the insert
                raise Duplicate("This message was already answered.") from None
            reply = self._open_reply(conversation, message.id, effective.preset, now)
            session.add(reply)
            conversation.updated_at = now
            await session.commit()
            return AcceptedMessage(reply.id, discord_id)

    def _open_reply(self, conversation: ChatConversation, parent_id: int, preset: str, now: datetime) -> ChatMessage:
        return ChatMessage(
            conversation_id=conversation.id,
            parent_id=parent_id,
            role=ChatRole.ASSISTANT,
            text="",
            state=GENERATING,
            model_name=self.model_name,
            preset=preset,
            kept=True,
            created_at=now,
        )

    # ----- generating replies ------------------------------------------------------------------

    async def start_generation(self, reply_id: int, *, on_position: PositionCallback | None = None
                               ) -> ReplyGeneration:
        """Read the context of an accepted reply and return its generation (not started yet):
        ``async for text in generation`` streams it, and its outcome is stored before the loop
        ends. Call it under ``user_lock``. Raises ChatError (and fails the reply) if the
        conversation cannot fit the model any more."""
        from bot.chat.generation import ReplyGeneration

        async with self.sessions() as session:
            reply = await session.get(ChatMessage, reply_id)
            if reply is None or reply.role != ChatRole.ASSISTANT or reply.parent_id is None:
                raise NotFound("I can't find that reply any more.")
            if reply.state != GENERATING:
                raise NotCurrent("That reply is already finished.")
            conversation = await session.get(ChatConversation, reply.conversation_id)
            assert conversation is not None
            owner = await session.scalar(select(User.discord_id).where(User.id == conversation.user_id))
            assert owner is not None
            siblings = await session.scalar(
                select(func.count()).select_from(ChatMessage).where(
                    ChatMessage.parent_id == reply.parent_id, ChatMessage.role == ChatRole.ASSISTANT,
                    ChatMessage.id != reply.id,
                )
            )
            if not siblings:
                # The answer this message follows is the newest one finished by now (its reply may
                # still have been streaming when the message arrived).
                await session.execute(
                    update(ChatMessage).where(ChatMessage.id == reply.parent_id).values(
                        parent_id=await self._latest_kept_reply(session, conversation.id, before=reply.parent_id)
                    )
                )
            try:
                turn = await self._turn(session, conversation, reply, owner, regeneration=bool(siblings))
            except MessageTooLong:
                await self._fail(session, reply)
                await session.commit()
                raise
            stale = [] if siblings else await self._previous_turn_shown(session, conversation.id, reply.parent_id)
            await session.commit()
        params = reply_params(
            turn.preset, max_tokens=self.settings.max_reply_tokens, seed=self.settings.seed, reply_id=reply_id,
            regeneration=turn.regeneration, regeneration_min_temperature=self.settings.regeneration_min_temperature,
        )
        return ReplyGeneration(self, turn, params, stale=stale, on_position=on_position)

    async def _latest_kept_reply(self, session: AsyncSession, conversation_id: int, *, before: int) -> int | None:
        return await session.scalar(
            select(ChatMessage.id)
            .where(
                ChatMessage.conversation_id == conversation_id,
                ChatMessage.role == ChatRole.ASSISTANT,
                ChatMessage.kept.is_(True),
                ChatMessage.state == ChatMessageState.COMPLETE,
                ChatMessage.id < before,
            )
            .order_by(ChatMessage.id.desc())
            .limit(1)
        )

    async def _previous_turn_shown(self, session: AsyncSession, conversation_id: int,
                                   user_message_id: int) -> list[ShownReply]:
        """The answers of the turn before this one: their Regenerate and Keep buttons are stale now."""
        previous_user = await session.scalar(
            select(func.max(ChatMessage.id)).where(
                ChatMessage.conversation_id == conversation_id, ChatMessage.role == ChatRole.USER,
                ChatMessage.id < user_message_id,
            )
        )
        if previous_user is None:
            return []
        return [_shown(alt) for alt in await self._alternatives(session, previous_user) if alt.discord_message_id]

    async def _turn(self, session: AsyncSession, conversation: ChatConversation, reply: ChatMessage,
                    user_discord_id: int, *, regeneration: bool) -> ChatTurn:
        user_message_id = reply.parent_id
        assert user_message_id is not None
        rows = (
            await session.execute(
                select(ChatMessage.role, ChatMessage.text)
                .where(
                    ChatMessage.conversation_id == conversation.id,
                    ChatMessage.id <= user_message_id,
                    (ChatMessage.role == ChatRole.USER)
                    | (ChatMessage.kept.is_(True) & (ChatMessage.state == ChatMessageState.COMPLETE)),
                )
                .order_by(ChatMessage.id)
            )
        ).all()
        history = [(role, text, await self._tokens(text)) for role, text in rows]
        system_prompt = conversation.system_prompt
        if history:
            await self._check_fits(history[-1][1], system_prompt)
        system_tokens = await self._tokens(system_prompt) if system_prompt else 0
        messages, dropped = budget_context(system_prompt, history, self._max_prompt_tokens(), system_tokens)
        return ChatTurn(
            conversation_id=conversation.id,
            user_discord_id=user_discord_id,
            user_message_id=user_message_id,
            reply_id=reply.id,
            messages=messages,
            dropped_messages=dropped,
            preset=reply.preset or self.settings.preset,
            owner_key=f"user-{conversation.user_id}",
            conversation_key=f"conversation-{conversation.id}",
            regeneration=regeneration,
            channel_id=conversation.discord_channel_id,
            page_ids=tuple(reply.discord_page_ids or ()),
        )

    async def record_pages(self, reply_id: int, page_ids: list[int]) -> None:
        """Remember the Discord messages a reply streams into, as each is posted: after a restart the
        reply is finished in them. The last one carries the buttons."""
        async with self.sessions() as session:
            await session.execute(
                update(ChatMessage).where(ChatMessage.id == reply_id).values(
                    discord_page_ids=list(page_ids), discord_message_id=page_ids[-1] if page_ids else None
                )
            )
            await session.commit()

    async def finish_reply(
        self,
        reply_id: int,
        text: str,
        *,
        state: str = ChatMessageState.COMPLETE,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        generation_ms: int | None = None,
    ) -> None:
        """Store how a reply ended. ``state=generating`` leaves it to be finished after a restart."""
        async with self.sessions() as session:
            reply = await session.get(ChatMessage, reply_id)
            if reply is None:
                raise NotFound("That reply no longer exists.")
            if state == GENERATING:
                return
            reply.text = storable(text)
            reply.state = state
            reply.prompt_tokens = prompt_tokens
            reply.completion_tokens = completion_tokens
            reply.generation_ms = generation_ms
            conversation = await session.get(ChatConversation, reply.conversation_id)
            assert conversation is not None
            conversation.prompt_tokens += prompt_tokens or 0
            conversation.completion_tokens += completion_tokens or 0
            if state != ChatMessageState.COMPLETE:
                await self._fail(session, reply, state=state)
            await session.commit()

    async def _fail(self, session: AsyncSession, reply: ChatMessage, *, state: str = ChatMessageState.FAILED) -> None:
        reply.state = state
        # A failed answer must not hide an earlier good alternative.
        reply.kept = False
        await self._restore_kept(session, reply)

    async def _restore_kept(self, session: AsyncSession, failed: ChatMessage) -> None:
        fallback = await session.scalar(
            select(ChatMessage)
            .where(
                ChatMessage.parent_id == failed.parent_id,
                ChatMessage.role == ChatRole.ASSISTANT,
                ChatMessage.state == ChatMessageState.COMPLETE,
            )
            .order_by(ChatMessage.id.desc())
            .limit(1)
        )
        if fallback is not None:
            fallback.kept = True

    # ----- buttons -----------------------------------------------------------------------------

    async def _owned_reply(self, session: AsyncSession, discord_id: int, reply_id: int,
                           display_name: str | None = None) -> ChatMessage:
        row = (
            await session.execute(
                select(ChatMessage, User)
                .join(ChatConversation, ChatConversation.id == ChatMessage.conversation_id)
                .join(User, User.id == ChatConversation.user_id)
                .where(ChatMessage.id == reply_id, ChatMessage.role == ChatRole.ASSISTANT)
            )
        ).first()
        if row is None:
            raise NotFound("I can't find that reply any more.")
        reply, owner = row
        if owner.discord_id != discord_id:
            raise NotYours("Only the person who chatted can rate or regenerate this reply.")
        if display_name and owner.display_name != display_name:
            owner.display_name = display_name
        return reply

    async def _check_current(self, session: AsyncSession, reply: ChatMessage, what: str) -> ChatConversation:
        conversation = await session.get(ChatConversation, reply.conversation_id)
        assert conversation is not None and reply.parent_id is not None
        latest_user_message = await session.scalar(
            select(func.max(ChatMessage.id)).where(
                ChatMessage.conversation_id == conversation.id, ChatMessage.role == ChatRole.USER
            )
        )
        if not conversation.active or reply.parent_id != latest_user_message:
            raise NotCurrent(f"Only the latest reply of your current conversation can be {what}; "
                             "this one's buttons are out of date.")
        return conversation

    async def rate(self, discord_id: int, reply_id: int, value: int, *, display_name: str | None = None) -> int:
        """Record the owner's rating (-1, 0 or +1) of a reply; a second identical rating clears it."""
        if value not in (-1, 0, 1):
            raise InvalidInput("A rating is -1, 0 or +1.")
        async with self.sessions() as session:
            reply = await self._owned_reply(session, discord_id, reply_id, display_name)
            if reply.state != ChatMessageState.COMPLETE:
                raise NotCurrent("Only a finished reply can be rated.")
            reply.feedback = None if reply.feedback == value and value != 0 else value
            await session.commit()
            return reply.feedback or 0

    async def regenerate(self, discord_id: int, reply_id: int, *, display_name: str | None = None,
                         now: datetime | None = None) -> AcceptedMessage:
        """Open a new alternative for the latest turn; it becomes the shown (kept) one once written."""
        now = now or datetime.now(UTC)
        async with self._opening_locks(discord_id), self.sessions() as session:
            reply = await self._owned_reply(session, discord_id, reply_id, display_name)
            conversation = await self._check_current(session, reply, "regenerated")
            pending = await session.scalar(
                select(func.count()).select_from(ChatMessage).where(
                    ChatMessage.parent_id == reply.parent_id, ChatMessage.state == GENERATING
                )
            )
            if pending:
                raise NotCurrent("An answer to this message is still being written.")
            if reply.state != ChatMessageState.COMPLETE:
                raise NotCurrent("Only a finished reply can be regenerated.")
            user = await session.get(User, conversation.user_id)
            assert user is not None
            await self._check_rate(session, user, now)
            await session.execute(
                update(ChatMessage).where(ChatMessage.parent_id == reply.parent_id).values(kept=False)
            )
            alternative = self._open_reply(conversation, reply.parent_id, self._effective(user).preset, now)
            session.add(alternative)
            await session.commit()
            return AcceptedMessage(alternative.id, discord_id)

    async def _alternatives(self, session: AsyncSession, parent_id: int) -> list[ChatMessage]:
        return list(
            (
                await session.scalars(
                    select(ChatMessage)
                    .where(
                        ChatMessage.parent_id == parent_id,
                        ChatMessage.role == ChatRole.ASSISTANT,
                        ChatMessage.state == ChatMessageState.COMPLETE,
                    )
                    .order_by(ChatMessage.id)
                )
            ).all()
        )

    async def _record_choice(self, session: AsyncSession, chosen: ChatMessage, others: list[ChatMessage]) -> int:
        # A changed mind replaces the earlier choice for this turn instead of contradicting it.
        alternative_ids = [chosen.id] + [other.id for other in others]
        for stale in (
            await session.scalars(
                select(ChatPreference).where(
                    ChatPreference.rejected_id.in_(alternative_ids), ChatPreference.chosen_id != chosen.id
                )
            )
        ).all():
            await session.delete(stale)
        recorded = 0
        for other in others:
            if other.text.strip() == chosen.text.strip():
                continue  # the same answer twice says nothing about which is better
            result = await session.execute(
                insert_ignoring_conflicts(session, ChatPreference, chosen_id=chosen.id, rejected_id=other.id)
            )
            recorded += result.rowcount or 0
        return recorded

    async def keep(self, discord_id: int, reply_id: int, *, display_name: str | None = None) -> KeepResult:
        """The user keeps this alternative: it continues the conversation and wins over the others."""
        async with self.sessions() as session:
            reply = await self._owned_reply(session, discord_id, reply_id, display_name)
            if reply.state != ChatMessageState.COMPLETE:
                raise NotCurrent("Only a finished reply can be kept.")
            await self._check_current(session, reply, "kept")
            alternatives = await self._alternatives(session, reply.parent_id)
            others = [alt for alt in alternatives if alt.id != reply.id]
            if not others:
                raise NotCurrent("There is nothing to choose between yet: regenerate first.")
            for alternative in alternatives:
                alternative.kept = alternative.id == reply.id
            recorded = await self._record_choice(session, reply, others)
            await session.commit()
            return KeepResult(recorded, [alt.id for alt in alternatives],
                              [_shown(alt) for alt in others if alt.discord_message_id])

    async def _settle_alternatives(self, session: AsyncSession, conversation_id: int) -> None:
        """Continuing after a regeneration keeps the shown alternative: record that choice."""
        latest_user = await session.scalar(
            select(func.max(ChatMessage.id)).where(
                ChatMessage.conversation_id == conversation_id, ChatMessage.role == ChatRole.USER
            )
        )
        if latest_user is None:
            return
        alternatives = await self._alternatives(session, latest_user)
        kept = [alt for alt in alternatives if alt.kept]
        if len(alternatives) > 1 and len(kept) == 1:
            already = await session.scalar(
                select(func.count()).select_from(ChatPreference).where(ChatPreference.chosen_id == kept[0].id)
            )
            if not already:
                await self._record_choice(session, kept[0], [alt for alt in alternatives if not alt.kept])

    # ----- restarts ----------------------------------------------------------------------------

    async def interrupted_replies(
        self, max_age: timedelta = timedelta(hours=1), now: datetime | None = None
    ) -> list[Resumable]:
        """Replies a crash or a restart left unwritten: recent ones come back to be finished; older
        ones are marked failed (the user has moved on)."""
        now = now or datetime.now(UTC)
        resumable: list[Resumable] = []
        async with self.sessions() as session:
            rows = (
                await session.execute(
                    select(ChatMessage, ChatConversation, User.discord_id)
                    .join(ChatConversation, ChatConversation.id == ChatMessage.conversation_id)
                    .join(User, User.id == ChatConversation.user_id)
                    .where(ChatMessage.state == GENERATING)
                    .order_by(ChatMessage.id)
                )
            ).all()
            for reply, conversation, discord_id in rows:
                if conversation.active and reply.created_at > now - max_age and reply.parent_id is not None:
                    resumable.append(Resumable(reply.id, discord_id, conversation.discord_channel_id,
                                               tuple(reply.discord_page_ids or ())))
                else:
                    await self._fail(session, reply)
            await session.commit()
        return resumable

    # ----- export ------------------------------------------------------------------------------

    async def export_user(self, discord_id: int, *, display_name: str | None = None) -> bytes:
        """The user's own conversations as JSON lines, for /chat export."""
        async with self.sessions() as session:
            user = await get_or_create_user(session, discord_id, display_name=display_name)
            conversations = (
                await session.scalars(
                    select(ChatConversation).where(ChatConversation.user_id == user.id).order_by(ChatConversation.id)
                )
            ).all()
            lines = []
            for conversation in conversations:
                messages = (
                    await session.scalars(
                        select(ChatMessage)
                        .where(ChatMessage.conversation_id == conversation.id)
                        .order_by(ChatMessage.id)
                    )
                ).all()
                lines.append(json.dumps(_conversation_json(conversation, messages), ensure_ascii=False))
            await session.commit()
            return ("\n".join(lines) + "\n").encode() if lines else b""


def _shown(reply: ChatMessage) -> ShownReply:
    assert reply.discord_message_id is not None
    return ShownReply(reply.id, reply.discord_message_id, reply.feedback, reply.kept)


def _conversation_json(conversation: ChatConversation, messages: Any) -> dict[str, Any]:
    return {
        "conversation_id": conversation.id,
        "created_at": conversation.created_at.isoformat(),
        "model_name": conversation.model_name,
        "system_prompt": conversation.system_prompt,
        "active": conversation.active,
        "messages": [
            {
                "id": message.id,
                "parent_id": message.parent_id,
                "role": message.role,
                "text": message.text,
                "created_at": message.created_at.isoformat(),
                **({"state": message.state} if message.state != ChatMessageState.COMPLETE else {}),
                **({"feedback": message.feedback} if message.feedback is not None else {}),
                **({"kept": message.kept} if message.role == ChatRole.ASSISTANT else {}),
            }
            for message in messages
        ],
    }
