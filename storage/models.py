"""The whole domain as typed SQLAlchemy 2 models.

Unique constraints carry the "count once" rules, so a double click, a replayed gateway event or
a race between two workers can never count a vote, label, ranking or reply twice.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from storage.enums import ChatMessageState, TaskState, TreeState

# Stable constraint names: Alembic needs them to alter or drop constraints on both backends.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC; always hands back timezone-aware datetimes (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC datetimes")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class User(Base):
    __tablename__ = "users"
    # The all-time leaderboard reads the denormalised total instead of summing every score event.
    __table_args__ = (Index("ix_users_points", "points"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    discord_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    display_name: Mapped[str] = mapped_column(String(100), default="")
    locale: Mapped[str] = mapped_column(String(16), default="en")
    # The labelling language the member chose (/settings language); None follows their Discord locale.
    language: Mapped[str | None] = mapped_column(String(16))
    banned: Mapped[bool] = mapped_column(Boolean, default=False)
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False)
    # Set for the synthetic users of `oabot simulate`; never shown on leaderboards of a real server.
    synthetic: Mapped[bool] = mapped_column(Boolean, default=False)
    streak_days: Mapped[int] = mapped_column(Integer, default=0)
    # Sum of the user's score_events, kept in the same transaction as each event.
    points: Mapped[float] = mapped_column(Float, default=0, server_default="0")
    last_active_at: Mapped[datetime | None]
    chat_system_prompt: Mapped[str | None] = mapped_column(Text)
    chat_preset: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class GuildSettings(Base):
    __tablename__ = "guild_settings"

    guild_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    language: Mapped[str] = mapped_column(String(16), default="en")
    task_channel_id: Mapped[int | None] = mapped_column(BigInteger)
    log_channel_id: Mapped[int | None] = mapped_column(BigInteger)
    moderator_role_id: Mapped[int | None] = mapped_column(BigInteger)
    task_post_interval_minutes: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class MessageTree(Base):
    __tablename__ = "message_trees"
    __table_args__ = (Index("ix_message_trees_state_lang", "state", "lang"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    state: Mapped[str] = mapped_column(String(32), default=TreeState.INITIAL_PROMPT_REVIEW)
    lang: Mapped[str] = mapped_column(String(16))
    # The state to return to when a moderator resumes a halted tree.
    state_before_halt: Mapped[str | None] = mapped_column(String(32))
    guild_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    messages: Mapped[list[Message]] = relationship(back_populates="tree", passive_deletes=True)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        # One reply per user per parent; roots have a NULL parent and are not constrained.
        UniqueConstraint("parent_id", "author_id"),
        Index("ix_messages_tree_id", "tree_id"),
        Index("ix_messages_parent_id", "parent_id"),
        Index("ix_messages_author_created", "author_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tree_id: Mapped[int] = mapped_column(ForeignKey("message_trees.id", ondelete="CASCADE"))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    lang: Mapped[str] = mapped_column(String(16))
    depth: Mapped[int] = mapped_column(Integer, default=0)
    review_count: Mapped[int] = mapped_column(Integer, default=0)
    # None while in review, then True (accepted) or False (rejected).
    review_result: Mapped[bool | None] = mapped_column(Boolean)
    rank: Mapped[int | None]
    synthetic: Mapped[bool] = mapped_column(Boolean, default=False)
    model_name: Mapped[str | None] = mapped_column(String(200))
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    edited_at: Mapped[datetime | None]

    tree: Mapped[MessageTree] = relationship(back_populates="messages")


class MessageRevision(Base):
    """The text a message had before an edit, so edits never lose what was written."""

    __tablename__ = "message_revisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(Text)
    edited_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (
        # A user's open, unexpired tasks (the pending cap) in one index range.
        Index("ix_tasks_user_state", "user_id", "state", "expires_at"),
        Index("ix_tasks_target_state", "target_message_id", "state"),
        Index("ix_tasks_state_expires", "state", "expires_at"),
        # Rate limiting counts a user's recent task requests.
        Index("ix_tasks_user_created", "user_id", "created_at"),
        # Task selection asks "does this user already hold or skip a task on this message?".
        Index("ix_tasks_target_user", "target_message_id", "user_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # The message to label, the parent to reply to or whose children to rank; None for a new prompt.
    target_message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    tree_id: Mapped[int | None] = mapped_column(ForeignKey("message_trees.id", ondelete="CASCADE"))
    lang: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default=TaskState.OFFERED)
    # Kind-specific details fixed when offered, e.g. the reply ids a ranking task shows.
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    done_at: Mapped[datetime | None]


class Label(Base):
    __tablename__ = "labels"
    __table_args__ = (UniqueConstraint("message_id", "user_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(32))
    value: Mapped[float] = mapped_column(Float)
    mode: Mapped[str] = mapped_column(String(8), default="simple")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Ranking(Base):
    __tablename__ = "rankings"
    __table_args__ = (UniqueConstraint("parent_id", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    parent_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id", ondelete="SET NULL"))
    # Message ids, best first; empty when the user flagged the set as not rankable.
    ordered_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    not_rankable: Mapped[bool] = mapped_column(Boolean, default=False)
    # Kendall tau against the consensus, rescaled to [0, 1]; set when the parent is scored.
    agreement: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Reaction(Base):
    __tablename__ = "reactions"
    __table_args__ = (UniqueConstraint("message_id", "user_id", "emoji"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    emoji: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TaskChannel(Base):
    """A channel where the bot posts tasks on a schedule (/admin channel set)."""

    __tablename__ = "task_channels"

    channel_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    guild_id: Mapped[int] = mapped_column(BigInteger, index=True)
    interval_minutes: Mapped[int] = mapped_column(Integer)
    # Post kinds: "prompt", "reply", "review", "rank".
    kinds: Mapped[list[Any]] = mapped_column(JSON, default=list)
    language: Mapped[str] = mapped_column(String(16))
    last_posted_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class BotPost(Base):
    """A task the bot posted in a channel; reactions and buttons on it are found by its Discord id."""

    __tablename__ = "bot_posts"
    __table_args__ = (
        # The open posts of a channel (refresh, and targets not to post twice).
        Index("ix_bot_posts_channel_closed", "channel_id", "closed_at"),
        Index("ix_bot_posts_tree", "tree_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    discord_message_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    channel_id: Mapped[int] = mapped_column(BigInteger)
    guild_id: Mapped[int | None] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    target_message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    tree_id: Mapped[int | None] = mapped_column(ForeignKey("message_trees.id", ondelete="SET NULL"))
    lang: Mapped[str] = mapped_column(String(16))
    # What the post shows as its result: e.g. accepted, rejected, full, ranked, consensus, removed.
    outcome: Mapped[str | None] = mapped_column(String(16))
    closed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PostMessage(Base):
    """Which tree messages a post shows (many-to-many: a text can be shown in several posts)."""

    __tablename__ = "post_messages"
    __table_args__ = (Index("ix_post_messages_message", "message_id"),)

    post_id: Mapped[int] = mapped_column(ForeignKey("bot_posts.id", ondelete="CASCADE"), primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True)
    # "subject" (what votes on the post are about), "candidate" (a reply to rank) or "context".
    role: Mapped[str] = mapped_column(String(12))
    # A candidate's number on the post, from 0.
    position: Mapped[int | None]


class PostReaction(Base):
    """A member's reaction on a post, as Discord holds it: one row per (post, member, emoji)."""

    __tablename__ = "post_reactions"
    __table_args__ = (Index("ix_post_reactions_user", "user_id"),)

    post_id: Mapped[int] = mapped_column(ForeignKey("bot_posts.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    emoji: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PostRankOrder(Base):
    """A member's number reactions on a ranking post so far, best first, until the ranking is complete."""

    __tablename__ = "post_rank_orders"

    post_id: Mapped[int] = mapped_column(ForeignKey("bot_posts.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    positions: Mapped[list[Any]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class MemberNotice(Base):
    """Something the bot must tell a member (e.g. why their reaction was removed) when it can: by DM
    at once if they allow it, else at their next interaction with a post."""

    __tablename__ = "member_notices"
    __table_args__ = (Index("ix_member_notices_pending", "discord_user_id", "delivered_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    discord_user_id: Mapped[int] = mapped_column(BigInteger)
    text: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]


class ScoreEvent(Base):
    """One line of a user's points history; the reason says why, in words a user understands."""

    __tablename__ = "score_events"
    __table_args__ = (
        Index("ix_score_events_user_created", "user_id", "created_at"),
        # Covering index: period leaderboards aggregate (user_id, points) by created_at without the table.
        Index("ix_score_events_created", "created_at", "user_id", "points"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    points: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(String(300))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ScoreDaily(Base):
    """A user's points per UTC day: the sum of their score_events of that day, upserted in the same
    transaction as each event. Period leaderboards add up a few rows per user for the whole days of
    the period instead of grouping every event (a busy week holds hundreds of thousands)."""

    __tablename__ = "score_daily"
    __table_args__ = (
        # Covering index: a period board reads (user_id, points) for a range of days without the table.
        Index("ix_score_daily_day", "day", "user_id", "points"),
    )

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    points: Mapped[float] = mapped_column(Float, default=0)


class ModerationFlag(Base):
    """An entry of the moderation queue: a message that drew red flags."""

    __tablename__ = "moderation_flags"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), unique=True)
    flag_count: Mapped[int] = mapped_column(Integer, default=0)
    resolved: Mapped[bool] = mapped_column(Boolean, default=False)
    resolution: Mapped[str | None] = mapped_column(String(64))
    resolved_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ChatConversation(Base):
    __tablename__ = "chat_conversations"
    __table_args__ = (Index("ix_chat_conversations_user_active", "user_id", "active"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # False once the user resets; a new conversation starts with their next message.
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    model_name: Mapped[str | None] = mapped_column(String(200))
    system_prompt: Mapped[str | None] = mapped_column(Text)
    preset: Mapped[str | None] = mapped_column(String(32))
    discord_channel_id: Mapped[int | None] = mapped_column(BigInteger)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    messages: Mapped[list[ChatMessage]] = relationship(
        back_populates="conversation", passive_deletes=True, order_by="ChatMessage.id"
    )


class ChatMessage(Base):
    """A chat turn. Regenerated answers are siblings: assistant messages with the same parent."""

    __tablename__ = "chat_messages"
    __table_args__ = (Index("ix_chat_messages_conversation", "conversation_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("chat_conversations.id", ondelete="CASCADE"))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("chat_messages.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default=ChatMessageState.COMPLETE)
    model_name: Mapped[str | None] = mapped_column(String(200))
    preset: Mapped[str | None] = mapped_column(String(32))
    prompt_tokens: Mapped[int | None]
    completion_tokens: Mapped[int | None]
    generation_ms: Mapped[int | None]
    # The owner's rating of an assistant message: -1, 0 or +1.
    feedback: Mapped[int | None]
    # Among regenerated alternatives, the one the user kept continues the conversation.
    kept: Mapped[bool] = mapped_column(Boolean, default=True)
    # The user's Discord message, or the reply's last page (the one with the buttons): a replayed
    # gateway event cannot store a turn twice.
    discord_message_id: Mapped[int | None] = mapped_column(BigInteger, index=True, unique=True)
    # Every Discord message a reply streams into, in order, so a reply interrupted by a restart is
    # finished in the same messages.
    discord_page_ids: Mapped[list[int] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    conversation: Mapped[ChatConversation] = relationship(back_populates="messages")


class ChatPreference(Base):
    """The user kept `chosen` over `rejected` for the same turn: one preference pair."""

    __tablename__ = "chat_preferences"
    __table_args__ = (UniqueConstraint("chosen_id", "rejected_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chosen_id: Mapped[int] = mapped_column(ForeignKey("chat_messages.id", ondelete="CASCADE"))
    rejected_id: Mapped[int] = mapped_column(ForeignKey("chat_messages.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditLog(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_created", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[int | None] = mapped_column(BigInteger)
    guild_id: Mapped[int | None] = mapped_column(BigInteger)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class JobLease(Base):
    """Which process runs a periodic job until when: the scheduler of every process tries to take the
    lease before a run, so a job runs once per period however many processes run (storage/leases.py)."""

    __tablename__ = "job_leases"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime]
