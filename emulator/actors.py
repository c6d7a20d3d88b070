"""Emulated users: the scripting API a test uses to act as a person on Discord."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import permissions as P
from .core import UploadedFile
from .errors import FormErrors
from .interactions import APPLICATION_COMMAND, AUTOCOMPLETE, MESSAGE_COMPONENT, MODAL_SUBMIT, Interaction
from .limits import TEXT_INPUT_VALUE_MAX, check_embeds
from .models import (
    DM,
    PUBLIC_THREAD,
    Channel,
    Command,
    Guild,
    Member,
    Message,
    Role,
    User,
    iter_components,
    parse_emoji,
)

if TYPE_CHECKING:
    from .core import Emulator

SUB_COMMAND, SUB_COMMAND_GROUP = 1, 2
STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE, MENTIONABLE, NUMBER, ATTACHMENT = 3, 4, 5, 6, 7, 8, 9, 10, 11
SELECT_TYPES = (3, 5, 6, 7, 8)


class ActionError(Exception):
    """The emulated user cannot do this on Discord (the client would not offer it)."""


class CommandUnavailable(ActionError):
    """The command is unknown, or hidden from this user here (permissions, DM context)."""


FileLike = UploadedFile | tuple[str, bytes]


def _num(comp: dict[str, Any], key: str, default: int) -> int:
    """A numeric component field; discord.py sends unset ones as null."""
    value = comp.get(key)
    return default if value is None else int(value)


def _upload(f: FileLike) -> UploadedFile:
    return f if isinstance(f, UploadedFile) else UploadedFile(f[0], f[1])


@dataclass(eq=False, repr=False)
class EmulatedUser(User):
    _emu: Emulator | None = field(default=None, repr=False)

    @property
    def emu(self) -> Emulator:
        assert self._emu is not None
        return self._emu

    def member(self, guild: Guild) -> Member | None:
        return guild.members.get(self.id)

    # ---- messages --------------------------------------------------------------------------------------

    @property
    def dm_channel(self) -> Channel:
        """The DM channel with the bot (opened on first use, as a Discord client would)."""
        existing = self.emu.dm_channel(self)
        channel = self.emu.dm_channel_for(self)
        if existing is None:
            self.emu.gateway.dispatch("CHANNEL_CREATE", channel.to_dict())
        return channel

    async def dm(
        self, content: str = "", *, files: Iterable[FileLike] = (), embeds: list[dict[str, Any]] | None = None
    ) -> Message:
        """Send a direct message to the bot."""
        return await self.send(self.dm_channel, content, files=files, embeds=embeds)

    async def send(
        self,
        channel: Channel,
        content: str = "",
        *,
        reply_to: Message | None = None,
        files: Iterable[FileLike] = (),
        embeds: list[dict[str, Any]] | None = None,
    ) -> Message:
        """Post a message in a guild channel, thread or DM channel."""
        self._check_can_see(channel, P.SEND_MESSAGES_IN_THREADS if channel.is_thread else P.SEND_MESSAGES)
        if len(content) > 2000:
            raise ActionError("a message holds at most 2000 characters")
        errors = FormErrors()
        payload: dict[str, Any] = {"content": content, "embeds": check_embeds(errors, embeds)}
        if errors:
            raise ActionError(f"invalid embeds: {errors.tree}")
        if reply_to is not None:
            payload["message_reference"] = {"message_id": str(reply_to.id)}
        uploads = [_upload(f) for f in files]
        if not content and not uploads and not payload["embeds"]:
            raise ActionError("cannot send an empty message")
        return self.emu.post_message(channel, self, payload, uploads)

    async def reply(self, message: Message, content: str, **kwargs: Any) -> Message:
        return await self.send(self.emu.channels[message.channel_id], content, reply_to=message, **kwargs)

    async def edit(self, message: Message, content: str) -> Message:
        if message.author.id != self.id:
            raise ActionError("users can only edit their own messages")
        return self.emu.edit_message(message, {"content": content})

    async def delete(self, message: Message) -> None:
        channel = self.emu.channels[message.channel_id]
        if message.author.id != self.id and not self.emu.permissions_in(channel, self) & P.MANAGE_MESSAGES:
            raise ActionError("deleting someone else's message needs Manage Messages")
        self.emu.delete_message(message)

    async def create_thread(
        self, channel: Channel, name: str, *, message: Message | None = None, private: bool = False
    ) -> Channel:
        """Start a thread in `channel`, from `message` if given."""
        perm = P.CREATE_PRIVATE_THREADS if private else P.CREATE_PUBLIC_THREADS
        self._check_can_see(channel, perm)
        if message is not None and message.thread_id is not None:
            raise ActionError("this message already has a thread")
        return self.emu.create_thread(channel, name, self, message=message, type=12 if private else PUBLIC_THREAD)

    # ---- reactions -------------------------------------------------------------------------------------

    async def react(self, message: Message, emoji: str) -> None:
        """Add a reaction (unicode emoji or `name:id`)."""
        channel = self.emu.channels[message.channel_id]
        self._check_can_see(channel, P.READ_MESSAGE_HISTORY)
        key, data = parse_emoji(emoji)
        if not message.reactions.get(key):
            self._check_can_see(channel, P.ADD_REACTIONS)
        self.emu.add_reaction(message, self, key, data)

    async def unreact(self, message: Message, emoji: str) -> None:
        key, _ = parse_emoji(emoji)
        self.emu.remove_reaction(message, self.id, key)

    # ---- interactions ----------------------------------------------------------------------------------

    async def slash(
        self,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        channel: Channel | None = None,
    ) -> Interaction:
        """Run a slash command (`"chat reset"` for subcommand `reset` of `chat`) in `channel` (default: DM).

        Option values: str/int/float/bool, or a User, Channel, Role, or a `(filename, bytes)` attachment.
        """
        channel = channel or self.dm_channel
        data = self._command_data(name, options or {}, channel, focused=None)
        return self.emu.new_interaction(self, channel, APPLICATION_COMMAND, data)

    async def autocomplete(
        self,
        name: str,
        options: dict[str, Any],
        focused: str,
        *,
        channel: Channel | None = None,
    ) -> Interaction:
        """Type into option `focused` of a slash command: the bot gets an autocomplete interaction and its
        answer's choices are in `(await it.wait_response()).choices`."""
        channel = channel or self.dm_channel
        data = self._command_data(name, options, channel, focused=focused)
        return self.emu.new_interaction(self, channel, AUTOCOMPLETE, data)

    def _command_data(
        self, name: str, options: dict[str, Any], channel: Channel, *, focused: str | None
    ) -> dict[str, Any]:
        guild = self.emu.guild_of(channel)
        parts = name.split()
        cmd = self._visible_command(parts[0], channel, guild)
        resolved: dict[str, dict[str, Any]] = {}
        declared = cmd.options
        given = dict(options)
        tree: list[dict[str, Any]] = []
        container = tree
        for part in parts[1:]:
            sub = next((o for o in declared if o["name"] == part and o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP)), None)
            if sub is None:
                raise CommandUnavailable(f"/{parts[0]} has no subcommand {part!r}")
            node: dict[str, Any] = {"name": part, "type": sub["type"], "options": []}
            container.append(node)
            container = node["options"]
            declared = sub.get("options") or []
        if any(o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP) for o in declared):
            names = [o["name"] for o in declared]
            raise CommandUnavailable(f"/{name} needs a subcommand, one of {names}")
        if focused is not None:
            spec = next((o for o in declared if o["name"] == focused), None)
            if spec is None or not spec.get("autocomplete"):
                raise CommandUnavailable(f"option {focused!r} of /{name} has no autocomplete")
            # What is being typed is sent as-is; other options only if already filled in.
            partial = str(given.pop(focused, ""))
            container.extend(self._build_options(
                [{**o, "required": False} for o in declared if o["name"] != focused], given, channel, guild,
                resolved))
            container.append({"name": focused, "type": spec["type"], "value": partial, "focused": True})
        else:
            container.extend(self._build_options(declared, given, channel, guild, resolved))
        data: dict[str, Any] = {"id": str(cmd.id), "name": cmd.name, "type": 1}
        if tree:
            data["options"] = tree
        if resolved:
            data["resolved"] = resolved
        if cmd.guild_id is not None:
            data["guild_id"] = str(cmd.guild_id)
        return data

    async def context_menu(self, name: str, target: Message | User, *, channel: Channel | None = None) -> Interaction:
        """Run a user (type 2) or message (type 3) context-menu command on `target`."""
        is_message = isinstance(target, Message)
        if channel is None:
            channel = self.emu.channels[target.channel_id] if is_message else self.dm_channel
        guild = self.emu.guild_of(channel)
        cmd = self._visible_command(name, channel, guild, type=3 if is_message else 2)
        resolved: dict[str, Any] = {}
        if is_message:
            resolved["messages"] = {str(target.id): target.to_dict()}
        else:
            resolved["users"] = {str(target.id): target.to_dict()}
            member = guild.members.get(target.id) if guild else None
            if member is not None:
                resolved["members"] = {str(target.id): member.to_dict(with_user=False)}
        data = {"id": str(cmd.id), "name": cmd.name, "type": cmd.type, "target_id": str(target.id),
                "resolved": resolved}
        return self.emu.new_interaction(self, channel, APPLICATION_COMMAND, data)

    async def click(self, message: Message, custom_id: str) -> Interaction:
        """Press the button `custom_id` on `message`."""
        comp = self._component(message, custom_id)
        if comp.get("type") != 2:
            raise ActionError(f"component {custom_id!r} is not a button")
        if comp.get("style") == 5:
            raise ActionError("link buttons open a URL and send no interaction")
        data = {"custom_id": custom_id, "component_type": 2}
        if "id" in comp:
            data["id"] = comp["id"]
        return self.emu.new_interaction(self, self.emu.channels[message.channel_id], MESSAGE_COMPONENT, data,
                                        message=message)

    async def select(self, message: Message, custom_id: str, values: Iterable[Any]) -> Interaction:
        """Choose `values` in the select menu `custom_id` (option values, or users/roles/channels)."""
        comp = self._component(message, custom_id)
        kind = comp.get("type")
        if kind not in SELECT_TYPES:
            raise ActionError(f"component {custom_id!r} is not a select menu")
        values = list(values)
        lo, hi = _num(comp, "min_values", 1), _num(comp, "max_values", 1)
        if not lo <= len(values) <= hi:
            raise ActionError(f"select {custom_id!r} takes between {lo} and {hi} values, got {len(values)}")
        channel = self.emu.channels[message.channel_id]
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": kind}
        data["values"], resolved = self._select_values(comp, values, channel)
        if resolved:
            data["resolved"] = resolved
        if "id" in comp:
            data["id"] = comp["id"]
        return self.emu.new_interaction(self, channel, MESSAGE_COMPONENT, data, message=message)

    async def submit_modal(
        self,
        modal: dict[str, Any] | Interaction,
        values: dict[str, Any],
        *,
        channel: Channel | None = None,
        source: Interaction | None = None,
    ) -> Interaction:
        """Fill in and submit a modal the bot showed: `values` maps input custom_ids to text (or select values)."""
        if isinstance(modal, Interaction):
            source = modal
            modal = await modal.wait_modal()
        if source is None:
            source = next((i for i in self.emu.interactions.values() if i.modal is modal), None)
        if source is None:
            raise ActionError("this modal was not shown by the bot (no interaction answered with it)")
        if source.user.id != self.id:
            raise ActionError("only the user who opened a modal can submit it")
        channel = channel or source.channel
        unknown = set(values) - {c.get("custom_id") for c in iter_components(modal.get("components", []))}
        if unknown:
            raise ActionError(f"modal {modal.get('custom_id')!r} has no inputs {sorted(unknown)}")
        resolved: dict[str, dict[str, Any]] = {}
        components = [self._modal_answer(top, values, channel, resolved) for top in modal.get("components", [])]
        data: dict[str, Any] = {"custom_id": modal["custom_id"], "components": components}
        if resolved:
            data["resolved"] = resolved
        return self.emu.new_interaction(self, channel, MODAL_SUBMIT, data, message=source.source_message,
                                        triggered_by=source)

    # ---- helpers ---------------------------------------------------------------------------------------

    def _check_can_see(self, channel: Channel, perms: int) -> None:
        if channel.type == DM:
            if self not in channel.recipients:
                raise ActionError(f"{self.username} is not in this DM")
            return
        guild = self.emu.guild_of(channel)
        if guild is None or self.id not in guild.members:
            raise ActionError(f"{self.username} is not a member of the guild of {channel!r}")
        have = self.emu.permissions_in(channel, self)
        if have & (P.VIEW_CHANNEL | perms) != (P.VIEW_CHANNEL | perms):
            raise ActionError(f"{self.username} lacks permissions {perms:#x} in {channel!r}")

    def visible_commands(self, channel: Channel) -> list[Command]:
        """The slash commands the Discord client offers this user in `channel`, by name."""
        guild = self.emu.guild_of(channel)
        names = sorted({cmd.name for cmd in self.emu.commands.values() if cmd.type == 1})
        offered = []
        for name in names:
            try:
                offered.append(self._visible_command(name, channel, guild))
            except CommandUnavailable:
                continue
        return offered

    def _visible_command(self, name: str, channel: Channel, guild: Guild | None, type: int = 1) -> Command:
        cmd = self.emu.find_command(name, guild=guild, type=type)
        if cmd is None:
            where = f"guild {guild.name!r}" if guild else "DMs"
            raise CommandUnavailable(f"no command {name!r} registered for {where}")
        contexts = cmd.data.get("contexts")
        if guild is None:
            allowed = 1 in contexts if contexts is not None else cmd.data.get("dm_permission", True) is not False
            if not allowed:
                raise CommandUnavailable(f"/{name} cannot be used in DMs")
            return cmd
        if contexts is not None and 0 not in contexts:
            raise CommandUnavailable(f"/{name} cannot be used in guilds")
        if self.id not in guild.members:
            raise CommandUnavailable(f"{self.username} is not a member of {guild.name!r}")
        base = P.base_permissions(guild, self.id)
        required = cmd.default_member_permissions
        override = self.emu.command_override(guild, cmd, self.id)
        if override is False and not base & P.ADMINISTRATOR:
            raise CommandUnavailable(f"/{name} is forbidden to {self.username} by the server's settings")
        # Discord hides commands whose default permissions the member lacks (admins see everything), unless
        # a server admin allowed the command for them.
        if required is not None and not base & P.ADMINISTRATOR and override is not True:
            if required == 0 or base & required != required:
                raise CommandUnavailable(f"/{name} is hidden from {self.username} (needs permissions {required:#x})")
        if not self.emu.permissions_in(channel, self) & P.USE_APPLICATION_COMMANDS:
            raise CommandUnavailable(f"{self.username} cannot use application commands in {channel!r}")
        return cmd

    def _build_options(
        self,
        declared: list[dict[str, Any]],
        given: dict[str, Any],
        channel: Channel,
        guild: Guild | None,
        resolved: dict[str, dict[str, Any]],
    ) -> list[dict[str, Any]]:
        names = {o["name"] for o in declared}
        unknown = set(given) - names
        if unknown:
            raise CommandUnavailable(f"unknown options {sorted(unknown)}; the command declares {sorted(names)}")
        out = []
        for opt in declared:
            name = opt["name"]
            if name not in given or given[name] is None:
                if opt.get("required"):
                    raise CommandUnavailable(f"option {name!r} is required")
                continue
            value = self._option_value(opt, given[name], channel, guild, resolved)
            out.append({"name": name, "type": opt["type"], "value": value})
        return out

    def _option_value(
        self, opt: dict[str, Any], raw: Any, channel: Channel, guild: Guild | None, resolved: dict[str, dict]
    ) -> Any:
        kind = opt["type"]
        name = opt["name"]
        if kind == STRING:
            value: Any = str(raw)
            lo, hi = _num(opt, "min_length", 0), _num(opt, "max_length", 6000)
            if not lo <= len(value) <= hi:
                raise CommandUnavailable(f"option {name!r} must be {lo}..{hi} characters")
        elif kind == INTEGER:
            if isinstance(raw, bool) or int(raw) != raw:
                raise CommandUnavailable(f"option {name!r} takes an integer")
            value = int(raw)
        elif kind == NUMBER:
            value = float(raw)
        elif kind == BOOLEAN:
            if not isinstance(raw, bool):
                raise CommandUnavailable(f"option {name!r} takes a boolean")
            return raw
        elif kind in (USER, MENTIONABLE) and isinstance(raw, User):
            resolved.setdefault("users", {})[str(raw.id)] = raw.to_dict()
            member = guild.members.get(raw.id) if guild else None
            if member is not None:
                mdata = member.to_dict(with_user=False)
                mdata["permissions"] = str(self.emu.permissions_in(channel, raw))
                resolved.setdefault("members", {})[str(raw.id)] = mdata
            return str(raw.id)
        elif kind in (ROLE, MENTIONABLE) and isinstance(raw, Role):
            resolved.setdefault("roles", {})[str(raw.id)] = raw.to_dict()
            return str(raw.id)
        elif kind == CHANNEL and isinstance(raw, Channel):
            types = opt.get("channel_types")
            if types and raw.type not in types:
                raise CommandUnavailable(f"option {name!r} takes channels of types {types}")
            cdata = raw.to_dict()
            cdata["permissions"] = str(self.emu.permissions_in(raw, self))
            resolved.setdefault("channels", {})[str(raw.id)] = cdata
            return str(raw.id)
        elif kind == ATTACHMENT:
            upload = _upload(raw)
            att = self.emu._attachment(channel, upload, ephemeral=True)
            resolved.setdefault("attachments", {})[str(att.id)] = att.to_dict()
            return str(att.id)
        else:
            raise CommandUnavailable(f"option {name!r} (type {kind}) cannot take {raw!r}")
        if kind in (INTEGER, NUMBER):
            lo, hi = opt.get("min_value"), opt.get("max_value")
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                raise CommandUnavailable(f"option {name!r} must be between {lo} and {hi}")
        choices = opt.get("choices")
        if choices and value not in [c["value"] for c in choices]:
            raise CommandUnavailable(f"option {name!r} must be one of {[c['value'] for c in choices]}")
        return value

    def _component(self, message: Message, custom_id: str) -> dict[str, Any]:
        if message.deleted:
            raise ActionError("the message was deleted")
        if message.ephemeral and message.visible_to not in (None, self.id):
            raise ActionError("this ephemeral message is not visible to this user")
        comp = message.find_component(custom_id)
        if comp is None:
            raise ActionError(f"message {message.id} has no component {custom_id!r}; it has {message.custom_ids}")
        if comp.get("disabled"):
            raise ActionError(f"component {custom_id!r} is disabled")
        return comp

    def _select_values(self, comp: dict[str, Any], values: list[Any], channel: Channel) -> tuple[list[str], dict]:
        kind = comp["type"]
        guild = self.emu.guild_of(channel)
        resolved: dict[str, dict[str, Any]] = {}
        if kind == 3:
            allowed = [o["value"] for o in comp.get("options", [])]
            bad = [v for v in values if v not in allowed]
            if bad:
                raise ActionError(f"select {comp['custom_id']!r} has no options {bad}; it offers {allowed}")
            return [str(v) for v in values], resolved
        out = []
        for v in values:
            if isinstance(v, User):
                resolved.setdefault("users", {})[str(v.id)] = v.to_dict()
                member = guild.members.get(v.id) if guild else None
                if member is not None:
                    resolved.setdefault("members", {})[str(v.id)] = member.to_dict(with_user=False)
            elif isinstance(v, Role):
                resolved.setdefault("roles", {})[str(v.id)] = v.to_dict()
            elif isinstance(v, Channel):
                cdata = v.to_dict()
                cdata["permissions"] = str(self.emu.permissions_in(v, self))
                resolved.setdefault("channels", {})[str(v.id)] = cdata
            else:
                raise ActionError(f"select {comp['custom_id']!r} takes users, roles or channels, not {v!r}")
            out.append(str(v.id))
        return out, resolved

    def _modal_answer(
        self, top: dict[str, Any], values: dict[str, Any], channel: Channel, resolved: dict[str, dict[str, Any]]
    ) -> dict[str, Any]:
        kind = top.get("type")
        if kind == 1:
            inner = self._input_answer(top["components"][0], values, channel, resolved)
            return {"type": 1, "id": top.get("id"), "components": [inner]}
        if kind == 18:
            inner = self._input_answer(top["component"], values, channel, resolved)
            return {"type": 18, "id": top.get("id"), "component": inner}
        return {"type": kind, "id": top.get("id")}

    def _input_answer(
        self, comp: dict[str, Any], values: dict[str, Any], channel: Channel, resolved: dict[str, dict[str, Any]]
    ) -> dict[str, Any]:
        cid = comp.get("custom_id")
        kind = comp.get("type")
        base = {"type": kind, "id": comp.get("id"), "custom_id": cid}
        required = comp.get("required") is not False
        if kind == 4:  # text input
            value = str(values.get(cid, comp.get("value") or ""))
            if required and not value:
                raise ActionError(f"modal input {cid!r} is required")
            lo = _num(comp, "min_length", 0)
            hi = _num(comp, "max_length", TEXT_INPUT_VALUE_MAX)
            if value and not lo <= len(value) <= hi:
                raise ActionError(f"modal input {cid!r} takes {lo}..{hi} characters, got {len(value)}")
            return {**base, "value": value}
        if kind == 23:  # checkbox
            return {**base, "value": bool(values.get(cid, comp.get("default", False)))}
        if kind == 21:  # radio group
            value = values.get(cid)
            allowed = [o["value"] for o in comp.get("options", [])]
            if value is None and required:
                raise ActionError(f"modal input {cid!r} is required")
            if value is not None and value not in allowed:
                raise ActionError(f"modal input {cid!r} offers {allowed}, not {value!r}")
            return {**base, "value": value}
        chosen = values.get(cid, [])
        chosen = [chosen] if isinstance(chosen, str | User | Role | Channel | tuple | UploadedFile) else list(chosen)
        lo = _num(comp, "min_values", 1 if required else 0)
        hi = _num(comp, "max_values", 1)
        if not lo <= len(chosen) <= hi:
            raise ActionError(f"modal input {cid!r} takes between {lo} and {hi} values, got {len(chosen)}")
        if kind == 22:  # checkbox group
            allowed = [o["value"] for o in comp.get("options", [])]
            bad = [v for v in chosen if v not in allowed]
            if bad:
                raise ActionError(f"modal input {cid!r} offers {allowed}, not {bad}")
            return {**base, "values": chosen}
        if kind == 19:  # file upload
            ids = []
            for f in chosen:
                att = self.emu._attachment(channel, _upload(f), ephemeral=True)
                resolved.setdefault("attachments", {})[str(att.id)] = att.to_dict()
                ids.append(str(att.id))
            return {**base, "values": ids}
        if kind in SELECT_TYPES:
            vals, extra = self._select_values(comp, chosen, channel)
            for key, entries in extra.items():
                resolved.setdefault(key, {}).update(entries)
            return {**base, "values": vals}
        return base
