"""REST API v10: a small router (so every call is recorded under its route template) and the handlers."""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from . import errors as E
from . import permissions as P
from .core import Emulator, RestCall, TypingEvent, UploadedFile
from .errors import APIError, FormErrors, http_error_body, server_error_answer
from .interactions import (
    AUTOCOMPLETE,
    AUTOCOMPLETE_RESULT,
    CHANNEL_MESSAGE,
    DEFERRED_CHANNEL_MESSAGE,
    DEFERRED_UPDATE_MESSAGE,
    MESSAGE_COMPONENT,
    MODAL,
    MODAL_SUBMIT,
    PING,
    PONG,
    UPDATE_MESSAGE,
    Interaction,
    InteractionResponse,
)
from .limits import check_command, check_message_payload, check_modal
from .models import (
    EPHEMERAL,
    GUILD_TEXT,
    LOADING,
    PRIVATE_THREAD,
    PUBLIC_THREAD,
    THREAD_TYPES,
    Channel,
    Command,
    Guild,
    Message,
    Role,
    parse_emoji,
)
from .ratelimit import too_many_requests_body
from .snowflake import snowflake_time_ms

API_PREFIX = "/api/v10"
# How long Discord remembers a message nonce sent with enforce_nonce ("the past few minutes").
NONCE_SECONDS = 300


@dataclass
class Request:
    method: str
    path: str
    route: str
    params: dict[str, str]
    query: dict[str, str]
    json: Any
    files: list[UploadedFile]
    headers: Any


Handler = Callable[[Request], Awaitable[tuple[int, Any]]]


@dataclass
class Outcome:
    """What one REST call got: status, body and headers, plus what was read from the request."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    body_in: Any = None
    files: list[UploadedFile] = field(default_factory=list)
    content_type: str | None = None
    error_code: int | None = None
    early_retry: bool = False
    response_type: str = "application/json"


@dataclass
class Route:
    method: str
    template: str
    regex: re.Pattern[str]
    handler: Handler
    auth: bool
    literals: int

    @property
    def key(self) -> str:
        return f"{self.method} {self.template}"


class Router:
    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, method: str, template: str, handler: Handler, *, auth: bool = True) -> None:
        pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", re.escape(template).replace(r"\{", "{").replace(r"\}", "}"))
        literals = sum(1 for seg in template.split("/") if seg and not seg.startswith("{"))
        self.routes.append(Route(method, template, re.compile(f"^{pattern}$"), handler, auth, literals))

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """(route, params, path_exists): the most literal route wins, so `@me` beats `{user_id}`."""
        best: tuple[Route, dict[str, str]] | None = None
        path_exists = False
        for route in self.routes:
            m = route.regex.match(path)
            if not m:
                continue
            path_exists = True
            if route.method != method:
                continue
            if best is None or route.literals > best[0].literals:
                best = (route, m.groupdict())
        if best is None:
            return None, {}, path_exists
        return best[0], best[1], True

    def keys(self) -> list[str]:
        return [r.key for r in self.routes]


def _scope(route: Route, params: dict[str, str], emu: Emulator) -> str:
    """The bucket scope: Discord's major parameters (channel, guild, webhook)."""
    if "message_id" in params and route.template.startswith("/webhooks/"):
        msg = emu.messages.get(int(params["message_id"])) if params["message_id"].isdigit() else None
        if msg is not None:
            return f"channel:{msg.channel_id}"
    if route.template.endswith("/@original") and "webhook_token" in params:
        interaction = emu.interactions_by_token.get(params["webhook_token"])
        if interaction is not None:
            return f"channel:{interaction.channel.id}"
    for key in ("channel_id", "guild_id", "webhook_token", "interaction_token"):
        if key in params:
            return f"{key}:{params[key]}"
    return "global"


def _json_response(status: int, body: Any, headers: dict[str, str],
                   content_type: str = "application/json") -> web.Response:
    headers = dict(headers)
    headers["Via"] = "1.1 google"  # discord.py only retries a 429 that carries Via (else: a Cloudflare ban)
    if status == 204 or body is None:
        return web.Response(status=204 if status < 300 else status, headers=headers)
    if isinstance(body, str):  # an error page from Discord's edge (Cloudflare, the proxy), not the API
        headers["Content-Type"] = f"{content_type}; charset=utf-8"
        return web.Response(status=status, body=body.encode(), headers=headers)
    # Content-Type must be exactly application/json for discord.py to parse it.
    headers["Content-Type"] = "application/json"
    return web.Response(status=status, body=json.dumps(body).encode(), headers=headers)


async def _read_body(request: web.Request) -> tuple[Any, list[UploadedFile], str | None]:
    ctype = request.content_type
    if not request.can_read_body:
        return None, [], None
    if ctype == "multipart/form-data":
        payload: Any = None
        files: list[tuple[int, UploadedFile]] = []
        reader = await request.multipart()
        async for part in reader:
            name = part.name or ""
            if name == "payload_json":
                payload = json.loads(await part.text())
                continue
            m = re.match(r"^files\[(\d+)\]$", name) or re.match(r"^file(\d*)$", name)
            if m:
                index = int(m.group(1) or 0)
                data = await part.read()
                files.append((index, UploadedFile(part.filename or f"file{index}", bytes(data),
                                                  part.headers.get("Content-Type"))))
        # Descriptions come from the attachments array of payload_json, matched by index.
        meta = {}
        attachments = []
        if isinstance(payload, dict):
            attachments = payload.get("attachments") or (payload.get("data") or {}).get("attachments") or []
        for att in attachments:
            if str(att.get("id", "")).isdigit():
                meta[int(att["id"])] = att
        for index, upload in files:
            if index in meta:
                upload.description = meta[index].get("description")
                upload.filename = meta[index].get("filename") or upload.filename
        return payload, [f for _, f in sorted(files, key=lambda x: x[0])], ctype
    raw = await request.read()
    if not raw:
        return None, [], ctype
    try:
        return json.loads(raw), [], ctype
    except ValueError as exc:
        raise APIError(E.INVALID_JSON) from exc


def setup_rest(app: web.Application, emu: Emulator) -> RestAPI:
    api = RestAPI(emu)
    app.router.add_route("*", API_PREFIX + "/{tail:.*}", api.dispatch)
    app.router.add_get("/attachments/{channel_id}/{attachment_id}/{filename}", api.cdn)
    return api


