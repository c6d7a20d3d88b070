"""Permission bits and Discord's permission computation (base role permissions, then channel overwrites)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import Channel, Guild

CREATE_INSTANT_INVITE = 1 << 0
KICK_MEMBERS = 1 << 1
BAN_MEMBERS = 1 << 2
ADMINISTRATOR = 1 << 3
MANAGE_CHANNELS = 1 << 4
MANAGE_GUILD = 1 << 5
ADD_REACTIONS = 1 << 6
VIEW_AUDIT_LOG = 1 << 7
STREAM = 1 << 9
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
MANAGE_MESSAGES = 1 << 13
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
MENTION_EVERYONE = 1 << 17
USE_EXTERNAL_EMOJIS = 1 << 18
CONNECT = 1 << 20
SPEAK = 1 << 21
USE_VAD = 1 << 25
CHANGE_NICKNAME = 1 << 26
MANAGE_NICKNAMES = 1 << 27
MANAGE_ROLES = 1 << 28
MANAGE_WEBHOOKS = 1 << 29
USE_APPLICATION_COMMANDS = 1 << 31
MANAGE_THREADS = 1 << 34
CREATE_PUBLIC_THREADS = 1 << 35
CREATE_PRIVATE_THREADS = 1 << 36
SEND_MESSAGES_IN_THREADS = 1 << 38
MODERATE_MEMBERS = 1 << 40

ALL = (1 << 51) - 1

# What @everyone gets in a fresh Discord server.
DEFAULT_EVERYONE = (
    CREATE_INSTANT_INVITE
    | ADD_REACTIONS
    | STREAM
    | VIEW_CHANNEL
    | SEND_MESSAGES
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | MENTION_EVERYONE
    | USE_EXTERNAL_EMOJIS
    | CONNECT
    | SPEAK
    | USE_VAD
    | CHANGE_NICKNAME
    | USE_APPLICATION_COMMANDS
    | CREATE_PUBLIC_THREADS
    | CREATE_PRIVATE_THREADS
    | SEND_MESSAGES_IN_THREADS
)

DEFAULT_MODERATOR = (
    MANAGE_GUILD | MANAGE_MESSAGES | MANAGE_THREADS | KICK_MEMBERS | BAN_MEMBERS | MODERATE_MEMBERS | MANAGE_NICKNAMES
)

DEFAULT_BOT = DEFAULT_EVERYONE | MANAGE_MESSAGES | MANAGE_THREADS | MANAGE_ROLES | MANAGE_CHANNELS


def base_permissions(guild: Guild, user_id: int) -> int:
    if user_id == guild.owner_id:
        return ALL
    member = guild.members.get(user_id)
    if member is None:
        return 0
    perms = guild.roles[guild.id].permissions
    for role_id in member.role_ids:
        role = guild.roles.get(role_id)
        if role is not None:
            perms |= role.permissions
    if perms & ADMINISTRATOR:
        return ALL
    return perms


def channel_permissions(guild: Guild, channel: Channel, user_id: int) -> int:
    """Permissions of a member in a channel; threads use their parent's overwrites."""
    perms = base_permissions(guild, user_id)
    if perms & ADMINISTRATOR or user_id == guild.owner_id:
        return ALL
    target = channel
    if channel.is_thread and channel.parent_id is not None:
        parent = guild.channels.get(channel.parent_id)
        if parent is not None:
            target = parent
    overwrites = {int(o["id"]): o for o in target.permission_overwrites}
    everyone = overwrites.get(guild.id)
    if everyone:
        perms &= ~int(everyone["deny"])
        perms |= int(everyone["allow"])
    member = guild.members.get(user_id)
    allow = deny = 0
    for role_id in member.role_ids if member else []:
        ow = overwrites.get(role_id)
        if ow and int(ow.get("type", 0)) == 0:
            allow |= int(ow["allow"])
            deny |= int(ow["deny"])
    perms = (perms & ~deny) | allow
    own = overwrites.get(user_id)
    if own and int(own.get("type", 1)) == 1:
        perms = (perms & ~int(own["deny"])) | int(own["allow"])
    # Without VIEW_CHANNEL nothing else in the channel applies.
    if not perms & VIEW_CHANNEL:
        return 0
    return perms
