"""The emulated Discord world: users, guilds, roles, members, channels, messages, commands.

Each object renders itself as the JSON Discord sends (`to_dict`), so REST answers, gateway events
and the OpenAPI shape test all see the same payloads.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .core import Emulator

# Channel types
GUILD_TEXT = 0
DM = 1
GUILD_VOICE = 2
GUILD_CATEGORY = 4
GUILD_ANNOUNCEMENT = 5
PUBLIC_THREAD = 11
PRIVATE_THREAD = 12
THREAD_TYPES = (10, PUBLIC_THREAD, PRIVATE_THREAD)

# Message flags
EPHEMERAL = 1 << 6
LOADING = 1 << 7
SUPPRESS_EMBEDS = 1 << 2


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(t: dt.datetime | None) -> str | None:
    return None if t is None else t.isoformat()


@dataclass(eq=False)
class User:
    id: int
    username: str
    global_name: str | None = None
    bot: bool = False
    # Discord refuses a bot's DM (50007) when the user closed DMs from server members.
    accepts_dms: bool = True

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "username": self.username,
            "avatar": None,
            "discriminator": "0",
            "public_flags": 0,
            "flags": 0,
            "global_name": self.global_name,
            "primary_guild": None,
            "banner": None,
            "accent_color": None,
            "avatar_decoration_data": None,
            "collectibles": None,
        }
        if self.bot:
            data["bot"] = True
        return data

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"

    @property
    def display_name(self) -> str:
        return self.global_name or self.username

    def __repr__(self) -> str:
        return f"<{type(self).__name__} id={self.id} username={self.username!r}>"


@dataclass(eq=False)
class Role:
    id: int
    guild_id: int
    name: str
    permissions: int
    position: int = 0
    color: int = 0
    hoist: bool = False
    managed: bool = False
    mentionable: bool = False
    bot_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "name": self.name,
            "permissions": str(self.permissions),
            "position": self.position,
            "color": self.color,
            "colors": {"primary_color": self.color, "secondary_color": None, "tertiary_color": None},
            "hoist": self.hoist,
            "managed": self.managed,
            "mentionable": self.mentionable,
            "icon": None,
            "unicode_emoji": None,
            "flags": 0,
        }
        if self.bot_id is not None:
            data["tags"] = {"bot_id": str(self.bot_id)}
        return data

    @property
    def mention(self) -> str:
        return f"<@&{self.id}>"


@dataclass(eq=False)
class Member:
    guild_id: int
    user: User
    role_ids: list[int] = field(default_factory=list)
    nick: str | None = None
    joined_at: dt.datetime = field(default_factory=now)

    def to_dict(self, *, with_user: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "roles": [str(r) for r in self.role_ids],
            "nick": self.nick,
            "avatar": None,
            "banner": None,
            "communication_disabled_until": None,
            "flags": 0,
            "joined_at": iso(self.joined_at),
            "pending": False,
            "premium_since": None,
            "mute": False,
            "deaf": False,
        }
        if with_user:
            data["user"] = self.user.to_dict()
        return data


@dataclass(eq=False)
class Attachment:
    id: int
    filename: str
    data: bytes
    url: str
    content_type: str | None = None
    description: str | None = None
    ephemeral: bool = False

    @property
    def size(self) -> int:
        return len(self.data)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": str(self.id),
            "filename": self.filename,
            "size": self.size,
            "url": self.url,
            "proxy_url": self.url,
        }
        if self.content_type:
            out["content_type"] = self.content_type
        if self.description is not None:
            out["description"] = self.description
        if self.ephemeral:
            out["ephemeral"] = True
        return out


@dataclass
class Revision:
    """One state of a message: the original or the result of one edit."""

    content: str
    embeds: list[dict[str, Any]]
    components: list[dict[str, Any]]
    attachments: list[str]
    flags: int
    at: dt.datetime


def parse_emoji(raw: str) -> tuple[str, dict[str, Any]]:
    """Normalise an emoji as it appears in a reaction route (`👍`, `name:id`, `a:name:id`, `<:name:id>`)."""
    text = urllib.parse.unquote(raw).strip("<>")
    parts = text.split(":")
    if len(parts) == 3 and parts[2].isdigit():
        return f"{parts[1]}:{parts[2]}", {"id": parts[2], "name": parts[1], "animated": parts[0] == "a"}
    if len(parts) == 2 and parts[1].isdigit():
        return f"{parts[0]}:{parts[1]}", {"id": parts[1], "name": parts[0]}
    return text, {"id": None, "name": text}


@dataclass(eq=False)
class Message:
    id: int
    channel_id: int
    author: User
    content: str = ""
    guild_id: int | None = None
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    flags: int = 0
    type: int = 0
    tts: bool = False
    created_at: dt.datetime = field(default_factory=now)
    edited_at: dt.datetime | None = None
    # emoji key -> ids of users who reacted, in reaction order
    reactions: dict[str, list[int]] = field(default_factory=dict)
    reaction_emojis: dict[str, dict[str, Any]] = field(default_factory=dict)
    history: list[Revision] = field(default_factory=list)
    deleted: bool = False
    webhook_id: int | None = None
    application_id: int | None = None
    interaction_metadata: dict[str, Any] | None = None
    message_reference: dict[str, Any] | None = None
    referenced_message: Message | None = None
    thread_id: int | None = None
    nonce: str | int | None = None
    pinned: bool = False
    # For ephemeral messages: the only user who sees it.
    visible_to: int | None = None
    _emu: Emulator | None = field(default=None, repr=False)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def loading(self) -> bool:
        """A deferred interaction response still showing 'thinking...'."""
        return bool(self.flags & LOADING)

    @property
    def edits(self) -> list[Revision]:
        """Every edit after creation, oldest first."""
        return self.history[1:]

    @property
    def contents(self) -> list[str]:
        """Content of every version of the message: the original, then each edit."""
        return [rev.content for rev in self.history]

    @property
    def channel(self):
        return self._emu.get_channel(self.channel_id) if self._emu else None

    @property
    def thread(self):
        return self._emu.get_channel(self.thread_id) if self._emu and self.thread_id else None

    @property
    def custom_ids(self) -> list[str]:
        """Every custom_id of the message's interactive components, in display order."""
        return [c["custom_id"] for c in iter_components(self.components) if "custom_id" in c]

    def find_component(self, custom_id: str) -> dict[str, Any] | None:
        for comp in iter_components(self.components):
            if comp.get("custom_id") == custom_id:
                return comp
        return None

    def reaction_users(self, emoji: str) -> list[int]:
        return list(self.reactions.get(parse_emoji(emoji)[0], []))

    def reaction_counts(self) -> dict[str, int]:
        return {key: len(users) for key, users in self.reactions.items() if users}

    def snapshot(self) -> Revision:
        return Revision(
            content=self.content,
            embeds=[dict(e) for e in self.embeds],
            components=list(self.components),
            attachments=[a.filename for a in self.attachments],
            flags=self.flags,
            at=self.edited_at or self.created_at,
        )

    def to_dict(self, *, viewer_id: int | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "type": self.type,
            "channel_id": str(self.channel_id),
            "author": self.author.to_dict(),
            "content": self.content,
            "timestamp": iso(self.created_at),
            "edited_timestamp": iso(self.edited_at),
            "tts": self.tts,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [a.to_dict() for a in self.attachments],
            "embeds": self.embeds,
            "components": self.components,
            "pinned": self.pinned,
            "flags": self.flags,
        }
        if self._emu is not None:
            guild = self._emu.guilds.get(self.guild_id) if self.guild_id else None
            users, roles = self._emu._mentions(self.content, guild)
            data["mentions"] = [u.to_dict() for u in users]
            data["mention_roles"] = [str(r) for r in roles]
        reactions = []
        for key, reactors in self.reactions.items():
            if not reactors:
                continue
            reactions.append(
                {
                    "emoji": self.reaction_emojis[key],
                    "count": len(reactors),
                    "count_details": {"burst": 0, "normal": len(reactors)},
                    "burst_colors": [],
                    "me_burst": False,
                    "me": viewer_id in reactors,
                    "burst_count": 0,
                }
            )
        if reactions:
            data["reactions"] = reactions
        if self.webhook_id is not None:
            data["webhook_id"] = str(self.webhook_id)
        if self.application_id is not None:
            data["application_id"] = str(self.application_id)
        if self.interaction_metadata is not None:
            data["interaction_metadata"] = self.interaction_metadata
        if self.message_reference is not None:
            data["message_reference"] = self.message_reference
            if self.referenced_message is not None:
                data["referenced_message"] = self.referenced_message.to_dict(viewer_id=viewer_id)
        if self.nonce is not None:
            data["nonce"] = self.nonce
        if self.thread_id is not None and self._emu is not None:
            thread = self._emu.get_channel(self.thread_id)
            if thread is not None:
                data["thread"] = thread.to_dict()
        return data

    def __repr__(self) -> str:
        return f"<Message id={self.id} channel={self.channel_id} author={self.author.username!r} content={self.content[:40]!r}>"


