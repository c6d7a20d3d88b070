"""A Discord API emulator (REST v10 + gateway + control API) that the unmodified discord.py client talks to."""

from .actors import ActionError, CommandUnavailable, EmulatedUser
from .core import Emulator, EmulatorTimeout, RestCall, UploadedFile
from .interactions import Interaction, InteractionResponse
from .models import Attachment, Channel, Command, Guild, Member, Message, Revision, Role, User

__all__ = [
    "ActionError",
    "Attachment",
    "Channel",
    "Command",
    "CommandUnavailable",
    "EmulatedUser",
    "Emulator",
    "EmulatorTimeout",
    "Guild",
    "Interaction",
    "InteractionResponse",
    "Member",
    "Message",
    "RestCall",
    "Revision",
    "Role",
    "UploadedFile",
    "User",
]
