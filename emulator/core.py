"""The Emulator: one aiohttp server holding the REST API, the gateway and the control API, plus the world."""

from __future__ import annotations

import asyncio
import base64
import mimetypes
import re
import secrets
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

from . import permissions as P
from .errors import (
    CANNOT_DM_USER,
    MISSING_ACCESS,
    MISSING_PERMISSIONS,
    UNKNOWN_CHANNEL,
    UNKNOWN_MESSAGE,
    APIError,
)
from .faults import Faults
from .gateway import Gateway
from .interactions import Interaction
from .models import (
    DM,
    GUILD_TEXT,
    PUBLIC_THREAD,
    Attachment,
    Channel,
    Command,
    Guild,
    Member,
    Message,
    Role,
    User,
    now,
)
from .ratelimit import RateLimiter
from .snowflake import SnowflakeFactory

T = TypeVar("T")

MENTION_RE = re.compile(r"<@!?(\d+)>")
ROLE_MENTION_RE = re.compile(r"<@&(\d+)>")

# What a bot may do in a DM: no moderation there.
DM_PERMISSIONS = (
    P.VIEW_CHANNEL | P.SEND_MESSAGES | P.EMBED_LINKS | P.ATTACH_FILES | P.ADD_REACTIONS | P.READ_MESSAGE_HISTORY
    | P.USE_EXTERNAL_EMOJIS
)


class EmulatorTimeout(TimeoutError, AssertionError):
    """A waiting helper ran out of time; the message says what was awaited and what was seen."""


@dataclass
class UploadedFile:
    filename: str
    data: bytes
    content_type: str | None = None
    description: str | None = None


@dataclass
class RestCall:
    """One REST request the bot made, with its answer."""

    method: str
    path: str
    route: str | None  # "METHOD /template" or None for an unknown route
    query: dict[str, str]
    body: Any
    files: list[str]
    status: int
    response: Any
    started: float  # loop time
    finished: float
    content_type: str | None = None
    error_code: int | None = None

    @property
    def duration(self) -> float:
        return self.finished - self.started

    def __repr__(self) -> str:
        return f"<RestCall {self.method} {self.path} -> {self.status}>"


@dataclass
class TypingEvent:
    channel_id: int
    at: float


@dataclass
class _Waiters:
    futures: list[asyncio.Future] = field(default_factory=list)

    def notify(self) -> None:
        for fut in self.futures:
            if not fut.done():
                fut.set_result(None)
        self.futures.clear()


