"""The control API: the scripting API as small JSON routes under /_emulator, for tools in other processes."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .actors import ActionError, EmulatedUser
from .core import Emulator, EmulatorTimeout, UploadedFile
from .interactions import Interaction
from .models import Channel, Guild, Message, Role, User

PREFIX = "/_emulator"


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def message_json(msg: Message) -> dict[str, Any]:
    """A message with everything the control API knows: as shown, plus its edits and versions."""
    data = live_message_json(msg)
    data.update(
        edits=[rev.content for rev in msg.edits],
        versions=[{"content": r.content, "embeds": r.embeds, "components": r.components, "at": r.at.isoformat()}
                  for r in msg.history],
        thread_id=str(msg.thread_id) if msg.thread_id else None,
    )
    return data


def interaction_json(it: Interaction) -> dict[str, Any]:
    resp = it.response
    return {
        "id": str(it.id),
        "type": it.type,
        "data": it.data,
        "user_id": str(it.user.id),
        "channel_id": str(it.channel.id),
        "guild_id": str(it.guild.id) if it.guild else None,
        "responded": resp is not None,
        "response": None if resp is None else {
            "type": resp.type,
            "kind": resp.kind,
            "ephemeral": resp.ephemeral,
            "message": message_json(resp.message) if resp.message else None,
            "modal": resp.modal,
            "choices": resp.choices,
        },
        "original": message_json(it.original) if it.original else None,
        "followups": [message_json(m) for m in it.followups],
        "errors": it.errors,
    }


def guild_json(guild: Guild) -> dict[str, Any]:
    return {
        "id": str(guild.id),
        "name": guild.name,
        "channels": [c.to_dict() for c in guild.channels.values()],
        "roles": [r.to_dict() for r in guild.roles.values()],
        "members": [m.to_dict() for m in guild.members.values()],
    }


def live_message_json(msg: Message) -> dict[str, Any]:
    """A message as the web client shows it: what the user sees, without the edit history."""
    data = msg.to_dict()
    channel = msg._emu.channels.get(msg.channel_id) if msg._emu else None
    data.update(
        guild_id=str(msg.guild_id) if msg.guild_id else None,
        ephemeral=msg.ephemeral,
        visible_to=str(msg.visible_to) if msg.visible_to else None,
        loading=msg.loading,
        deleted=msg.deleted,
        revisions=len(msg.history),
        reaction_users={key: [str(u) for u in users] for key, users in msg.reactions.items() if users},
        dm_user_id=str(channel.recipients[0].id) if channel is not None and channel.is_dm and channel.recipients
        else None,
    )
    return data


def setup_control(app: web.Application, emu: Emulator) -> Control:
    control = Control(emu)
    for method, path, handler in control.routes():
        app.router.add_route(method, PREFIX + path, control.wrap(handler))
    # The index answers with and without the trailing slash, as people type it both ways.
    app.router.add_route("GET", PREFIX + "/", control.wrap(control.info))
    app.router.add_get(PREFIX + "/live", control.live)
    return control


class Control:
    def __init__(self, emu: Emulator) -> None:
        self.emu = emu

    def routes(self) -> list[tuple[str, str, Callable[..., Awaitable[Any]]]]:
        return [
            ("GET", "", self.info),
            ("GET", "/state", self.state),
            ("POST", "/guilds", self.create_guild),
            ("POST", "/guilds/{guild_id}/channels", self.create_channel),
            ("POST", "/guilds/{guild_id}/roles", self.create_role),
            ("PUT", "/guilds/{guild_id}/bot_permissions", self.bot_permissions),
            ("POST", "/users", self.create_user),
            ("POST", "/users/{user_id}/dm", self.user_dm),
            ("GET", "/users/{user_id}/dm/messages", self.dm_messages),
            ("POST", "/users/{user_id}/messages", self.user_send),
            ("POST", "/users/{user_id}/slash", self.user_slash),
            ("POST", "/users/{user_id}/autocomplete", self.user_autocomplete),
            ("GET", "/users/{user_id}/commands", self.user_commands),
            ("POST", "/users/{user_id}/click", self.user_click),
            ("POST", "/users/{user_id}/select", self.user_select),
            ("POST", "/users/{user_id}/modal", self.user_modal),
            ("POST", "/users/{user_id}/react", self.user_react),
            ("POST", "/users/{user_id}/unreact", self.user_unreact),
            ("POST", "/users/{user_id}/threads", self.user_thread),
            ("GET", "/interactions/{interaction_id}", self.get_interaction),
            ("GET", "/channels/{channel_id}/messages", self.channel_messages),
            ("GET", "/messages/{message_id}", self.get_message),
            ("POST", "/wait/message", self.wait_message),
            ("POST", "/wait/edit", self.wait_edit),
            ("GET", "/commands", self.commands),
            ("GET", "/calls", self.calls),
            ("GET", "/unknown_routes", self.unknown_routes),
            ("GET", "/events", self.events),
            ("POST", "/faults", self.add_fault),
            ("DELETE", "/faults", self.clear_faults),
            ("PUT", "/ratelimits", self.ratelimits),
            ("POST", "/gateway/drop", self.gateway_drop),
            ("POST", "/gateway/reconnect", self.gateway_reconnect),
            ("POST", "/gateway/invalidate", self.gateway_invalidate),
            ("POST", "/gateway/duplicate", self.gateway_duplicate),
        ]

    def wrap(self, handler: Callable[..., Awaitable[Any]]):
        async def route(request: web.Request) -> web.Response:
            try:
                body = await request.json() if request.can_read_body else {}
            except json.JSONDecodeError:
                return web.json_response({"error": "invalid JSON"}, status=400)
            try:
                result = await handler(request, body or {})
            except ControlError as exc:
                return web.json_response({"error": str(exc)}, status=exc.status)
            except EmulatorTimeout as exc:
                return web.json_response({"error": str(exc)}, status=408)
            except (ActionError, ValueError, KeyError) as exc:
                return web.json_response({"error": f"{type(exc).__name__}: {exc}"}, status=400)
            return web.json_response(result)

        return route

    # ---- lookups ---------------------------------------------------------------------------------------

    def _guild(self, gid: Any) -> Guild:
        guild = self.emu.get_guild(gid) if str(gid).isdigit() else None
        if guild is None:
            raise ControlError(404, f"unknown guild {gid}")
        return guild

    def _user(self, uid: Any) -> EmulatedUser:
        user = self.emu.get_user(uid) if str(uid).isdigit() else None
        if not isinstance(user, EmulatedUser):
            raise ControlError(404, f"unknown emulated user {uid}")
        return user

    def _channel(self, cid: Any) -> Channel:
        channel = self.emu.get_channel(cid) if str(cid).isdigit() else None
        if channel is None:
            raise ControlError(404, f"unknown channel {cid}")
        return channel

    def _message(self, mid: Any) -> Message:
        msg = self.emu.get_message(mid) if str(mid).isdigit() else None
        if msg is None:
            raise ControlError(404, f"unknown message {mid}")
        return msg

    def _interaction(self, iid: Any) -> Interaction:
        it = self.emu.interactions.get(int(iid)) if str(iid).isdigit() else None
        if it is None:
            raise ControlError(404, f"unknown interaction {iid}")
        return it

    def _roles(self, guild: Guild, ids: list[Any]) -> list[Role]:
        roles = []
        for rid in ids:
            role = guild.roles.get(int(rid))
            if role is None:
                raise ControlError(404, f"unknown role {rid}")
            roles.append(role)
        return roles

    def _value(self, raw: Any) -> Any:
        """Option and select values: {"user": id}, {"channel": id}, {"role": id} or
        {"attachment": {"filename": ..., "data_base64": ...}} stand for objects; anything else is literal."""
        if isinstance(raw, dict):
            if "user" in raw:
                return self.emu.get_user(raw["user"]) or raw["user"]
            if "channel" in raw:
                return self._channel(raw["channel"])
            if "role" in raw:
                for guild in self.emu.guilds.values():
                    if int(raw["role"]) in guild.roles:
                        return guild.roles[int(raw["role"])]
                raise ControlError(404, f"unknown role {raw['role']}")
            if "attachment" in raw:
                att = raw["attachment"]
                return UploadedFile(att["filename"], base64.b64decode(att.get("data_base64", "")))
        return raw

    def _predicate(self, body: dict[str, Any]) -> Callable[[Message], bool]:
        contains = body.get("content_contains")
        equals = body.get("content_equals")
        has_components = body.get("has_components")
        has_embeds = body.get("has_embeds")

        def check(msg: Message) -> bool:
            if contains is not None and contains not in msg.content:
                return False
            if equals is not None and msg.content != equals:
                return False
            if has_components is not None and bool(msg.components) != has_components:
                return False
            return has_embeds is None or bool(msg.embeds) == has_embeds

        return check

    # ---- handlers --------------------------------------------------------------------------------------

    async def info(self, request, body):
        emu = self.emu
        return {
            "rest_url": emu.rest_url,
            "gateway_url": emu.gateway_url,
            "control_url": emu.control_url,
            "token": emu.token,
            "application_id": str(emu.application_id),
            "bot_user": emu.bot_user.to_dict(),
            "connected": emu.gateway.connected,
        }

    async def state(self, request, body):
        emu = self.emu
        return {
            "connected": emu.gateway.connected,
            "guilds": [guild_json(g) for g in emu.guilds.values()],
            "users": [u.to_dict() for u in emu.users.values()],
            "dm_channels": {str(uid): str(ch.id) for uid, ch in emu.dm_channels.items()},
            # The users this API can act as (the bot and the guild owner are not among them).
            "actors": [str(u.id) for u in emu.users.values() if isinstance(u, EmulatedUser)],
        }

    async def create_guild(self, request, body):
        guild = await self.emu.create_guild(body.get("name", "Test Guild"), channels=body.get("channels", ["general"]))
        return guild_json(guild)

    async def create_channel(self, request, body):
        guild = self._guild(request.match_info["guild_id"])
        parent = self._channel(body["parent_id"]) if body.get("parent_id") else None
        channel = await self.emu.create_channel(guild, body["name"], type=int(body.get("type", 0)), parent=parent,
                                                topic=body.get("topic"))
        return channel.to_dict()

    async def create_role(self, request, body):
        guild = self._guild(request.match_info["guild_id"])
        role = await self.emu.create_role(guild, body["name"], permissions=int(body.get("permissions", 0)))
        return role.to_dict()

    async def bot_permissions(self, request, body):
        guild = self._guild(request.match_info["guild_id"])
        await self.emu.set_bot_permissions(guild, int(body["permissions"]))
        return {"ok": True}

    async def create_user(self, request, body):
        guild = self._guild(body["guild_id"]) if body.get("guild_id") else None
        roles = self._roles(guild, body.get("role_ids", [])) if guild else []
        user = await self.emu.create_user(
            body["name"], guild=guild, moderator=bool(body.get("moderator")), roles=roles,
            global_name=body.get("global_name"), accepts_dms=body.get("accepts_dms", True),
        )
        return user.to_dict()

    async def user_dm(self, request, body):
        user = self._user(request.match_info["user_id"])
        msg = await user.dm(body.get("content", ""), files=self._files(body))
        return message_json(msg)

    def _files(self, body: dict[str, Any]) -> list[UploadedFile]:
        return [UploadedFile(f["filename"], base64.b64decode(f.get("data_base64", ""))) for f in body.get("files", [])]

    async def dm_messages(self, request, body):
        user = self._user(request.match_info["user_id"])
        channel = self.emu.dm_channel(user)
        return [] if channel is None else [message_json(m) for m in channel.visible_messages()]

    async def user_send(self, request, body):
        user = self._user(request.match_info["user_id"])
        channel = self._channel(body["channel_id"])
        reply_to = self._message(body["reply_to"]) if body.get("reply_to") else None
        msg = await user.send(channel, body.get("content", ""), reply_to=reply_to, files=self._files(body))
        return message_json(msg)

    async def user_slash(self, request, body):
        user = self._user(request.match_info["user_id"])
        channel = self._channel(body["channel_id"]) if body.get("channel_id") else None
        options = {k: self._value(v) for k, v in (body.get("options") or {}).items()}
        it = await user.slash(body["name"], options, channel=channel)
        return interaction_json(it)

    async def user_autocomplete(self, request, body):
        user = self._user(request.match_info["user_id"])
        channel = self._channel(body["channel_id"]) if body.get("channel_id") else None
        options = {k: self._value(v) for k, v in (body.get("options") or {}).items()}
        it = await user.autocomplete(body["name"], options, body["focused"], channel=channel)
        await it.wait_response(timeout=float(body.get("timeout", 3)))
        return interaction_json(it)

    async def user_commands(self, request, body):
        """The slash commands this user is offered in a channel (no channel_id: in the DM with the bot)."""
        user = self._user(request.match_info["user_id"])
        cid = request.query.get("channel_id")
        channel = self._channel(cid) if cid else user.dm_channel
        return [cmd.to_dict() for cmd in user.visible_commands(channel)]

    async def live(self, request: web.Request) -> web.WebSocketResponse:
        """A websocket carrying `{"type": "message", "message": ...}` for every message created, edited,
        deleted or reacted to, so a page shows streamed edits as they happen."""
        ws = web.WebSocketResponse(heartbeat=30)
        await ws.prepare(request)
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        def observe(msg: Message) -> None:
            queue.put_nowait({"type": "message", "message": live_message_json(msg)})

        self.emu.message_observers.append(observe)
        reader = asyncio.ensure_future(ws.receive())
        try:
            while not ws.closed:
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if reader in done:  # the page went away (the client sends nothing else)
                    getter.cancel()
                    break
                await ws.send_json(getter.result())
        except ConnectionResetError:
            pass
        finally:
            reader.cancel()
            self.emu.message_observers.remove(observe)
            await ws.close()
        return ws

    async def user_click(self, request, body):
        user = self._user(request.match_info["user_id"])
        it = await user.click(self._message(body["message_id"]), body["custom_id"])
        return interaction_json(it)

    async def user_select(self, request, body):
        user = self._user(request.match_info["user_id"])
        values = [self._value(v) for v in body.get("values", [])]
        it = await user.select(self._message(body["message_id"]), body["custom_id"], values)
        return interaction_json(it)

    async def user_modal(self, request, body):
        user = self._user(request.match_info["user_id"])
        source = self._interaction(body["interaction_id"])
        if source.modal is None:
            raise ControlError(409, f"interaction {source.id} was not answered with a modal")
        values = {k: self._value(v) for k, v in (body.get("values") or {}).items()}
        it = await user.submit_modal(source.modal, values, channel=source.channel, source=source)
        return interaction_json(it)

    async def user_react(self, request, body):
        user = self._user(request.match_info["user_id"])
        msg = self._message(body["message_id"])
        await user.react(msg, body["emoji"])
        return message_json(msg)

    async def user_unreact(self, request, body):
        user = self._user(request.match_info["user_id"])
        msg = self._message(body["message_id"])
        await user.unreact(msg, body["emoji"])
        return message_json(msg)

    async def user_thread(self, request, body):
        user = self._user(request.match_info["user_id"])
        channel = self._channel(body["channel_id"])
        message = self._message(body["message_id"]) if body.get("message_id") else None
        thread = await user.create_thread(channel, body["name"], message=message)
        return thread.to_dict()

    async def get_interaction(self, request, body):
        it = self._interaction(request.match_info["interaction_id"])
        wait = float(request.query.get("wait", 0))
        if wait and request.query.get("for") == "message":
            await it.wait_message(timeout=wait)
        elif wait and request.query.get("for") == "followup":
            await it.wait_followup(timeout=wait)
        elif wait:
            await it.wait_response(timeout=wait)
        return interaction_json(it)

    async def channel_messages(self, request, body):
        channel = self._channel(request.match_info["channel_id"])
        return [message_json(m) for m in channel.visible_messages()]

    async def get_message(self, request, body):
        return message_json(self._message(request.match_info["message_id"]))

    async def wait_message(self, request, body):
        if body.get("channel_id"):
            where: Channel | User = self._channel(body["channel_id"])
        else:
            where = self._user(body["user_id"])
        author = body.get("author", "bot")
        msg = await self.emu.wait_for_message(
            where, self._predicate(body), timeout=float(body.get("timeout", 5)), author=author,
            after=int(body["after_id"]) if body.get("after_id") else None,
        )
        return message_json(msg)

    async def wait_edit(self, request, body):
        msg = self._message(body["message_id"])
        await self.emu.wait_for_edit(msg, self._predicate(body), timeout=float(body.get("timeout", 5)))
        return message_json(msg)

    async def commands(self, request, body):
        gid = request.query.get("guild_id")
        return [c.to_dict() for c in self.emu.commands.values()
                if gid is None or str(c.guild_id) == gid or (gid == "global" and c.guild_id is None)]

    async def calls(self, request, body):
        route = request.query.get("route")
        return [
            {"method": c.method, "path": c.path, "route": c.route, "query": c.query, "body": c.body,
             "status": c.status, "response": c.response, "duration": c.duration, "files": c.files}
            for c in self.emu.calls if route is None or c.route == route
        ]

    async def unknown_routes(self, request, body):
        return list(self.emu.unknown_routes)

    async def events(self, request, body):
        name = request.query.get("name")
        return [{"session_id": e.session_id, "seq": e.seq, "event": e.event, "data": e.data}
                for e in self.emu.gateway.events(name)]

    async def add_fault(self, request, body):
        kind = body.get("kind", "fail")
        route = body["route"]
        times = body.get("times", 1)
        seconds = float(body["seconds"]) if body.get("seconds") is not None else None
        if kind == "fail":
            self.emu.faults.fail(route, int(body.get("status", 500)), times=times, seconds=seconds,
                                 handled=bool(body.get("handled", False)))
        elif kind == "rate_limit":
            self.emu.faults.rate_limit(route, float(body.get("retry_after", 1.0)), times=times, seconds=seconds)
        elif kind == "delay":
            self.emu.faults.delay(route, float(body["seconds"]), times=times)
        else:
            raise ControlError(400, f"unknown fault kind {kind!r}")
        return {"ok": True}

    async def clear_faults(self, request, body):
        self.emu.faults.clear()
        return {"ok": True}

    async def ratelimits(self, request, body):
        if "enabled" in body:
            self.emu.rate_limits.enabled = bool(body["enabled"])
        if "route" in body:
            self.emu.rate_limits.configure(body["route"], int(body["limit"]), float(body["window"]))
        return {"ok": True, "enabled": self.emu.rate_limits.enabled}

    async def gateway_drop(self, request, body):
        return {"dropped": self.emu.gateway.drop(abrupt=body.get("abrupt", True))}

    async def gateway_reconnect(self, request, body):
        self.emu.gateway.reconnect()
        return {"ok": True}

    async def gateway_invalidate(self, request, body):
        self.emu.gateway.invalidate(resumable=bool(body.get("resumable", False)))
        return {"ok": True}

    async def gateway_duplicate(self, request, body):
        self.emu.gateway.duplicate_next(body.get("event", "*"))
        return {"ok": True}