def iter_components(components: list[dict[str, Any]]):
    """Depth-first walk over nested components (rows, labels, containers, sections)."""
    for comp in components:
        yield comp
        if "components" in comp:
            yield from iter_components(comp["components"])
        if "component" in comp:
            yield from iter_components([comp["component"]])
        if "accessory" in comp:
            yield from iter_components([comp["accessory"]])


@dataclass(eq=False)
class Channel:
    id: int
    type: int
    name: str | None = None
    guild_id: int | None = None
    position: int = 0
    parent_id: int | None = None
    topic: str | None = None
    nsfw: bool = False
    permission_overwrites: list[dict[str, Any]] = field(default_factory=list)
    recipients: list[User] = field(default_factory=list)
    rate_limit_per_user: int = 0
    # threads
    owner_id: int | None = None
    archived: bool = False
    locked: bool = False
    auto_archive_duration: int = 1440
    archive_timestamp: dt.datetime = field(default_factory=now)
    member_ids: set[int] = field(default_factory=set)
    messages: dict[int, Message] = field(default_factory=dict)
    total_message_sent: int = 0

    @property
    def is_thread(self) -> bool:
        return self.type in THREAD_TYPES

    @property
    def is_dm(self) -> bool:
        return self.type == DM

    @property
    def mention(self) -> str:
        return f"<#{self.id}>"

    @property
    def last_message_id(self) -> int | None:
        return next(reversed(self.messages), None) if self.messages else None

    def visible_messages(self) -> list[Message]:
        """Live messages in creation order (deleted ones are kept in `messages` for inspection)."""
        return [m for m in self.messages.values() if not m.deleted]

    def to_dict(self) -> dict[str, Any]:
        last = self.last_message_id
        data: dict[str, Any] = {
            "id": str(self.id),
            "type": self.type,
            "flags": 0,
            "last_message_id": str(last) if last else None,
        }
        if self.is_dm:
            data["recipients"] = [u.to_dict() for u in self.recipients]
            return data
        data.update(
            guild_id=str(self.guild_id),
            name=self.name,
            parent_id=str(self.parent_id) if self.parent_id else None,
            rate_limit_per_user=self.rate_limit_per_user,
        )
        if self.is_thread:
            data.update(
                owner_id=str(self.owner_id),
                thread_metadata={
                    "archived": self.archived,
                    "archive_timestamp": iso(self.archive_timestamp),
                    "auto_archive_duration": self.auto_archive_duration,
                    "locked": self.locked,
                    "create_timestamp": iso(self.archive_timestamp),
                },
                message_count=len(self.visible_messages()),
                member_count=min(len(self.member_ids), 50),
                total_message_sent=self.total_message_sent,
            )
            return data
        data.update(
            position=self.position,
            permission_overwrites=self.permission_overwrites,
            nsfw=self.nsfw,
        )
        if self.type in (GUILD_TEXT, GUILD_ANNOUNCEMENT):
            data["topic"] = self.topic
            data["default_auto_archive_duration"] = 1440
        if self.type == GUILD_VOICE:
            data.update(bitrate=64000, user_limit=0, rtc_region=None)
        return data

    def __repr__(self) -> str:
        return f"<Channel id={self.id} type={self.type} name={self.name!r}>"