class RestAPI:
    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.router = Router()
        self._register()

    # ---- plumbing --------------------------------------------------------------------------------------

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        emu = self.emu
        loop = asyncio.get_running_loop()
        started = loop.time()
        path = "/" + request.match_info["tail"]
        method = request.method
        route, params, path_exists = self.router.match(method, path)
        if route is None:
            # Unknown routes are recorded so a test fails at once instead of silently passing.
            emu.unknown_routes.append(f"{method} {path}")
            status = 405 if path_exists else 404
            outcome = Outcome(status, http_error_body(status), error_code=0)
        elif route.auth and request.headers.get("Authorization") != f"Bot {emu.token}":
            outcome = Outcome(401, http_error_body(401), error_code=0)
        else:
            outcome = await self._handle(request, route, params)
        call = RestCall(
            method=method, path=path, route=route.key if route else None, query=dict(request.query),
            body=outcome.body_in, files=[f.filename for f in outcome.files], status=outcome.status,
            response=outcome.body, started=started, finished=loop.time(), content_type=outcome.content_type,
            error_code=outcome.error_code,
        )
        emu.calls.append(call)
        if outcome.early_retry:
            emu.rate_limit_violations.append(call)
        emu.notify()
        return _json_response(outcome.status, outcome.body, outcome.headers, outcome.response_type)

    async def _handle(self, request: web.Request, route: Route, params: dict[str, str]) -> Outcome:
        emu = self.emu
        scope = _scope(route, params, emu)
        lost_answer: int | None = None
        for fault in emu.faults.take(route.key):
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.handled and fault.status is not None:
                lost_answer = fault.status
            elif fault.status == 429:
                headers = emu.rate_limits.block(route.key, scope, fault.retry_after)
                headers["Retry-After"] = str(max(1, math.ceil(fault.retry_after)))
                headers["X-RateLimit-Scope"] = "user"
                return Outcome(429, too_many_requests_body(fault.retry_after), headers, error_code=0)
            elif fault.status is not None:
                body, content_type = server_error_answer(fault.status)
                return Outcome(fault.status, body, error_code=0, response_type=content_type)
        decision = emu.rate_limits.hit(route.key, scope)
        if not decision.allowed:
            headers = dict(decision.headers)
            headers["Retry-After"] = str(max(1, math.ceil(decision.retry_after)))
            headers["X-RateLimit-Scope"] = "user"
            return Outcome(429, too_many_requests_body(decision.retry_after), headers, error_code=0,
                           early_retry=decision.early)
        outcome = Outcome(200, None, decision.headers)
        try:
            outcome.body_in, outcome.files, outcome.content_type = await _read_body(request)
            req = Request(request.method, request.path, route.key, params, dict(request.query), outcome.body_in,
                          outcome.files, request.headers)
            outcome.status, outcome.body = await route.handler(req)
        except APIError as exc:
            outcome.status, outcome.body, outcome.error_code = exc.status, exc.body(), exc.code
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            # A body or parameter of the wrong shape: Discord answers 50035, and so do we, but the emulator
            # also keeps it so a test can tell a client bug from a gap in the emulator.
            emu.internal_errors.append(f"{route.key}: {type(exc).__name__}: {exc}")
            errors = FormErrors()
            errors.add(("_",), "BASE_TYPE_INVALID", f"{type(exc).__name__}: {exc}")
            outcome.status, outcome.body, outcome.error_code = 400, APIError(
                E.INVALID_FORM_BODY, errors=errors.tree).body(), E.INVALID_FORM_BODY
        except Exception as exc:  # an emulator bug: answer like a Discord outage, and keep it for the test
            emu.internal_errors.append(f"{route.key}: {type(exc).__name__}: {exc}")
            outcome.status, outcome.body, outcome.error_code = 500, {"message": "500: Internal Server Error",
                                                                     "code": 0}, 0
        if lost_answer is not None and outcome.status < 300:
            body, content_type = server_error_answer(lost_answer)
            return Outcome(lost_answer, body, body_in=outcome.body_in, files=outcome.files,
                           content_type=outcome.content_type, error_code=0, response_type=content_type)
        return outcome

    async def cdn(self, request: web.Request) -> web.StreamResponse:
        att = self.emu.attachments.get(int(request.match_info["attachment_id"]))
        if att is None or att.filename != request.match_info["filename"]:
            return web.Response(status=404, text="Not Found")
        return web.Response(body=att.data, content_type=att.content_type or "application/octet-stream")

    def _register(self) -> None:
        add = self.router.add
        add("GET", "/gateway", self.get_gateway, auth=False)
        add("GET", "/gateway/bot", self.get_gateway_bot)
        add("GET", "/users/@me", self.get_me)
        add("GET", "/users/{user_id}", self.get_user)
        add("GET", "/users/@me/guilds", self.get_my_guilds)
        add("POST", "/users/@me/channels", self.create_dm)
        add("GET", "/oauth2/applications/@me", self.get_application)
        add("GET", "/applications/@me", self.get_application)
        for prefix in ("/applications/{application_id}", "/applications/{application_id}/guilds/{guild_id}"):
            add("GET", prefix + "/commands", self.list_commands)
            add("PUT", prefix + "/commands", self.overwrite_commands)
            add("POST", prefix + "/commands", self.create_command)
            add("GET", prefix + "/commands/{command_id}", self.get_command)
            add("PATCH", prefix + "/commands/{command_id}", self.edit_command)
            add("DELETE", prefix + "/commands/{command_id}", self.delete_command)
        add("GET", "/applications/{application_id}/guilds/{guild_id}/commands/permissions", self.command_permissions)
        add("GET", "/channels/{channel_id}", self.get_channel)
        add("PATCH", "/channels/{channel_id}", self.edit_channel)
        add("DELETE", "/channels/{channel_id}", self.delete_channel)
        add("POST", "/channels/{channel_id}/typing", self.typing)
        add("GET", "/channels/{channel_id}/messages", self.list_messages)
        add("POST", "/channels/{channel_id}/messages", self.create_message)
        add("POST", "/channels/{channel_id}/messages/bulk-delete", self.bulk_delete)
        add("GET", "/channels/{channel_id}/messages/{message_id}", self.get_message)
        add("PATCH", "/channels/{channel_id}/messages/{message_id}", self.edit_message)
        add("DELETE", "/channels/{channel_id}/messages/{message_id}", self.delete_message)
        reactions = "/channels/{channel_id}/messages/{message_id}/reactions"
        add("PUT", reactions + "/{emoji_name}/@me", self.add_reaction)
        add("DELETE", reactions + "/{emoji_name}/@me", self.remove_own_reaction)
        add("DELETE", reactions + "/{emoji_name}/{user_id}", self.remove_user_reaction)
        add("GET", reactions + "/{emoji_name}", self.list_reactions)
        add("DELETE", reactions + "/{emoji_name}", self.clear_emoji_reactions)
        add("DELETE", reactions, self.clear_reactions)
        add("GET", "/channels/{channel_id}/messages/pins", self.list_pins)
        add("PUT", "/channels/{channel_id}/messages/pins/{message_id}", self.pin)
        add("DELETE", "/channels/{channel_id}/messages/pins/{message_id}", self.unpin)
        add("POST", "/channels/{channel_id}/messages/{message_id}/threads", self.thread_from_message)
        add("POST", "/channels/{channel_id}/threads", self.thread_without_message)
        add("PUT", "/channels/{channel_id}/thread-members/@me", self.join_thread)
        add("DELETE", "/channels/{channel_id}/thread-members/@me", self.leave_thread)
        add("PUT", "/channels/{channel_id}/thread-members/{user_id}", self.add_thread_member)
        add("GET", "/channels/{channel_id}/thread-members", self.list_thread_members)
        add("POST", "/interactions/{interaction_id}/{interaction_token}/callback", self.interaction_callback,
            auth=False)
        hook = "/webhooks/{webhook_id}/{webhook_token}"
        add("POST", hook, self.followup_create, auth=False)
        for suffix in ("/messages/@original", "/messages/{message_id}"):
            add("GET", hook + suffix, self.webhook_get_message, auth=False)
            add("PATCH", hook + suffix, self.webhook_edit_message, auth=False)
            add("DELETE", hook + suffix, self.webhook_delete_message, auth=False)
        add("GET", "/guilds/{guild_id}", self.get_guild)
        add("GET", "/guilds/{guild_id}/channels", self.list_guild_channels)
        add("POST", "/guilds/{guild_id}/channels", self.create_guild_channel)
        add("GET", "/guilds/{guild_id}/threads/active", self.active_threads)
        add("GET", "/guilds/{guild_id}/members", self.list_members)
        add("GET", "/guilds/{guild_id}/members/search", self.search_members)
        add("GET", "/guilds/{guild_id}/members/{user_id}", self.get_member)
        add("PATCH", "/guilds/{guild_id}/members/{user_id}", self.edit_member)
        add("PUT", "/guilds/{guild_id}/members/{user_id}/roles/{role_id}", self.add_member_role)
        add("DELETE", "/guilds/{guild_id}/members/{user_id}/roles/{role_id}", self.remove_member_role)
        add("GET", "/guilds/{guild_id}/roles", self.list_roles)
        add("POST", "/guilds/{guild_id}/roles", self.create_role)
        add("GET", "/guilds/{guild_id}/roles/{role_id}", self.get_role)
        add("PATCH", "/guilds/{guild_id}/roles/{role_id}", self.edit_role)
        add("DELETE", "/guilds/{guild_id}/roles/{role_id}", self.delete_role)

    # ---- helpers ---------------------------------------------------------------------------------------

    def _guild(self, req: Request) -> Guild:
        try:
            guild = self.emu.guilds.get(int(req.params["guild_id"]))
        except ValueError:
            guild = None
        if guild is None:
            raise APIError(E.UNKNOWN_GUILD)
        return guild

    def _guild_perm(self, guild: Guild, perm: int) -> None:
        if P.base_permissions(guild, self.emu.bot_user.id) & perm != perm:
            raise APIError(E.MISSING_PERMISSIONS)

    def _channel(self, req: Request, perms: int = P.VIEW_CHANNEL) -> Channel:
        channel = self.emu.channel_or_404(req.params["channel_id"])
        if channel.is_dm:
            return channel
        self.emu.require(channel, perms)
        return channel

    def _message_payload(self, req: Request, *, creating: bool) -> dict[str, Any]:
        payload = req.json if isinstance(req.json, dict) else {}
        check_message_payload(payload, n_files=len(req.files), creating=creating)
        return payload

    def _interaction(self, req: Request) -> Interaction:
        interaction = self.emu.interactions_by_token.get(req.params.get("webhook_token") or "")
        if interaction is None or str(self.emu.application_id) != req.params.get("webhook_id"):
            raise APIError(E.UNKNOWN_WEBHOOK)
        age = asyncio.get_running_loop().time() - interaction.created_at
        if age > self.emu.interaction_token_ttl:
            raise APIError(E.UNKNOWN_WEBHOOK, "Invalid Webhook Token", status=401)
        return interaction

    # ---- gateway, users, application -------------------------------------------------------------------

    async def get_gateway(self, req: Request):
        return 200, {"url": self.emu.gateway_url}

    async def get_gateway_bot(self, req: Request):
        return 200, {
            "url": self.emu.gateway_url,
            "shards": self.emu.shard_count,
            "session_start_limit": {"total": 1000, "remaining": 1000 - self.emu.gateway.identify_count,
                                    "reset_after": 86400000, "max_concurrency": 1},
        }

    async def get_me(self, req: Request):
        data = self.emu.bot_user.to_dict()
        data.update(verified=True, mfa_enabled=False, locale="en-US", premium_type=0, email=None)
        return 200, data

    async def get_user(self, req: Request):
        user = self.emu.users.get(int(req.params["user_id"])) if req.params["user_id"].isdigit() else None
        if user is None:
            raise APIError(E.UNKNOWN_USER)
        return 200, user.to_dict()

    async def get_my_guilds(self, req: Request):
        out = []
        for guild in self.emu.guilds.values():
            out.append({
                "id": str(guild.id), "name": guild.name, "icon": None, "banner": None, "owner": False,
                "permissions": str(P.base_permissions(guild, self.emu.bot_user.id)), "features": [],
                "approximate_member_count": len(guild.members), "approximate_presence_count": 0,
            })
        return 200, out

    async def create_dm(self, req: Request):
        body = req.json or {}
        rid = str(body.get("recipient_id", ""))
        user = self.emu.users.get(int(rid)) if rid.isdigit() else None
        if user is None:
            errors = FormErrors()
            errors.add(("recipient_id",), "NUMBER_TYPE_COERCE", f"Value \"{rid}\" is not snowflake.")
            errors.raise_if_any()
            raise APIError(E.UNKNOWN_USER)
        channel = self.emu.dm_channel_for(user)
        return 200, channel.to_dict()

    async def get_application(self, req: Request):
        emu = self.emu
        return 200, {
            "id": str(emu.application_id),
            "name": emu.application_name,
            "icon": None,
            "description": "A bot running against the Discord emulator",
            "type": None,
            "bot": emu.bot_user.to_dict(),
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "flags": 0,
            "flags_new": "0",
            "redirect_uris": [],
            "interactions_endpoint_url": None,
            "role_connections_verification_url": None,
            "owner": emu.owner.to_dict(),
            "approximate_guild_count": len(emu.guilds),
            "approximate_user_install_count": 0,
            "approximate_user_authorization_count": 0,
            "explicit_content_filter": 0,
            "team": None,
            "eligible_oauth2_scopes": [],
            "summary": "",
            "rpc_origins": [],
            "tags": [],
        }

    # ---- application commands --------------------------------------------------------------------------

    def _command_scope(self, req: Request) -> int | None:
        if req.params["application_id"] != str(self.emu.application_id):
            raise APIError(E.GENERAL, "Unknown Application", status=404)
        if "guild_id" in req.params:
            return self._guild(req).id
        return None

    def _store_command(self, guild_id: int | None, data: dict[str, Any], existing: Command | None) -> Command:
        emu = self.emu
        clean = {k: v for k, v in data.items() if k not in ("id", "application_id", "version", "guild_id")}
        clean.setdefault("type", 1)
        if existing is not None:
            existing.data = clean
            existing.version = emu.ids.next()
            return existing
        cmd = Command(emu.ids.next(), emu.application_id, guild_id, clean, emu.ids.next())
        emu.commands[cmd.id] = cmd
        return cmd

    def _find_existing(self, guild_id: int | None, data: dict[str, Any]) -> Command | None:
        for cmd in self.emu.commands.values():
            if cmd.guild_id == guild_id and cmd.name == data.get("name") and cmd.type == int(data.get("type", 1)):
                return cmd
        return None

    def _command_or_404(self, req: Request, guild_id: int | None) -> Command:
        cid = req.params["command_id"]
        cmd = self.emu.commands.get(int(cid)) if cid.isdigit() else None
        if cmd is None or cmd.guild_id != guild_id:
            raise APIError(E.UNKNOWN_APPLICATION_COMMAND)
        return cmd

    async def list_commands(self, req: Request):
        gid = self._command_scope(req)
        return 200, [c.to_dict() for c in self.emu.commands.values() if c.guild_id == gid]

    async def overwrite_commands(self, req: Request):
        gid = self._command_scope(req)
        body = req.json if isinstance(req.json, list) else []
        errors = FormErrors()
        seen = set()
        for i, data in enumerate(body):
            check_command(errors, (i,), data)
            key = (data.get("name"), int(data.get("type", 1)))
            if key in seen:
                errors.add((i, "name"), "APPLICATION_COMMANDS_DUPLICATE_NAME", "Application command names must be unique")
            seen.add(key)
        if sum(1 for d in body if int(d.get("type", 1)) == 1) > 100:
            errors.add((), "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length.")
        errors.raise_if_any()
        keep: list[Command] = []
        for data in body:
            keep.append(self._store_command(gid, data, self._find_existing(gid, data)))
        keep_ids = {c.id for c in keep}
        for cid in [c.id for c in self.emu.commands.values() if c.guild_id == gid and c.id not in keep_ids]:
            del self.emu.commands[cid]
        self.emu.notify()
        return 200, [c.to_dict() for c in keep]

    async def create_command(self, req: Request):
        gid = self._command_scope(req)
        data = req.json or {}
        errors = FormErrors()
        check_command(errors, (), data)
        errors.raise_if_any()
        existing = self._find_existing(gid, data)
        cmd = self._store_command(gid, data, existing)
        self.emu.notify()
        return (200 if existing else 201), cmd.to_dict()

    async def get_command(self, req: Request):
        return 200, self._command_or_404(req, self._command_scope(req)).to_dict()

    async def edit_command(self, req: Request):
        gid = self._command_scope(req)
        cmd = self._command_or_404(req, gid)
        merged = {**cmd.data, **(req.json or {})}
        errors = FormErrors()
        check_command(errors, (), merged)
        errors.raise_if_any()
        self._store_command(gid, merged, cmd)
        self.emu.notify()
        return 200, cmd.to_dict()

    async def delete_command(self, req: Request):
        cmd = self._command_or_404(req, self._command_scope(req))
        del self.emu.commands[cmd.id]
        self.emu.notify()
        return 204, None

    async def command_permissions(self, req: Request):
        self._command_scope(req)
        guild_id = int(req.params["guild_id"])
        return 200, [
            {"id": str(command_id), "application_id": str(self.emu.application_id), "guild_id": str(guild_id),
             "permissions": entries}
            for (gid, command_id), entries in self.emu.command_overrides.items() if gid == guild_id and entries
        ]

    # ---- channels --------------------------------------------------------------------------------------

    async def get_channel(self, req: Request):
        return 200, self._channel(req).to_dict()

    async def edit_channel(self, req: Request):
        channel = self.emu.channel_or_404(req.params["channel_id"])
        if channel.is_dm:
            raise APIError(50003, "Cannot execute action on a DM channel", status=403)
        body = req.json or {}
        errors = FormErrors()
        if "name" in body and not 1 <= len(body["name"] or "") <= 100:
            errors.add(("name",), "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
        errors.raise_if_any()
        guild = self.emu.guilds[channel.guild_id]  # type: ignore[index]
        if channel.is_thread:
            owner_only = set(body) <= {"name", "archived", "auto_archive_duration"}
            if not (owner_only and channel.owner_id == self.emu.bot_user.id):
                self.emu.require(channel, P.MANAGE_THREADS)
            for key in ("name", "archived", "locked", "auto_archive_duration", "rate_limit_per_user"):
                if key in body:
                    setattr(channel, key, body[key])
            event = "THREAD_UPDATE"
        else:
            self.emu.require(channel, P.MANAGE_CHANNELS)
            for key in ("name", "topic", "nsfw", "position", "rate_limit_per_user", "permission_overwrites"):
                if key in body:
                    setattr(channel, key, body[key])
            if "parent_id" in body:
                channel.parent_id = int(body["parent_id"]) if body["parent_id"] else None
            event = "CHANNEL_UPDATE"
        self.emu.gateway.dispatch(event, channel.to_dict(), guild_id=guild.id)
        self.emu.notify()
        return 200, channel.to_dict()

    async def delete_channel(self, req: Request):
        channel = self.emu.channel_or_404(req.params["channel_id"])
        if channel.is_dm:
            return 200, channel.to_dict()
        self.emu.require(channel, P.MANAGE_THREADS if channel.is_thread else P.MANAGE_CHANNELS)
        guild = self.emu.guilds[channel.guild_id]  # type: ignore[index]
        data = channel.to_dict()
        del guild.channels[channel.id]
        del self.emu.channels[channel.id]
        self.emu.gateway.dispatch("THREAD_DELETE" if channel.is_thread else "CHANNEL_DELETE", data, guild_id=guild.id)
        self.emu.notify()
        return 200, data

    async def typing(self, req: Request):
        channel = self._channel(req, P.VIEW_CHANNEL | P.SEND_MESSAGES)
        self.emu.typing.append(TypingEvent(channel.id, asyncio.get_running_loop().time()))
        self.emu.notify()
        return 204, None

    # ---- messages --------------------------------------------------------------------------------------

    async def list_messages(self, req: Request):
        channel = self._channel(req)
        if not channel.is_dm and not self.emu.permissions_in(channel, self.emu.bot_user) & P.READ_MESSAGE_HISTORY:
            return 200, []
        try:
            limit = int(req.query.get("limit", 50))
        except ValueError:
            limit = 50
        if not 1 <= limit <= 100:
            errors = FormErrors()
            errors.add(("limit",), "NUMBER_TYPE_MAX", "int value should be less than or equal to 100.")
            errors.raise_if_any()
        msgs = [m for m in channel.visible_messages() if not m.ephemeral]
        if "before" in req.query:
            before = int(req.query["before"])
            msgs = [m for m in msgs if m.id < before][-limit:]
        elif "after" in req.query:
            after = int(req.query["after"])
            msgs = [m for m in msgs if m.id > after][:limit]
        elif "around" in req.query:
            around = int(req.query["around"])
            older = [m for m in msgs if m.id < around][-(limit // 2):] if limit > 1 else []
            newer = [m for m in msgs if m.id >= around][: limit - len(older)]
            msgs = older + newer
        else:
            msgs = msgs[-limit:]
        return 200, [m.to_dict(viewer_id=self.emu.bot_user.id) for m in reversed(msgs)]

    async def create_message(self, req: Request):
        emu = self.emu
        channel = emu.channel_or_404(req.params["channel_id"])
        if channel.is_dm:
            emu.check_can_dm(channel.recipients[0])
        else:
            need = P.SEND_MESSAGES_IN_THREADS if channel.is_thread else P.SEND_MESSAGES
            if req.files:
                need |= P.ATTACH_FILES
            emu.require(channel, need)
            if channel.is_thread and channel.locked and not emu.permissions_in(channel, emu.bot_user) & P.MANAGE_THREADS:
                raise APIError(E.THREAD_LOCKED, status=403)
        payload = self._message_payload(req, creating=True)
        if payload.get("enforce_nonce") and payload.get("nonce") is not None:
            # The same author sent this nonce in the last few minutes: Discord returns that message again.
            since = (int(time.time()) - NONCE_SECONDS) * 1000
            for earlier in reversed(channel.messages.values()):
                if snowflake_time_ms(earlier.id) < since:
                    break
                if (earlier.author.id == emu.bot_user.id and not earlier.deleted
                        and str(earlier.nonce) == str(payload["nonce"])):
                    return 200, earlier.to_dict(viewer_id=emu.bot_user.id)
        ref = payload.get("message_reference")
        if ref and ref.get("message_id"):
            target = emu.messages.get(int(ref["message_id"]))
            if (target is None or target.deleted or target.channel_id != channel.id) and ref.get(
                "fail_if_not_exists", True
            ):
                errors = FormErrors()
                errors.add(("message_reference",), "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message")
                errors.raise_if_any()
        if not channel.is_dm and not emu.permissions_in(channel, emu.bot_user) & P.EMBED_LINKS:
            payload["embeds"] = []  # Discord drops embeds the bot may not post, silently
        msg = emu.post_message(channel, emu.bot_user, payload, req.files)
        return 200, msg.to_dict(viewer_id=emu.bot_user.id)

    async def get_message(self, req: Request):
        channel = self._channel(req, P.VIEW_CHANNEL | P.READ_MESSAGE_HISTORY)
        msg = self.emu.find_message(channel, req.params["message_id"])
        if msg.ephemeral:
            raise APIError(E.UNKNOWN_MESSAGE)
        return 200, msg.to_dict(viewer_id=self.emu.bot_user.id)

    async def edit_message(self, req: Request):
        channel = self._channel(req)
        msg = self.emu.find_message(channel, req.params["message_id"])
        if msg.ephemeral:
            raise APIError(E.UNKNOWN_MESSAGE)
        payload = self._message_payload(req, creating=False)
        if msg.author.id != self.emu.bot_user.id:
            # Others' messages: only suppressing their embeds is allowed (with Manage Messages).
            if set(payload) - {"flags"}:
                raise APIError(E.CANNOT_EDIT_OTHERS_MESSAGE)
            if not channel.is_dm:
                self.emu.require(channel, P.MANAGE_MESSAGES)
        self._check_not_emptied(msg, payload, req.files)
        self.emu.edit_message(msg, payload, req.files)
        return 200, msg.to_dict(viewer_id=self.emu.bot_user.id)

    def _check_not_emptied(self, msg: Message, payload: dict[str, Any], files: list[UploadedFile]) -> None:
        content = payload.get("content", msg.content) or ""
        embeds = payload.get("embeds", msg.embeds) or []
        components = payload.get("components", msg.components) or []
        attachments = msg.attachments if payload.get("attachments") is None else payload["attachments"]
        if not (content or embeds or components or attachments or files):
            raise APIError(E.EMPTY_MESSAGE)

    async def delete_message(self, req: Request):
        channel = self._channel(req)
        msg = self.emu.find_message(channel, req.params["message_id"])
        if msg.author.id != self.emu.bot_user.id:
            if channel.is_dm:
                raise APIError(50003, "Cannot execute action on a DM channel", status=403)
            self.emu.require(channel, P.MANAGE_MESSAGES)
        self.emu.delete_message(msg)
        return 204, None

    async def bulk_delete(self, req: Request):
        channel = self._channel(req)
        if channel.is_dm:
            raise APIError(50003, "Cannot execute action on a DM channel", status=403)
        self.emu.require(channel, P.MANAGE_MESSAGES)
        ids = [int(i) for i in (req.json or {}).get("messages", [])]
        if not 2 <= len(ids) <= 100:
            errors = FormErrors()
            errors.add(("messages",), "BASE_TYPE_BAD_LENGTH", "Must be between 2 and 100 in length.")
            errors.raise_if_any()
        deleted = []
        for mid in ids:
            msg = channel.messages.get(mid)
            if msg is not None and not msg.deleted:
                msg.deleted = True
                deleted.append(str(mid))
        data: dict[str, Any] = {"ids": deleted, "channel_id": str(channel.id)}
        if channel.guild_id:
            data["guild_id"] = str(channel.guild_id)
        self.emu.gateway.dispatch("MESSAGE_DELETE_BULK", data, guild_id=channel.guild_id)
        self.emu.notify()
        return 204, None

    # ---- pins ------------------------------------------------------------------------------------------

    async def list_pins(self, req: Request):
        channel = self._channel(req)
        pinned = [m for m in reversed(channel.visible_messages()) if m.pinned]
        return 200, {
            "items": [{"pinned_at": m.created_at.isoformat(), "message": m.to_dict(viewer_id=self.emu.bot_user.id)}
                      for m in pinned],
            "has_more": False,
        }

    async def _set_pin(self, req: Request, value: bool):
        channel = self._channel(req)
        if not channel.is_dm:
            self.emu.require(channel, P.MANAGE_MESSAGES)
        msg = self.emu.find_message(channel, req.params["message_id"])
        msg.pinned = value
        self.emu._dispatch_message("MESSAGE_UPDATE", msg)
        self.emu.notify()
        return 204, None

    async def pin(self, req: Request):
        return await self._set_pin(req, True)

    async def unpin(self, req: Request):
        return await self._set_pin(req, False)

    # ---- reactions -------------------------------------------------------------------------------------

    def _reaction_target(self, req: Request) -> tuple[Channel, Message, str, dict[str, Any]]:
        channel = self._channel(req, P.VIEW_CHANNEL | P.READ_MESSAGE_HISTORY)
        msg = self.emu.find_message(channel, req.params["message_id"])
        key, emoji = parse_emoji(req.params["emoji_name"])
        if emoji["id"] is None and (not key or key.isascii()):
            # Plain text (e.g. "thumbsup") is not an emoji for Discord.
            raise APIError(E.UNKNOWN_EMOJI)
        return channel, msg, key, emoji

    async def add_reaction(self, req: Request):
        channel, msg, key, emoji = self._reaction_target(req)
        if not msg.reactions.get(key) and not channel.is_dm:
            self.emu.require(channel, P.ADD_REACTIONS | P.READ_MESSAGE_HISTORY)
        self.emu.add_reaction(msg, self.emu.bot_user, key, emoji)
        return 204, None

    async def remove_own_reaction(self, req: Request):
        _, msg, key, _ = self._reaction_target(req)
        self.emu.remove_reaction(msg, self.emu.bot_user.id, key)
        return 204, None

    async def remove_user_reaction(self, req: Request):
        channel, msg, key, _ = self._reaction_target(req)
        uid = int(req.params["user_id"]) if req.params["user_id"].isdigit() else 0
        if uid != self.emu.bot_user.id:
            if channel.is_dm:
                raise APIError(50003, "Cannot execute action on a DM channel", status=403)
            self.emu.require(channel, P.MANAGE_MESSAGES)
        self.emu.remove_reaction(msg, uid, key)
        return 204, None

    async def list_reactions(self, req: Request):
        _, msg, key, _ = self._reaction_target(req)
        users = msg.reactions.get(key, [])
        after = int(req.query.get("after", 0))
        limit = int(req.query.get("limit", 25))
        ids = sorted(u for u in users if u > after)[:limit]
        return 200, [self.emu.users[u].to_dict() for u in ids]

    async def clear_emoji_reactions(self, req: Request):
        channel, msg, key, _ = self._reaction_target(req)
        if channel.is_dm:
            raise APIError(50003, "Cannot execute action on a DM channel", status=403)
        self.emu.require(channel, P.MANAGE_MESSAGES)
        self.emu.clear_reactions(msg, key)
        return 204, None

    async def clear_reactions(self, req: Request):
        channel = self._channel(req)
        msg = self.emu.find_message(channel, req.params["message_id"])
        if channel.is_dm:
            raise APIError(50003, "Cannot execute action on a DM channel", status=403)
        self.emu.require(channel, P.MANAGE_MESSAGES)
        self.emu.clear_reactions(msg)
        return 204, None

    # ---- threads ---------------------------------------------------------------------------------------

    def _thread_body(self, req: Request) -> tuple[str, int]:
        body = req.json or {}
        name = body.get("name") or ""
        errors = FormErrors()
        if not 1 <= len(name) <= 100:
            errors.add(("name",), "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
        duration = int(body.get("auto_archive_duration") or 4320)
        if duration not in (60, 1440, 4320, 10080):
            errors.add(("auto_archive_duration",), "BASE_TYPE_CHOICES", "Value must be one of {60, 1440, 4320, 10080}.")
        errors.raise_if_any()
        return name, duration

    async def thread_from_message(self, req: Request):
        channel = self._channel(req, P.VIEW_CHANNEL | P.CREATE_PUBLIC_THREADS)
        if channel.is_dm or channel.is_thread:
            raise APIError(50024, "Cannot execute action on this channel type", status=400)
        msg = self.emu.find_message(channel, req.params["message_id"])
        if msg.thread_id is not None:
            raise APIError(E.THREAD_ALREADY_CREATED)
        name, duration = self._thread_body(req)
        thread = self.emu.create_thread(channel, name, self.emu.bot_user, message=msg, auto_archive_duration=duration)
        return 201, thread.to_dict()

    async def thread_without_message(self, req: Request):
        body = req.json or {}
        kind = int(body.get("type") or PRIVATE_THREAD)  # Discord's default is a private thread
        perm = P.CREATE_PRIVATE_THREADS if kind == PRIVATE_THREAD else P.CREATE_PUBLIC_THREADS
        channel = self._channel(req, P.VIEW_CHANNEL | perm)
        if channel.is_dm or channel.is_thread or kind not in (PUBLIC_THREAD, PRIVATE_THREAD, 10):
            raise APIError(50024, "Cannot execute action on this channel type", status=400)
        name, duration = self._thread_body(req)
        thread = self.emu.create_thread(channel, name, self.emu.bot_user, type=kind, auto_archive_duration=duration)
        return 201, thread.to_dict()

    def _thread(self, req: Request) -> Channel:
        channel = self._channel(req)
        if channel.type not in THREAD_TYPES:
            raise APIError(50024, "Cannot execute action on this channel type", status=400)
        return channel

    async def join_thread(self, req: Request):
        self._thread(req).member_ids.add(self.emu.bot_user.id)
        return 204, None

    async def leave_thread(self, req: Request):
        self._thread(req).member_ids.discard(self.emu.bot_user.id)
        return 204, None

    async def add_thread_member(self, req: Request):
        thread = self._thread(req)
        uid = int(req.params["user_id"]) if req.params["user_id"].isdigit() else 0
        guild = self.emu.guilds[thread.guild_id]  # type: ignore[index]
        if uid not in guild.members:
            raise APIError(E.UNKNOWN_MEMBER)
        self.emu.require(thread, P.SEND_MESSAGES_IN_THREADS)
        thread.member_ids.add(uid)
        return 204, None

    async def list_thread_members(self, req: Request):
        thread = self._thread(req)
        stamp = thread.archive_timestamp.isoformat()
        return 200, [{"id": str(thread.id), "user_id": str(u), "join_timestamp": stamp, "flags": 0}
                     for u in sorted(thread.member_ids)]

    # ---- interactions ----------------------------------------------------------------------------------

    async def interaction_callback(self, req: Request):
        emu = self.emu
        iid = req.params["interaction_id"]
        interaction = emu.interactions.get(int(iid)) if iid.isdigit() else None
        if interaction is None or interaction.token != req.params["interaction_token"]:
            raise APIError(E.UNKNOWN_INTERACTION)
        try:
            age = asyncio.get_running_loop().time() - interaction.created_at
            if interaction.response is not None:
                raise APIError(E.ALREADY_ACKNOWLEDGED)
            if age > emu.interaction_deadline:
                raise APIError(E.UNKNOWN_INTERACTION)
            response = self._respond(interaction, req)
        except APIError as exc:
            interaction.errors.append(exc.code)
            emu.notify()
            raise
        interaction.response = response
        emu.notify()
        if req.query.get("with_response") not in ("1", "true", "True"):
            return 204, None
        info: dict[str, Any] = {"id": str(interaction.id), "type": interaction.type}
        if response.message is not None and response.type in (CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE):
            info.update(
                response_message_id=str(response.message.id),
                response_message_loading=response.type == DEFERRED_CHANNEL_MESSAGE,
                response_message_ephemeral=response.ephemeral,
            )
        body: dict[str, Any] = {"interaction": info}
        # Discord describes a resource only for responses that create or update a message.
        if response.type in (CHANNEL_MESSAGE, UPDATE_MESSAGE) and response.message:
            body["resource"] = {"type": response.type, "message": response.message.to_dict(
                viewer_id=emu.bot_user.id)}
        return 200, body

    def _respond(self, interaction: Interaction, req: Request) -> InteractionResponse:
        emu = self.emu
        body = req.json if isinstance(req.json, dict) else {}
        kind = body.get("type")
        data = body.get("data") or {}
        errors = FormErrors()
        allowed = {
            PING: {PONG},
            AUTOCOMPLETE: {AUTOCOMPLETE_RESULT},
            MESSAGE_COMPONENT: {CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE,
                                MODAL},
            MODAL_SUBMIT: {CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE},
        }.get(interaction.type, {CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, MODAL})
        if interaction.type == MODAL_SUBMIT and interaction.source_message is not None:
            allowed = allowed | {DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE}
        if kind not in allowed:
            errors.add(("type",), "INTERACTION_RESPONSE_TYPE_INVALID", "Interaction response type is invalid")
            errors.raise_if_any()
        meta = interaction.metadata()
        channel = interaction.channel
        if kind in (CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE):
            flags = int(data.get("flags") or 0)
            ephemeral = bool(flags & EPHEMERAL)
            if kind == CHANNEL_MESSAGE:
                check_message_payload(data, n_files=len(req.files), creating=True)
                payload = data
            else:
                payload = {"content": "", "flags": (flags & EPHEMERAL) | LOADING}
            msg_type = 20 if interaction.type == 2 else 0
            msg = emu.post_message(
                channel, emu.bot_user, payload, req.files if kind == CHANNEL_MESSAGE else [],
                type=msg_type, webhook_id=emu.application_id, interaction_metadata=meta,
                visible_to=interaction.user.id if ephemeral else None,
            )
            interaction.original = msg
            return InteractionResponse(kind, message=msg, ephemeral=ephemeral)
        if kind in (DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE):
            source = interaction.source_message
            if source is None:
                errors.add(("type",), "INTERACTION_RESPONSE_TYPE_INVALID", "Interaction response type is invalid")
                errors.raise_if_any()
            assert source is not None
            interaction.original = source
            if kind == UPDATE_MESSAGE:
                check_message_payload(data, n_files=len(req.files), creating=False)
                emu.edit_message(source, data, req.files)
            return InteractionResponse(kind, message=source, ephemeral=source.ephemeral)
        if kind == MODAL:
            modal = check_modal(data)
            return InteractionResponse(kind, modal=modal)
        if kind == AUTOCOMPLETE_RESULT:
            choices = data.get("choices") or []
            if len(choices) > 25:
                errors.add(("data", "choices"), "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
                errors.raise_if_any()
            return InteractionResponse(kind, choices=choices)
        return InteractionResponse(kind)

    def _webhook_message(self, req: Request, interaction: Interaction) -> Message:
        mid = req.params.get("message_id")
        if mid is None:  # @original
            msg = interaction.original
            if msg is None or msg.deleted:
                raise APIError(E.UNKNOWN_MESSAGE)
            return msg
        candidates = {m.id: m for m in interaction.followups}
        if interaction.original is not None:
            candidates[interaction.original.id] = interaction.original
        msg = candidates.get(int(mid)) if mid.isdigit() else None
        if msg is None or msg.deleted:
            raise APIError(E.UNKNOWN_MESSAGE)
        return msg

    async def followup_create(self, req: Request):
        emu = self.emu
        interaction = self._interaction(req)
        if interaction.response is None or interaction.response.type in (MODAL, AUTOCOMPLETE_RESULT, PONG):
            # Follow-ups exist only once the interaction was acknowledged with a message-ish response.
            raise APIError(E.UNKNOWN_WEBHOOK)
        payload = self._message_payload(req, creating=True)
        flags = int(payload.get("flags") or 0)
        original = interaction.original
        if original is not None and original.loading and interaction.response.type == DEFERRED_CHANNEL_MESSAGE:
            # The first follow-up after a "thinking" defer replaces the placeholder, as on Discord.
            emu.edit_message(original, payload, req.files)
            interaction.followups.append(original)
            msg = original
        else:
            ephemeral = bool(flags & EPHEMERAL)
            msg = emu.post_message(
                interaction.channel, emu.bot_user, payload, req.files, webhook_id=emu.application_id,
                type=19 if interaction.type != 2 else 20,
                interaction_metadata=interaction.metadata(),
                visible_to=interaction.user.id if ephemeral else None,
            )
            interaction.followups.append(msg)
        emu.notify()
        if req.query.get("wait") in ("true", "1", "True"):
            return 200, msg.to_dict(viewer_id=emu.bot_user.id)
        return 204, None

    async def webhook_get_message(self, req: Request):
        interaction = self._interaction(req)
        return 200, self._webhook_message(req, interaction).to_dict(viewer_id=self.emu.bot_user.id)

    async def webhook_edit_message(self, req: Request):
        interaction = self._interaction(req)
        msg = self._webhook_message(req, interaction)
        payload = self._message_payload(req, creating=False)
        self._check_not_emptied(msg, payload, req.files)
        self.emu.edit_message(msg, payload, req.files)
        return 200, msg.to_dict(viewer_id=self.emu.bot_user.id)

    async def webhook_delete_message(self, req: Request):
        interaction = self._interaction(req)
        msg = self._webhook_message(req, interaction)
        self.emu.delete_message(msg)
        return 204, None

    # ---- guilds ----------------------------------------------------------------------------------------

    async def get_guild(self, req: Request):
        return 200, self._guild(req).to_dict()

    async def list_guild_channels(self, req: Request):
        guild = self._guild(req)
        return 200, [c.to_dict() for c in guild.channels.values() if not c.is_thread]

    async def create_guild_channel(self, req: Request):
        guild = self._guild(req)
        self._guild_perm(guild, P.MANAGE_CHANNELS)
        body = req.json or {}
        errors = FormErrors()
        name = body.get("name") or ""
        if not 1 <= len(name) <= 100:
            errors.add(("name",), "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
        errors.raise_if_any()
        parent = self.emu.channels.get(int(body["parent_id"])) if body.get("parent_id") else None
        channel = await self.emu.create_channel(
            guild, name, type=int(body.get("type") or GUILD_TEXT), parent=parent, topic=body.get("topic"),
            overwrites=[{"id": str(o["id"]), "type": int(o.get("type", 0)), "allow": str(o.get("allow", 0)),
                         "deny": str(o.get("deny", 0))} for o in body.get("permission_overwrites") or []],
        )
        return 201, channel.to_dict()

    async def active_threads(self, req: Request):
        guild = self._guild(req)
        threads = [c for c in guild.channels.values() if c.is_thread and not c.archived]
        members = [
            {"id": str(t.id), "user_id": str(self.emu.bot_user.id), "join_timestamp": t.archive_timestamp.isoformat(),
             "flags": 0}
            for t in threads if self.emu.bot_user.id in t.member_ids
        ]
        return 200, {"threads": [t.to_dict() for t in threads], "members": members, "has_more": False}

    def _member(self, req: Request, guild: Guild):
        uid = req.params["user_id"]
        member = guild.members.get(int(uid)) if uid.isdigit() else None
        if member is None:
            raise APIError(E.UNKNOWN_MEMBER)
        return member

    async def list_members(self, req: Request):
        guild = self._guild(req)
        limit = int(req.query.get("limit", 1))
        after = int(req.query.get("after", 0))
        members = sorted((m for m in guild.members.values() if m.user.id > after), key=lambda m: m.user.id)
        return 200, [m.to_dict() for m in members[:limit]]

    async def search_members(self, req: Request):
        guild = self._guild(req)
        query = (req.query.get("query") or "").lower()
        limit = int(req.query.get("limit", 1))
        found = [m for m in guild.members.values()
                 if m.user.username.lower().startswith(query) or (m.nick or "").lower().startswith(query)]
        return 200, [m.to_dict() for m in found[:limit]]

    async def get_member(self, req: Request):
        guild = self._guild(req)
        return 200, self._member(req, guild).to_dict()

    def _check_role_assignable(self, guild: Guild, role: Role) -> None:
        self._guild_perm(guild, P.MANAGE_ROLES)
        bot_member = guild.members[self.emu.bot_user.id]
        top = max((guild.roles[r].position for r in bot_member.role_ids if r in guild.roles), default=0)
        if role.managed or role.id == guild.id or role.position >= top:
            raise APIError(E.MISSING_PERMISSIONS)

    def _role(self, req: Request, guild: Guild) -> Role:
        rid = req.params["role_id"]
        role = guild.roles.get(int(rid)) if rid.isdigit() else None
        if role is None:
            raise APIError(E.UNKNOWN_ROLE)
        return role

    async def edit_member(self, req: Request):
        guild = self._guild(req)
        member = self._member(req, guild)
        body = req.json or {}
        if "nick" in body:
            if member.user.id != self.emu.bot_user.id:
                self._guild_perm(guild, P.MANAGE_NICKNAMES)
            member.nick = body["nick"] or None
        if "roles" in body:
            new = [int(r) for r in body["roles"] or []]
            changed = set(new) ^ set(member.role_ids)
            for rid in changed:
                role = guild.roles.get(rid)
                if role is None:
                    raise APIError(E.UNKNOWN_ROLE)
                self._check_role_assignable(guild, role)
            member.role_ids = new
        self.emu._member_updated(guild, member)
        return 200, member.to_dict()

    async def add_member_role(self, req: Request):
        guild = self._guild(req)
        member = self._member(req, guild)
        role = self._role(req, guild)
        self._check_role_assignable(guild, role)
        if role.id not in member.role_ids:
            member.role_ids.append(role.id)
            self.emu._member_updated(guild, member)
        return 204, None

    async def remove_member_role(self, req: Request):
        guild = self._guild(req)
        member = self._member(req, guild)
        role = self._role(req, guild)
        self._check_role_assignable(guild, role)
        if role.id in member.role_ids:
            member.role_ids.remove(role.id)
            self.emu._member_updated(guild, member)
        return 204, None

    async def list_roles(self, req: Request):
        guild = self._guild(req)
        return 200, [r.to_dict() for r in sorted(guild.roles.values(), key=lambda r: r.position)]

    async def get_role(self, req: Request):
        guild = self._guild(req)
        return 200, self._role(req, guild).to_dict()

    async def create_role(self, req: Request):
        guild = self._guild(req)
        self._guild_perm(guild, P.MANAGE_ROLES)
        body = req.json or {}
        perms = int(body.get("permissions") or 0)
        # A bot cannot grant permissions it does not have.
        if perms & ~P.base_permissions(guild, self.emu.bot_user.id):
            raise APIError(E.MISSING_PERMISSIONS)
        role = await self.emu.create_role(
            guild, body.get("name") or "new role", permissions=perms, color=int(body.get("color") or 0),
            hoist=bool(body.get("hoist")), mentionable=bool(body.get("mentionable")),
        )
        return 200, role.to_dict()

    async def edit_role(self, req: Request):
        guild = self._guild(req)
        role = self._role(req, guild)
        self._check_role_assignable(guild, role)
        body = req.json or {}
        for key in ("name", "hoist", "mentionable"):
            if key in body and body[key] is not None:
                setattr(role, key, body[key])
        if body.get("color") is not None:
            role.color = int(body["color"])
        if body.get("permissions") is not None:
            role.permissions = int(body["permissions"])
        self.emu.gateway.dispatch("GUILD_ROLE_UPDATE", {"guild_id": str(guild.id), "role": role.to_dict()},
                                  guild_id=guild.id)
        self.emu.notify()
        return 200, role.to_dict()

    async def delete_role(self, req: Request):
        guild = self._guild(req)
        role = self._role(req, guild)
        self._check_role_assignable(guild, role)
        del guild.roles[role.id]
        for member in guild.members.values():
            if role.id in member.role_ids:
                member.role_ids.remove(role.id)
        self.emu.gateway.dispatch("GUILD_ROLE_DELETE", {"guild_id": str(guild.id), "role_id": str(role.id)},
                                  guild_id=guild.id)
        self.emu.notify()
        return 204, None
