"""The gateway: an aiohttp websocket speaking Discord's gateway protocol (v10, JSON, optional zlib-stream)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import zlib
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

if TYPE_CHECKING:
    from .core import Emulator

try:  # zstd-stream is only offered when a zstd binding is installed, as in discord.py itself
    import zstandard as _zstd  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the environment
    _zstd = None

log = logging.getLogger(__name__)

DISPATCH, HEARTBEAT, IDENTIFY, PRESENCE_UPDATE = 0, 1, 2, 3
RESUME, RECONNECT, REQUEST_GUILD_MEMBERS, INVALID_SESSION, HELLO, HEARTBEAT_ACK = 6, 7, 8, 9, 10, 11
# Seconds before a heartbeat's ACK: a short network round trip, and well above Python's 5 ms thread switch
# interval, which is how long discord.py's keep-alive thread may wait to note when it sent the beat.
HEARTBEAT_ACK_DELAY = 0.05

# Intents
GUILDS = 1 << 0
GUILD_MEMBERS = 1 << 1
GUILD_PRESENCES = 1 << 8
GUILD_MESSAGES = 1 << 9
GUILD_MESSAGE_REACTIONS = 1 << 10
DIRECT_MESSAGES = 1 << 12
DIRECT_MESSAGE_REACTIONS = 1 << 13
MESSAGE_CONTENT = 1 << 15
PRIVILEGED = GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT
ALL_INTENTS = (1 << 26) - 1

# Which intent carries an event (guild flavour, DM flavour); missing means always sent.
EVENT_INTENTS: dict[str, tuple[int, int]] = {
    "MESSAGE_CREATE": (GUILD_MESSAGES, DIRECT_MESSAGES),
    "MESSAGE_UPDATE": (GUILD_MESSAGES, DIRECT_MESSAGES),
    "MESSAGE_DELETE": (GUILD_MESSAGES, DIRECT_MESSAGES),
    "MESSAGE_DELETE_BULK": (GUILD_MESSAGES, DIRECT_MESSAGES),
    "MESSAGE_REACTION_ADD": (GUILD_MESSAGE_REACTIONS, DIRECT_MESSAGE_REACTIONS),
    "MESSAGE_REACTION_REMOVE": (GUILD_MESSAGE_REACTIONS, DIRECT_MESSAGE_REACTIONS),
    "MESSAGE_REACTION_REMOVE_ALL": (GUILD_MESSAGE_REACTIONS, DIRECT_MESSAGE_REACTIONS),
    "MESSAGE_REACTION_REMOVE_EMOJI": (GUILD_MESSAGE_REACTIONS, DIRECT_MESSAGE_REACTIONS),
    "CHANNEL_CREATE": (GUILDS, 0),
    "CHANNEL_UPDATE": (GUILDS, 0),
    "CHANNEL_DELETE": (GUILDS, 0),
    "THREAD_CREATE": (GUILDS, GUILDS),
    "THREAD_UPDATE": (GUILDS, GUILDS),
    "THREAD_DELETE": (GUILDS, GUILDS),
    "GUILD_ROLE_CREATE": (GUILDS, GUILDS),
    "GUILD_ROLE_UPDATE": (GUILDS, GUILDS),
    "GUILD_ROLE_DELETE": (GUILDS, GUILDS),
    "GUILD_MEMBER_ADD": (GUILD_MEMBERS, GUILD_MEMBERS),
    "GUILD_MEMBER_UPDATE": (GUILD_MEMBERS, GUILD_MEMBERS),
    "GUILD_MEMBER_REMOVE": (GUILD_MEMBERS, GUILD_MEMBERS),
}

CONTENT_FIELDS = ("content", "embeds", "attachments", "components")


@dataclass
class SentEvent:
    session_id: str
    seq: int
    event: str
    data: dict[str, Any]


@dataclass(eq=False)
class Session:
    id: str
    intents: int
    shard: tuple[int, int]
    seq: int = 0
    buffer: deque = field(default_factory=lambda: deque(maxlen=10000))
    connection: Connection | None = None
    resumable: bool = True
    presence: dict[str, Any] | None = None

    def handles_guild(self, guild_id: int | None) -> bool:
        shard_id, count = self.shard
        if guild_id is None:
            return shard_id == 0
        return (guild_id >> 22) % count == shard_id


@dataclass(eq=False)
class Connection:
    ws: web.WebSocketResponse
    request: web.Request
    compress: str | None
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    session: Session | None = None
    writer: asyncio.Task | None = None
    watchdog: asyncio.Task | None = None
    # Set when the emulator ends the connection, so the client's answering close frame is not taken for a
    # clean logout (which would end the session).
    server_closed: bool = False
    last_heartbeat: float | None = None
    heartbeats: int = 0
    _zlib: Any = None
    _zstd: Any = None

    def encode(self, frame: dict[str, Any]) -> str | bytes:
        text = json.dumps(frame, separators=(",", ":"), ensure_ascii=False)
        if self.compress == "zlib-stream":
            if self._zlib is None:
                self._zlib = zlib.compressobj()
            # One shared deflate stream per connection; each message ends with a sync flush (00 00 ff ff).
            return self._zlib.compress(text.encode()) + self._zlib.flush(zlib.Z_SYNC_FLUSH)
        if self.compress == "zstd-stream" and _zstd is not None:
            if self._zstd is None:
                self._zstd = _zstd.ZstdCompressor().compressobj()
            return self._zstd.compress(text.encode()) + self._zstd.flush(_zstd.COMPRESSOBJ_FLUSH_BLOCK)
        return text

    def send(self, frame: dict[str, Any]) -> None:
        self.queue.put_nowait(frame)

    async def write_loop(self) -> None:
        while True:
            frame = await self.queue.get()
            if frame is None:
                return
            data = self.encode(frame)
            try:
                if isinstance(data, bytes):
                    await self.ws.send_bytes(data)
                else:
                    await self.ws.send_str(data)
            except (ConnectionError, RuntimeError):
                return


class Gateway:
    def __init__(self, emu: Emulator, *, history_limit: int | None = None) -> None:
        self.emu = emu
        self.sessions: dict[str, Session] = {}
        self.connections: set[Connection] = set()
        self.sent: deque[SentEvent] = deque(maxlen=history_limit)
        self.heartbeat_interval_ms = 41250
        self.privileged_intents = PRIVILEGED
        self.identify_count = 0
        self.resume_count = 0
        # Connections closed because the client stopped heartbeating (e.g. its event loop was blocked).
        self.heartbeat_timeouts = 0
        self._duplicate_next: list[str] = []
        self._replay_extra = 0
        self._closing: set[asyncio.Future] = set()

    # ---- fault injection -------------------------------------------------------------------------------

    def drop(self, *, abrupt: bool = True, code: int = 4000) -> int:
        """Cut every connection; sessions stay resumable. Returns how many connections were dropped."""
        dropped = 0
        for conn in list(self.connections):
            conn.server_closed = True
            self._detach(conn)
            if abrupt and conn.request.transport is not None:
                # No close frame, as when a network path dies.
                conn.request.transport.abort()
            else:
                self._closing.add(asyncio.ensure_future(conn.ws.close(code=code)))
            dropped += 1
        return dropped

    async def close_all(self, code: int = 1001) -> None:
        """Close every connection with a close frame and wait until they are closed (server shutdown)."""
        self.drop(abrupt=False, code=code)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        self._closing.clear()

    def reconnect(self) -> None:
        """Send op 7 RECONNECT: the client closes and resumes."""
        for conn in list(self.connections):
            conn.send({"op": RECONNECT, "d": None})

    def invalidate(self, *, resumable: bool = False) -> None:
        """Send op 9 INVALID_SESSION; with resumable=False the client must identify anew."""
        for conn in list(self.connections):
            if conn.session is not None and not resumable:
                conn.session.resumable = False
            conn.send({"op": INVALID_SESSION, "d": resumable})

    def duplicate_next(self, event: str = "*") -> None:
        """Deliver the next dispatch of `event` (or any event) twice, with the same sequence number."""
        self._duplicate_next.append(event)

    def replay_on_resume(self, count: int) -> None:
        """The next RESUME also replays the `count` buffered events before the client's sequence number, as
        if its last acknowledgements were lost: the client sees events it already handled again."""
        self._replay_extra = count

    # ---- state for tests -------------------------------------------------------------------------------

    @property
    def ready_sessions(self) -> list[Session]:
        return [s for s in self.sessions.values() if s.connection is not None]

    @property
    def connected(self) -> bool:
        return bool(self.ready_sessions)

    def events(self, name: str | None = None) -> list[SentEvent]:
        return [e for e in self.sent if name is None or e.event == name]

    # ---- dispatch --------------------------------------------------------------------------------------

    def dispatch(self, event: str, data: dict[str, Any], *, guild_id: int | None = None, content_of: int | None = None,
                 mentions_bot: bool = False) -> None:
        """Send an event to every session that should get it (shard, intents), buffering it for RESUME.

        content_of: author id of a message payload; its content is blanked for sessions without the
        MESSAGE_CONTENT intent unless the bot wrote it, was mentioned, or it is a DM (Discord's rules).
        """
        for session in list(self.sessions.values()):
            if not session.resumable or not session.handles_guild(guild_id):
                continue
            needed = EVENT_INTENTS.get(event)
            if needed is not None:
                bit = needed[0] if guild_id is not None else needed[1]
                if bit and not session.intents & bit:
                    continue
            payload = self._guild_payload(session, data) if event == "GUILD_CREATE" else data
            if (
                content_of is not None
                and guild_id is not None
                and not session.intents & MESSAGE_CONTENT
                and content_of != self.emu.bot_user.id
                and not mentions_bot
            ):
                payload = dict(data)
                for key in CONTENT_FIELDS:
                    if key in payload:
                        payload[key] = "" if key == "content" else []
            self._send_dispatch(session, event, payload)

    def _send_dispatch(self, session: Session, event: str, data: dict[str, Any]) -> None:
        session.seq += 1
        frame = {"op": DISPATCH, "t": event, "s": session.seq, "d": data}
        session.buffer.append(frame)
        self.sent.append(SentEvent(session.id, session.seq, event, data))
        if session.connection is not None:
            session.connection.send(frame)
            for i, wanted in enumerate(self._duplicate_next):
                if wanted in ("*", event):
                    del self._duplicate_next[i]
                    session.connection.send(frame)
                    break

    # ---- websocket handler -----------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=0, autoping=True)
        await ws.prepare(request)
        encoding = request.query.get("encoding", "json")
        compress = request.query.get("compress")
        if encoding != "json":
            await ws.close(code=4002, message=b"only encoding=json is emulated")
            return ws
        if compress not in (None, "zlib-stream", "zstd-stream"):
            await ws.close(code=4002, message=b"unknown compress")
            return ws
        conn = Connection(ws=ws, request=request, compress=compress)
        conn.writer = asyncio.create_task(conn.write_loop())
        self.connections.add(conn)
        conn.send({"op": HELLO, "d": {"heartbeat_interval": self.heartbeat_interval_ms}})
        conn.last_heartbeat = asyncio.get_running_loop().time()
        conn.watchdog = asyncio.create_task(self._watch_heartbeats(conn))
        close_code: int | None = None
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    if msg.type == WSMsgType.BINARY:
                        close_code = 4002
                        break
                    continue
                try:
                    frame = json.loads(msg.data)
                    op = frame["op"]
                except (ValueError, KeyError, TypeError):
                    close_code = 4002
                    break
                close_code = await self._on_frame(conn, op, frame.get("d"))
                if close_code is not None:
                    break
        finally:
            if close_code is not None and not ws.closed:
                conn.server_closed = True
                await self._flush(conn)
                await ws.close(code=close_code)
            if ws.close_code in (1000, 1001) and conn.session is not None and not conn.server_closed:
                # A clean close by the client ends its session, as on Discord.
                conn.session.resumable = False
            self._detach(conn)
            if conn.watchdog is not None:
                conn.watchdog.cancel()
            conn.queue.put_nowait(None)
            if conn.writer is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await conn.writer
        return ws

    async def _watch_heartbeats(self, conn: Connection) -> None:
        """Close a connection whose client missed heartbeats, as Discord does with zombied connections.

        In-process, a bot that blocks the event loop also stops this task; when the loop comes back the
        check runs before the late heartbeat is read, so the missed beat is seen as Discord would see it.
        """
        loop = asyncio.get_running_loop()
        interval = self.heartbeat_interval_ms / 1000
        while not conn.ws.closed:
            await asyncio.sleep(interval / 4)
            assert conn.last_heartbeat is not None
            if loop.time() - conn.last_heartbeat > interval * 1.5:
                self.heartbeat_timeouts += 1
                log.info("closing a gateway connection that missed its heartbeats")
                conn.server_closed = True
                self._detach(conn)
                await conn.ws.close(code=4009, message=b"Session timed out")
                return

    async def _flush(self, conn: Connection) -> None:
        conn.queue.put_nowait(None)
        if conn.writer is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await conn.writer
        conn.writer = None

    def _detach(self, conn: Connection) -> None:
        self.connections.discard(conn)
        if conn.session is not None and conn.session.connection is conn:
            conn.session.connection = None

    async def _on_frame(self, conn: Connection, op: int, d: Any) -> int | None:
        loop_time = asyncio.get_running_loop().time()
        if op == HEARTBEAT:
            conn.last_heartbeat = loop_time
            conn.heartbeats += 1
            # A real network answers some milliseconds later. On loopback an instant ACK can arrive before
            # discord.py's keep-alive thread notes when it sent the beat, and it then logs a false
            # "Can't keep up, websocket is 41.3s behind".
            asyncio.get_running_loop().call_later(HEARTBEAT_ACK_DELAY, conn.send, {"op": HEARTBEAT_ACK})
            return None
        if op == IDENTIFY:
            if conn.session is not None:
                return 4005  # already authenticated
            return self._identify(conn, d or {})
        if op == RESUME:
            if conn.session is not None:
                return 4005
            return self._resume(conn, d or {})
        if conn.session is None:
            return 4003  # not authenticated
        if op == PRESENCE_UPDATE:
            conn.session.presence = d
            return None
        if op == REQUEST_GUILD_MEMBERS:
            self._request_members(conn.session, d or {})
            return None
        if op in (4, 31):  # voice state / soundboard requests: accepted and ignored
            return None
        return 4001  # unknown opcode

    def _identify(self, conn: Connection, d: dict[str, Any]) -> int | None:
        if d.get("token", "").removeprefix("Bot ") != self.emu.token:
            return 4004
        intents = d.get("intents")
        if not isinstance(intents, int) or intents < 0 or intents & ~ALL_INTENTS:
            return 4013
        if intents & PRIVILEGED & ~self.privileged_intents:
            return 4014
        shard = tuple(d.get("shard") or (0, 1))
        if len(shard) != 2 or not 0 <= shard[0] < shard[1]:
            return 4010
        self.identify_count += 1
        session = Session(id=secrets.token_hex(16), intents=intents, shard=(int(shard[0]), int(shard[1])))
        self.sessions[session.id] = session
        session.connection = conn
        conn.session = session
        guilds = [g for g in self.emu.guilds.values() if session.handles_guild(g.id)]
        me = self.emu.bot_user.to_dict()
        me.update(verified=True, mfa_enabled=False, email=None)
        ready = {
            "v": 10,
            "user": me,
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
            "session_id": session.id,
            "resume_gateway_url": self.emu.gateway_url,
            "shard": list(session.shard),
            "application": {"id": str(self.emu.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "user_settings": {},
            "session_type": "normal",
            "auth": {},
            "geo_ordered_rtc_regions": [],
            "guild_join_requests": [],
        }
        self._send_dispatch(session, "READY", ready)
        for guild in guilds:
            self._send_dispatch(session, "GUILD_CREATE", self._guild_payload(session, guild.gateway_dict()))
        return None

    def _guild_payload(self, session: Session, data: dict[str, Any]) -> dict[str, Any]:
        """Without the GUILD_MEMBERS intent, GUILD_CREATE carries only the bot's own member (Discord's rule)."""
        if session.intents & GUILD_MEMBERS:
            return data
        me = str(self.emu.bot_user.id)
        return {**data, "members": [m for m in data.get("members", []) if m["user"]["id"] == me]}

    def _resume(self, conn: Connection, d: dict[str, Any]) -> int | None:
        if d.get("token", "").removeprefix("Bot ") != self.emu.token:
            return 4004
        session = self.sessions.get(d.get("session_id") or "")
        seq = d.get("seq") or 0
        if session is not None and self._replay_extra:
            oldest_kept = session.buffer[0]["s"] if session.buffer else session.seq + 1
            seq, self._replay_extra = max(oldest_kept - 1, seq - self._replay_extra), 0
        if session is None or not session.resumable or seq > session.seq:
            conn.send({"op": INVALID_SESSION, "d": False})
            return None
        oldest = session.buffer[0]["s"] if session.buffer else session.seq + 1
        if seq + 1 < oldest:
            # The events the client missed are no longer buffered: it must start over.
            session.resumable = False
            conn.send({"op": INVALID_SESSION, "d": False})
            return None
        if session.connection is not None and session.connection is not conn:
            old = session.connection
            old.server_closed = True
            self._detach(old)
            self._closing.add(asyncio.ensure_future(old.ws.close(code=4000)))
        self.resume_count += 1
        session.connection = conn
        conn.session = session
        for frame in session.buffer:
            if frame["s"] > seq:
                conn.send(frame)
        self._send_dispatch(session, "RESUMED", {})
        return None

    def _request_members(self, session: Session, d: dict[str, Any]) -> None:
        guild_ids = d.get("guild_id")
        if not isinstance(guild_ids, list):
            guild_ids = [guild_ids]
        query = (d.get("query") or "").lower()
        limit = d.get("limit") or 0
        wanted = {int(u) for u in (d.get("user_ids") or [])}
        for gid in guild_ids:
            guild = self.emu.guilds.get(int(gid))
            if guild is None:
                continue
            members = [
                m
                for m in guild.members.values()
                if (not wanted or m.user.id in wanted) and m.user.username.lower().startswith(query)
            ]
            if limit:
                members = members[:limit]
            chunk = {
                "guild_id": str(guild.id),
                "members": [m.to_dict() for m in members],
                "chunk_index": 0,
                "chunk_count": 1,
                "not_found": [],
            }
            if d.get("nonce"):
                chunk["nonce"] = d["nonce"]
            self._send_dispatch(session, "GUILD_MEMBERS_CHUNK", chunk)