@dataclass(eq=False)
class Guild:
    id: int
    name: str
    owner_id: int
    roles: dict[int, Role] = field(default_factory=dict)
    channels: dict[int, Channel] = field(default_factory=dict)
    members: dict[int, Member] = field(default_factory=dict)
    created_at: dt.datetime = field(default_factory=now)
    _emu: Emulator | None = field(default=None, repr=False)

    @property
    def everyone(self) -> Role:
        return self.roles[self.id]

    @property
    def text_channels(self) -> list[Channel]:
        return [c for c in self.channels.values() if c.type == GUILD_TEXT]

    @property
    def threads(self) -> list[Channel]:
        return [c for c in self.channels.values() if c.is_thread]

    def channel(self, name: str) -> Channel:
        for ch in self.channels.values():
            if ch.name == name:
                return ch
        raise KeyError(f"no channel named {name!r} in guild {self.name!r}")

    def role(self, name: str) -> Role:
        for role in self.roles.values():
            if role.name == name:
                return role
        raise KeyError(f"no role named {name!r} in guild {self.name!r}")

    def base_dict(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "description": None,
            "home_header": None,
            "splash": None,
            "discovery_splash": None,
            "features": [],
            "banner": None,
            "owner_id": str(self.owner_id),
            "application_id": None,
            "region": "deprecated",
            "afk_channel_id": None,
            "afk_timeout": 300,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "widget_enabled": False,
            "widget_channel_id": None,
            "verification_level": 0,
            "roles": [r.to_dict() for r in sorted(self.roles.values(), key=lambda r: r.position)],
            "default_message_notifications": 0,
            "mfa_level": 0,
            "explicit_content_filter": 0,
            "max_presences": None,
            "max_members": 500000,
            "max_stage_video_channel_users": 50,
            "max_video_channel_users": 25,
            "vanity_url_code": None,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "rules_channel_id": None,
            "safety_alerts_channel_id": None,
            "public_updates_channel_id": None,
            "premium_progress_bar_enabled": False,
            "nsfw": False,
            "nsfw_level": 0,
            "emojis": [],
            "stickers": [],
            "incidents_data": None,
        }

    def to_dict(self) -> dict[str, Any]:
        data = self.base_dict()
        data["approximate_member_count"] = len(self.members)
        data["approximate_presence_count"] = 0
        return data

    def gateway_dict(self) -> dict[str, Any]:
        """The GUILD_CREATE payload: the guild with channels, threads, members and counts."""
        data = self.base_dict()
        data.update(
            joined_at=iso(self.created_at),
            large=False,
            unavailable=False,
            member_count=len(self.members),
            members=[m.to_dict() for m in self.members.values()],
            channels=[c.to_dict() for c in self.channels.values() if not c.is_thread],
            threads=[c.to_dict() for c in self.channels.values() if c.is_thread and not c.archived],
            presences=[],
            voice_states=[],
            stage_instances=[],
            guild_scheduled_events=[],
            soundboard_sounds=[],
        )
        return data