class Emulator:
    """A Discord API (REST v10 + gateway + control API) on loopback, and the test's handle on it.

    Typical use::

        emu = Emulator()
        await emu.start()
        guild = await emu.create_guild("Test")
        alice = await emu.create_user("alice", guild=guild)
        ...
        await emu.stop()
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        bot_name: str = "EmuBot",
        application_name: str | None = None,
        interaction_deadline: float = 3.0,
        interaction_token_ttl: float = 15 * 60,
        rate_limits: bool = True,
        heartbeat_interval_ms: int = 41250,
        history_limit: int | None = None,
        shards: int = 1,
    ) -> None:
        """history_limit: keep only the last N REST calls and gateway events (a long-running playground or
        benchmark); tests keep everything. shards: the shard count `GET /gateway/bot` recommends (the
        gateway routes each guild's events to the session of shard (guild id >> 22) % count, DMs to 0)."""
        if shards < 1:
            raise ValueError("shards must be at least 1")
        self.shard_count = shards
        self.ids = SnowflakeFactory()
        self.application_id = self.ids.next()
        # Discord tokens start with the base64 of the bot's id; discord.py never checks, but tools do.
        prefix = base64.b64encode(str(self.application_id).encode()).decode().rstrip("=")
        self.token = token or f"{prefix}.emu.{secrets.token_urlsafe(27)}"
        self.bot_user = User(self.application_id, bot_name, None, bot=True)
        self.owner = User(self.ids.next(), f"{bot_name.lower()}-owner")
        self.application_name = application_name or bot_name
        self.interaction_deadline = interaction_deadline
        self.interaction_token_ttl = interaction_token_ttl

        self.users: dict[int, User] = {self.bot_user.id: self.bot_user, self.owner.id: self.owner}
        self.guilds: dict[int, Guild] = {}
        self.channels: dict[int, Channel] = {}
        self.messages: dict[int, Message] = {}
        self.dm_channels: dict[int, Channel] = {}  # user id -> DM channel with the bot
        self.commands: dict[int, Command] = {}
        # A server admin's per-command overrides (Server Settings > Integrations), as Discord stores them:
        # (guild id, command id) -> [{"id", "type" (1 role, 2 user), "permission"}].
        self.command_overrides: dict[tuple[int, int], list[dict[str, Any]]] = {}
        self.interactions: dict[int, Interaction] = {}
        self.interactions_by_token: dict[str, Interaction] = {}
        self.attachments: dict[int, Attachment] = {}
        self.calls: deque[RestCall] = deque(maxlen=history_limit)
        self.unknown_routes: list[str] = []
        # Requests a handler could not make sense of (answered 50035); usually a client bug, sometimes ours.
        self.internal_errors: list[str] = []
        self.typing: list[TypingEvent] = []
        self.rate_limit_violations: list[RestCall] = []

        self.gateway = Gateway(self, history_limit=history_limit)
        self.gateway.heartbeat_interval_ms = heartbeat_interval_ms
        self.rate_limits = RateLimiter(enabled=rate_limits)
        self.faults = Faults()

        self.host = "127.0.0.1"
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._waiters = _Waiters()
        # Called with every message that was created, edited, deleted or reacted to (the web client's feed).
        self.message_observers: list[Callable[[Message], None]] = []

    # ---- lifecycle -------------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> Emulator:
        from .control import setup_control
        from .rest import setup_rest
        from .web_client import setup_web

        app = web.Application(client_max_size=64 * 1024 * 1024)
        setup_rest(app, self)
        setup_control(app, self)
        setup_web(app)
        app.router.add_get("/gateway", self.gateway.handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        assert server is not None and server.sockets
        self.host = host
        self.port = server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self.gateway.close_all(code=1001)
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Emulator:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def rest_url(self) -> str:
        """The value for `discord.http.Route.BASE`."""
        return f"{self.base_url}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://{self.host}:{self.port}/gateway"

    @property
    def control_url(self) -> str:
        return f"{self.base_url}/_emulator"

    @property
    def web_url(self) -> str:
        """The Discord-like web client (a person acts as the emulated users in a browser)."""
        return f"{self.base_url}/"

    # ---- waiting ---------------------------------------------------------------------------------------

    def notify(self) -> None:
        """Wake every waiting helper so it re-checks its condition."""
        self._waiters.notify()

    def message_changed(self, msg: Message) -> None:
        """Tell the observers (e.g. the web client's live feed) that a message changed, then wake waiters."""
        for observer in list(self.message_observers):
            observer(msg)
        self.notify()

    async def wait_for(self, check: Callable[[], T | None], *, timeout: float = 5.0, what: str = "condition") -> T:  # noqa: ASYNC109 (a timeout argument is this helper's API)
        """Wait until `check()` returns something truthy, re-checking whenever the world changes.

        The check is also re-run every few milliseconds, because it may look at the bot's own state
        (which the emulator is not told about).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = check()
            if result:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise EmulatorTimeout(f"timed out after {timeout}s waiting for {what}")
            fut = loop.create_future()
            self._waiters.futures.append(fut)
            try:
                await asyncio.wait_for(fut, min(remaining, 0.01))
            except TimeoutError:
                pass

    def _resolve_channel(self, where: Channel | User | int | Message) -> Channel:
        if isinstance(where, Channel):
            return where
        if isinstance(where, Message):
            return self.channels[where.channel_id]
        if isinstance(where, User):
            return self.dm_channel_for(where)
        channel = self.channels.get(int(where))
        if channel is None:
            raise KeyError(f"unknown channel {where}")
        return channel

    async def wait_for_message(
        self,
        where: Channel | User | int,
        predicate: Callable[[Message], bool] | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109 (a timeout argument is this helper's API)
        *,
        author: User | int | str | None = "bot",
        after: Message | int | None = None,
    ) -> Message:
        """Wait for a message in a channel (or in the DM with a user) and return the oldest match.

        author: "bot" (default) for the bot's messages, a user or id, or None for anyone.
        after: only messages newer than this message (or id) count.
        """
        channel = self._resolve_channel(where)
        author_id = self.bot_user.id if author == "bot" else (author.id if isinstance(author, User) else author)
        after_id = after.id if isinstance(after, Message) else (after or 0)

        def check() -> Message | None:
            for msg in channel.messages.values():
                if msg.deleted or msg.id <= after_id or msg.loading:
                    continue
                if author_id is not None and msg.author.id != int(author_id):
                    continue
                if predicate is None or predicate(msg):
                    return msg
            return None

        try:
            return await self.wait_for(check, timeout=timeout, what=f"a message in {channel!r}")
        except EmulatorTimeout as exc:
            recent = [repr(m) for m in list(channel.messages.values())[-5:]]
            raise EmulatorTimeout(f"{exc}; last messages there: {recent}") from None

    async def wait_for_edit(
        self, message: Message, predicate: Callable[[Message], bool], timeout: float = 5.0  # noqa: ASYNC109 (a timeout argument is this helper's API)
    ) -> Message:
        """Wait until `predicate(message)` holds, re-checked after every edit of the message."""
        try:
            return await self.wait_for(
                lambda: message if predicate(message) else None, timeout=timeout, what=f"an edit of {message!r}"
            )
        except EmulatorTimeout as exc:
            raise EmulatorTimeout(f"{exc}; versions so far: {message.contents}") from None

    async def wait_for_commands(
        self, *names: str, guild: Guild | None = None, timeout: float = 5.0  # noqa: ASYNC109 (a timeout argument is this helper's API)
    ) -> list[Command]:
        """Wait until the bot registered these commands (globally, or in `guild`)."""

        def check() -> list[Command] | None:
            found = [self.find_command(n, guild=guild, fallback_global=False) for n in names]
            return found if all(found) else None  # type: ignore[return-value]

        return await self.wait_for(check, timeout=timeout, what=f"commands {names}")

    async def wait_until_connected(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109 (a timeout argument is this helper's API)
        await self.wait_for(lambda: self.gateway.connected, timeout=timeout, what="a gateway session")

    # ---- lookups ---------------------------------------------------------------------------------------

    def get_channel(self, channel_id: int | str | None) -> Channel | None:
        return None if channel_id is None else self.channels.get(int(channel_id))

    def get_message(self, message_id: int | str) -> Message | None:
        return self.messages.get(int(message_id))

    def get_user(self, user_id: int | str) -> User | None:
        return self.users.get(int(user_id))

    def get_guild(self, guild_id: int | str) -> Guild | None:
        return self.guilds.get(int(guild_id))

    def dm_channel(self, user: User | int) -> Channel | None:
        """The DM channel between a user and the bot, if either side opened it."""
        uid = user.id if isinstance(user, User) else int(user)
        return self.dm_channels.get(uid)

    def dm_channel_for(self, user: User) -> Channel:
        channel = self.dm_channels.get(user.id)
        if channel is None:
            channel = Channel(id=self.ids.next(), type=DM, recipients=[user])
            self.channels[channel.id] = channel
            self.dm_channels[user.id] = channel
        return channel

    def channel_messages(self, where: Channel | User | int, *, include_ephemeral: bool = True) -> list[Message]:
        """Live messages in a channel (or the DM with a user), oldest first."""
        channel = self._resolve_channel(where)
        return [m for m in channel.visible_messages() if include_ephemeral or not m.ephemeral]

    def bot_messages(self, where: Channel | User | int) -> list[Message]:
        return [m for m in self.channel_messages(where) if m.author.id == self.bot_user.id]

    def guild_commands(self, guild: Guild | None = None) -> list[Command]:
        gid = guild.id if guild else None
        return [c for c in self.commands.values() if c.guild_id == gid]

    def find_command(
        self, name: str, *, guild: Guild | None = None, type: int = 1, fallback_global: bool = True
    ) -> Command | None:
        gid = guild.id if guild else None
        for cmd in self.commands.values():
            if cmd.name == name and cmd.type == type and cmd.guild_id == gid:
                return cmd
        if guild is not None and fallback_global:
            return self.find_command(name, guild=None, type=type)
        return None

    async def set_command_permissions(
        self, guild: Guild, name: str, *, roles: Iterable[Role] = (), users: Iterable[User] = (),
        allow: bool = True, type: int = 1,
    ) -> None:
        """What a server admin does in Integrations: let (or forbid) these roles and members use a command
        whatever its default member permissions say."""
        cmd = self.find_command(name, guild=guild, type=type)
        if cmd is None:
            raise ValueError(f"no command {name!r} for guild {guild.name!r}")
        entries = self.command_overrides.setdefault((guild.id, cmd.id), [])
        targets = [(r.id, 1) for r in roles] + [(u.id, 2) for u in users]
        ids = {target_id for target_id, _ in targets}
        entries[:] = [e for e in entries if int(e["id"]) not in ids]
        entries += [{"id": str(target_id), "type": kind, "permission": allow} for target_id, kind in targets]
        self.notify()

    def command_override(self, guild: Guild, cmd: Command, member_id: int) -> bool | None:
        """The admin's verdict for this member on this command: a member entry wins over role entries,
        an allowing role over a denying one; None when no entry applies."""
        entries = self.command_overrides.get((guild.id, cmd.id), [])
        for entry in entries:
            if entry["type"] == 2 and int(entry["id"]) == member_id:
                return bool(entry["permission"])
        member = guild.members.get(member_id)
        held = {guild.id, *(member.role_ids if member else [])}
        verdicts = [bool(e["permission"]) for e in entries if e["type"] == 1 and int(e["id"]) in held]
        return any(verdicts) if verdicts else None

    def calls_to(self, route: str) -> list[RestCall]:
        """Calls of one route, e.g. `"PATCH /channels/{channel_id}/messages/{message_id}"`."""
        return [c for c in self.calls if c.route == route]

    def snowflake_on_shard(self, shard: int) -> int:
        """A fresh snowflake whose guild would live on this shard (its millisecond part decides)."""
        if not 0 <= shard < self.shard_count:
            raise ValueError(f"shard {shard} is not below the shard count {self.shard_count}")
        while ((snowflake := self.ids.next()) >> 22) % self.shard_count != shard:  # at most shard_count ms
            pass
        return snowflake

    def guild_of(self, channel: Channel) -> Guild | None:
        return self.guilds.get(channel.guild_id) if channel.guild_id else None

    # ---- world building --------------------------------------------------------------------------------

    async def create_guild(
        self,
        name: str = "Test Guild",
        *,
        owner: User | None = None,
        channels: Iterable[str] = ("general",),
        bot_permissions: int = P.DEFAULT_BOT,
        moderator_permissions: int = P.DEFAULT_MODERATOR,
        id: int | None = None,
        shard: int | None = None,
    ) -> Guild:
        """A guild with @everyone, a Moderator role, the bot as a member (with its managed role) and text channels.

        `id` picks the guild's snowflake; `shard` a fresh one on that shard of `shard_count`; by default a
        fresh one.
        """
        if shard is not None:
            id = self.snowflake_on_shard(shard)
        owner = owner or self.owner
        self._check_free_id(id)
        guild = Guild(id=id or self.ids.next(), name=name, owner_id=owner.id, _emu=self)
        guild.roles[guild.id] = Role(guild.id, guild.id, "@everyone", P.DEFAULT_EVERYONE, position=0)
        mod = Role(self.ids.next(), guild.id, "Moderator", moderator_permissions, position=1, hoist=True)
        guild.roles[mod.id] = mod
        bot_role = Role(
            self.ids.next(), guild.id, self.bot_user.username, bot_permissions, position=2, managed=True,
            bot_id=self.bot_user.id,
        )
        guild.roles[bot_role.id] = bot_role
        guild.members[owner.id] = Member(guild.id, owner)
        guild.members[self.bot_user.id] = Member(guild.id, self.bot_user, [bot_role.id])
        self.guilds[guild.id] = guild
        for position, channel_name in enumerate(channels):
            ch = Channel(id=self.ids.next(), type=GUILD_TEXT, name=channel_name, guild_id=guild.id, position=position)
            guild.channels[ch.id] = ch
            self.channels[ch.id] = ch
        # The bot joining a guild while connected: Discord sends GUILD_CREATE.
        self.gateway.dispatch("GUILD_CREATE", guild.gateway_dict(), guild_id=guild.id)
        self.notify()
        return guild

    def _check_free_id(self, id: int | None) -> None:
        if id is not None and (id in self.guilds or id in self.channels or id in self.users):
            raise ValueError(f"id {id} is already taken")

    def bot_role(self, guild: Guild) -> Role:
        return next(r for r in guild.roles.values() if r.bot_id == self.bot_user.id)

    def moderator_role(self, guild: Guild) -> Role:
        return guild.role("Moderator")

    async def set_bot_permissions(self, guild: Guild, permissions: int) -> None:
        """Permissions of the bot's managed role (@everyone's still apply on top)."""
        await self.set_role_permissions(self.bot_role(guild), permissions)

    async def set_role_permissions(self, role: Role, permissions: int) -> None:
        role.permissions = permissions
        self.gateway.dispatch("GUILD_ROLE_UPDATE", {"guild_id": str(role.guild_id), "role": role.to_dict()},
                              guild_id=role.guild_id)
        self.notify()

    async def set_channel_overwrite(
        self, channel: Channel, target: Role | User, *, allow: int = 0, deny: int = 0
    ) -> None:
        """Set a permission overwrite for a role or a member (the bot included) on a channel."""
        kind = 0 if isinstance(target, Role) else 1
        channel.permission_overwrites = [o for o in channel.permission_overwrites if int(o["id"]) != target.id]
        if allow or deny:
            channel.permission_overwrites.append(
                {"id": str(target.id), "type": kind, "allow": str(allow), "deny": str(deny)}
            )
        self.gateway.dispatch("CHANNEL_UPDATE", channel.to_dict(), guild_id=channel.guild_id)
        self.notify()

    async def create_channel(
        self,
        guild: Guild,
        name: str,
        *,
        type: int = GUILD_TEXT,
        parent: Channel | None = None,
        topic: str | None = None,
        overwrites: list[dict[str, Any]] | None = None,
        id: int | None = None,
    ) -> Channel:
        """`id` picks the channel's snowflake (a playground keeps its ids across restarts)."""
        self._check_free_id(id)
        ch = Channel(
            id=id or self.ids.next(), type=type, name=name, guild_id=guild.id, position=len(guild.channels),
            parent_id=parent.id if parent else None, topic=topic, permission_overwrites=list(overwrites or []),
        )
        guild.channels[ch.id] = ch
        self.channels[ch.id] = ch
        self.gateway.dispatch("CHANNEL_CREATE", ch.to_dict(), guild_id=guild.id)
        self.notify()
        return ch

    async def create_role(
        self, guild: Guild, name: str, *, permissions: int = 0, color: int = 0, hoist: bool = False,
        mentionable: bool = False,
    ) -> Role:
        # New roles go just under the bot's role, as when an admin adds them with the default position.
        bot_role = self.bot_role(guild)
        position = bot_role.position
        bot_role.position += 1
        role = Role(self.ids.next(), guild.id, name, permissions, position=position, color=color, hoist=hoist,
                    mentionable=mentionable)
        guild.roles[role.id] = role
        self.gateway.dispatch("GUILD_ROLE_CREATE", {"guild_id": str(guild.id), "role": role.to_dict()},
                              guild_id=guild.id)
        self.notify()
        return role

    async def create_user(
        self,
        name: str,
        *,
        guild: Guild | None = None,
        moderator: bool = False,
        roles: Iterable[Role] = (),
        global_name: str | None = None,
        accepts_dms: bool = True,
        bot: bool = False,
        id: int | None = None,
    ):
        """A user who can act (dm, slash, click, react...); with `guild`, also a member of it. `id` picks the
        user's snowflake (a playground's members stay the same people in its database across restarts)."""
        from .actors import EmulatedUser

        self._check_free_id(id)
        user = EmulatedUser(id or self.ids.next(), name, global_name, bot=bot, accepts_dms=accepts_dms, _emu=self)
        self.users[user.id] = user
        if guild is not None:
            await self.add_member(guild, user, roles=roles, moderator=moderator)
        return user

    async def add_member(
        self, guild: Guild, user: User, *, roles: Iterable[Role] = (), moderator: bool = False
    ) -> Member:
        role_ids = [r.id for r in roles]
        if moderator:
            role_ids.append(self.moderator_role(guild).id)
        member = Member(guild.id, user, role_ids)
        guild.members[user.id] = member
        data = member.to_dict()
        data["guild_id"] = str(guild.id)
        self.gateway.dispatch("GUILD_MEMBER_ADD", data, guild_id=guild.id)
        self.notify()
        return member

    async def set_member_roles(self, guild: Guild, user: User, roles: Iterable[Role]) -> Member:
        member = guild.members[user.id]
        member.role_ids = [r.id for r in roles]
        self._member_updated(guild, member)
        return member

    def _member_updated(self, guild: Guild, member: Member) -> None:
        data = member.to_dict()
        data["guild_id"] = str(guild.id)
        self.gateway.dispatch("GUILD_MEMBER_UPDATE", data, guild_id=guild.id)
        self.notify()

    # ---- permissions -----------------------------------------------------------------------------------

    def permissions_in(self, channel: Channel, user: User | int) -> int:
        uid = user.id if isinstance(user, User) else int(user)
        if channel.is_dm:
            return DM_PERMISSIONS
        guild = self.guilds[channel.guild_id]  # type: ignore[index]
        return P.channel_permissions(guild, channel, uid)

    def require(self, channel: Channel, perms: int, user: User | None = None) -> None:
        """Raise Discord's error if `user` (default: the bot) lacks `perms` in `channel`."""
        have = self.permissions_in(channel, user or self.bot_user)
        if not have & P.VIEW_CHANNEL:
            raise APIError(MISSING_ACCESS)
        if have & perms != perms:
            raise APIError(MISSING_PERMISSIONS)

    # ---- messages --------------------------------------------------------------------------------------

    def _attachment(self, channel: Channel, upload: UploadedFile, *, ephemeral: bool = False) -> Attachment:
        att_id = self.ids.next()
        url = f"{self.base_url}/attachments/{channel.id}/{att_id}/{upload.filename}"
        content_type = upload.content_type
        if not content_type or content_type == "application/octet-stream":
            content_type = mimetypes.guess_type(upload.filename)[0] or content_type
        att = Attachment(att_id, upload.filename, upload.data, url, content_type, upload.description, ephemeral)
        self.attachments[att.id] = att
        return att

    def _mentions(self, content: str, guild: Guild | None) -> tuple[list[User], list[int]]:
        users = []
        for uid in MENTION_RE.findall(content or ""):
            user = self.users.get(int(uid))
            if user is not None and user not in users:
                users.append(user)
        roles = [int(r) for r in ROLE_MENTION_RE.findall(content or "") if guild and int(r) in guild.roles]
        return users, roles

    def message_event(self, msg: Message) -> dict[str, Any]:
        """MESSAGE_CREATE / MESSAGE_UPDATE payload: the message plus guild_id, member and mentions."""
        data = msg.to_dict(viewer_id=self.bot_user.id)
        guild = self.guilds.get(msg.guild_id) if msg.guild_id else None
        if guild is not None:
            data["guild_id"] = str(guild.id)
            member = guild.members.get(msg.author.id)
            if member is not None and msg.webhook_id is None:
                data["member"] = member.to_dict(with_user=False)
            for mention in data["mentions"]:
                m = guild.members.get(int(mention["id"]))
                if m is not None:
                    mention["member"] = m.to_dict(with_user=False)
        return data

    def post_message(
        self,
        channel: Channel,
        author: User,
        payload: dict[str, Any],
        files: Sequence[UploadedFile] = (),
        *,
        type: int = 0,
        webhook_id: int | None = None,
        interaction_metadata: dict[str, Any] | None = None,
        visible_to: int | None = None,
        dispatch: bool = True,
    ) -> Message:
        """Store a new message (already validated) and send MESSAGE_CREATE unless it is ephemeral."""
        flags = int(payload.get("flags") or 0)
        ephemeral = bool(flags & 64)
        msg = Message(
            id=self.ids.next(),
            channel_id=channel.id,
            guild_id=channel.guild_id,
            author=author,
            content=str(payload.get("content") or ""),
            embeds=list(payload.get("embeds") or []),
            components=list(payload.get("components") or []),
            flags=flags,
            type=type,
            tts=bool(payload.get("tts")),
            webhook_id=webhook_id,
            application_id=self.application_id if webhook_id else None,
            interaction_metadata=interaction_metadata,
            nonce=payload.get("nonce"),
            visible_to=visible_to,
            _emu=self,
        )
        msg.attachments = [self._attachment(channel, f, ephemeral=ephemeral) for f in files]
        ref = payload.get("message_reference")
        if ref and ref.get("message_id"):
            target = self.messages.get(int(ref["message_id"]))
            if target is not None and target.channel_id == channel.id:
                msg.message_reference = {
                    "type": 0,
                    "message_id": str(target.id),
                    "channel_id": str(channel.id),
                    **({"guild_id": str(channel.guild_id)} if channel.guild_id else {}),
                }
                msg.referenced_message = target
                if msg.type == 0:
                    msg.type = 19
        msg.history.append(msg.snapshot())
        channel.messages[msg.id] = msg
        channel.total_message_sent += 1
        self.messages[msg.id] = msg
        if channel.is_thread and channel.archived and not channel.locked:
            channel.archived = False
        if dispatch and not ephemeral:
            self._dispatch_message("MESSAGE_CREATE", msg)
        self.message_changed(msg)
        return msg

    def _dispatch_message(self, event: str, msg: Message) -> None:
        data = self.message_event(msg)
        mentions_bot = any(int(u["id"]) == self.bot_user.id for u in data["mentions"])
        self.gateway.dispatch(event, data, guild_id=msg.guild_id, content_of=msg.author.id, mentions_bot=mentions_bot)

    def edit_message(
        self, msg: Message, payload: dict[str, Any], files: Sequence[UploadedFile] = ()
    ) -> Message:
        """Apply an edit (already validated): record the new revision and send MESSAGE_UPDATE."""
        if "content" in payload:
            msg.content = str(payload["content"] or "")
        if "embeds" in payload:
            msg.embeds = list(payload["embeds"] or [])
        if "components" in payload:
            msg.components = list(payload["components"] or [])
        if payload.get("flags") is not None:
            # Only SUPPRESS_EMBEDS may be toggled by an edit; ephemeral/loading stay as they were.
            keep = msg.flags & ~(1 << 2)
            msg.flags = keep | (int(payload["flags"]) & (1 << 2))
        channel = self.channels[msg.channel_id]
        if "attachments" in payload and payload["attachments"] is not None:
            keep_ids = {int(a["id"]) for a in payload["attachments"] if str(a.get("id", "")).isdigit()
                        and int(a["id"]) in {x.id for x in msg.attachments}}
            msg.attachments = [a for a in msg.attachments if a.id in keep_ids]
        msg.attachments.extend(self._attachment(channel, f, ephemeral=msg.ephemeral) for f in files)
        msg.flags &= ~(1 << 7)  # an edit fills in a deferred "thinking" message
        msg.edited_at = now()
        msg.history.append(msg.snapshot())
        if not msg.ephemeral:
            self._dispatch_message("MESSAGE_UPDATE", msg)
        self.message_changed(msg)
        return msg

    def delete_message(self, msg: Message) -> None:
        msg.deleted = True
        if not msg.ephemeral:
            data = {"id": str(msg.id), "channel_id": str(msg.channel_id)}
            if msg.guild_id:
                data["guild_id"] = str(msg.guild_id)
            self.gateway.dispatch("MESSAGE_DELETE", data, guild_id=msg.guild_id)
        self.message_changed(msg)

    def find_message(self, channel: Channel, message_id: int | str) -> Message:
        msg = channel.messages.get(int(message_id))
        if msg is None or msg.deleted:
            raise APIError(UNKNOWN_MESSAGE)
        return msg

    def channel_or_404(self, channel_id: int | str) -> Channel:
        try:
            channel = self.channels.get(int(channel_id))
        except ValueError:
            channel = None
        if channel is None:
            raise APIError(UNKNOWN_CHANNEL)
        return channel

    def check_can_dm(self, user: User) -> None:
        if user.bot or not user.accepts_dms:
            raise APIError(CANNOT_DM_USER)

    # ---- reactions -------------------------------------------------------------------------------------

    def add_reaction(self, msg: Message, user: User, emoji_key: str, emoji: dict[str, Any]) -> bool:
        users = msg.reactions.setdefault(emoji_key, [])
        msg.reaction_emojis.setdefault(emoji_key, emoji)
        if user.id in users:
            return False
        users.append(user.id)
        data: dict[str, Any] = {
            "user_id": str(user.id),
            "channel_id": str(msg.channel_id),
            "message_id": str(msg.id),
            "emoji": emoji,
            "message_author_id": str(msg.author.id),
            "burst": False,
            "burst_colors": [],
            "type": 0,
        }
        if msg.guild_id:
            data["guild_id"] = str(msg.guild_id)
            member = self.guilds[msg.guild_id].members.get(user.id)
            if member is not None:
                data["member"] = member.to_dict()
        self.gateway.dispatch("MESSAGE_REACTION_ADD", data, guild_id=msg.guild_id)
        self.message_changed(msg)
        return True

    def remove_reaction(self, msg: Message, user_id: int, emoji_key: str) -> bool:
        users = msg.reactions.get(emoji_key)
        if not users or user_id not in users:
            return False
        users.remove(user_id)
        data: dict[str, Any] = {
            "user_id": str(user_id),
            "channel_id": str(msg.channel_id),
            "message_id": str(msg.id),
            "emoji": msg.reaction_emojis[emoji_key],
            "burst": False,
            "type": 0,
        }
        if msg.guild_id:
            data["guild_id"] = str(msg.guild_id)
        if not users:
            del msg.reactions[emoji_key]
        self.gateway.dispatch("MESSAGE_REACTION_REMOVE", data, guild_id=msg.guild_id)
        self.message_changed(msg)
        return True

    def clear_reactions(self, msg: Message, emoji_key: str | None = None) -> None:
        base: dict[str, Any] = {"channel_id": str(msg.channel_id), "message_id": str(msg.id)}
        if msg.guild_id:
            base["guild_id"] = str(msg.guild_id)
        if emoji_key is None:
            msg.reactions.clear()
            self.gateway.dispatch("MESSAGE_REACTION_REMOVE_ALL", base, guild_id=msg.guild_id)
        else:
            emoji = msg.reaction_emojis.get(emoji_key)
            msg.reactions.pop(emoji_key, None)
            self.gateway.dispatch("MESSAGE_REACTION_REMOVE_EMOJI", {**base, "emoji": emoji}, guild_id=msg.guild_id)
        self.message_changed(msg)

    # ---- threads ---------------------------------------------------------------------------------------

    def create_thread(
        self, parent: Channel, name: str, owner: User, *, message: Message | None = None, type: int = PUBLIC_THREAD,
        auto_archive_duration: int = 1440,
    ) -> Channel:
        # A thread started from a message takes the message's id, as on Discord.
        thread_id = message.id if message is not None else self.ids.next()
        thread = Channel(
            id=thread_id, type=type, name=name, guild_id=parent.guild_id, parent_id=parent.id, owner_id=owner.id,
            auto_archive_duration=auto_archive_duration, member_ids={owner.id},
        )
        guild = self.guilds[parent.guild_id]  # type: ignore[index]
        guild.channels[thread.id] = thread
        self.channels[thread.id] = thread
        if message is not None:
            message.thread_id = thread.id
        data = thread.to_dict()
        data["newly_created"] = True
        if owner.id == self.bot_user.id:
            data["member"] = {"id": str(thread.id), "user_id": str(owner.id), "join_timestamp": data[
                "thread_metadata"]["create_timestamp"], "flags": 0}
        self.gateway.dispatch("THREAD_CREATE", data, guild_id=guild.id)
        self.notify()
        return thread

    # ---- interactions ----------------------------------------------------------------------------------

    def new_interaction(
        self,
        user: User,
        channel: Channel,
        type: int,
        data: dict[str, Any],
        *,
        message: Message | None = None,
        triggered_by: Interaction | None = None,
    ) -> Interaction:
        """Build and dispatch INTERACTION_CREATE; the returned handle records the bot's answers."""
        guild = self.guild_of(channel)
        iid = self.ids.next()
        token = f"aW50ZXJhY3Rpb246{iid}:{secrets.token_urlsafe(48)}"
        payload: dict[str, Any] = {
            "id": str(iid),
            "application_id": str(self.application_id),
            "type": type,
            "data": data,
            "channel_id": str(channel.id),
            "channel": channel.to_dict(),
            "token": token,
            "version": 1,
            "locale": "en-US",
            "entitlements": [],
            "attachment_size_limit": 10 * 1024 * 1024,
            "app_permissions": str(self.permissions_in(channel, self.bot_user)),
        }
        if guild is not None:
            member = guild.members[user.id]
            mdata = member.to_dict()
            mdata["permissions"] = str(self.permissions_in(channel, user))
            payload.update(
                guild_id=str(guild.id),
                guild={"id": str(guild.id), "locale": "en-US", "features": []},
                guild_locale="en-US",
                member=mdata,
                context=0,
                authorizing_integration_owners={"0": str(guild.id)},
            )
        else:
            payload.update(user=user.to_dict(), context=1, authorizing_integration_owners={"0": str(user.id)})
        if message is not None:
            payload["message"] = message.to_dict(viewer_id=self.bot_user.id)
            if guild is not None:
                payload["message"]["guild_id"] = str(guild.id)
        interaction = Interaction(
            id=iid, token=token, type=type, user=user, channel=channel, guild=guild, data=data, payload=payload,
            created_at=asyncio.get_running_loop().time(), source_message=message, triggered_by=triggered_by,
            _emu=self,
        )
        self.interactions[iid] = interaction
        self.interactions_by_token[token] = interaction
        # Interactions are always delivered, whatever the intents.
        self.gateway.dispatch("INTERACTION_CREATE", payload, guild_id=guild.id if guild else None)
        self.notify()
        return interaction