@dataclass(eq=False)
class Command:
    """A registered application command, stored as Discord stores it."""

    id: int
    application_id: int
    guild_id: int | None
    data: dict[str, Any]
    version: int

    @property
    def name(self) -> str:
        return self.data["name"]

    @property
    def type(self) -> int:
        return int(self.data.get("type", 1))

    @property
    def options(self) -> list[dict[str, Any]]:
        return self.data.get("options") or []

    @property
    def default_member_permissions(self) -> int | None:
        value = self.data.get("default_member_permissions")
        return None if value is None else int(value)

    def to_dict(self) -> dict[str, Any]:
        d = self.data
        perms = d.get("default_member_permissions")
        out: dict[str, Any] = {
            "id": str(self.id),
            "application_id": str(self.application_id),
            "version": str(self.version),
            # Sent as an integer by discord.py, always answered as a string.
            "default_member_permissions": None if perms is None else str(perms),
            "type": self.type,
            "name": d["name"],
            "name_localizations": d.get("name_localizations"),
            "description": d.get("description", ""),
            "description_localizations": d.get("description_localizations"),
            "dm_permission": d.get("dm_permission", True),
            "contexts": d.get("contexts"),
            "integration_types": d.get("integration_types") or [0],
            "nsfw": bool(d.get("nsfw", False)),
        }
        if self.guild_id is not None:
            out["guild_id"] = str(self.guild_id)
        if d.get("options"):
            out["options"] = d["options"]
        return out

    def __repr__(self) -> str:
        return f"<Command {self.name!r} id={self.id} guild={self.guild_id}>"
