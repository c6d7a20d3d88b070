"""Interactions as the emulator sees them, and the handle a test holds after `slash`, `click`, `select`..."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .models import Channel, Guild, Message, User, iter_components

if TYPE_CHECKING:
    from .actors import EmulatedUser
    from .core import Emulator

PING, APPLICATION_COMMAND, MESSAGE_COMPONENT, AUTOCOMPLETE, MODAL_SUBMIT = 1, 2, 3, 4, 5

# Callback types
PONG = 1
CHANNEL_MESSAGE = 4
DEFERRED_CHANNEL_MESSAGE = 5
DEFERRED_UPDATE_MESSAGE = 6
UPDATE_MESSAGE = 7
AUTOCOMPLETE_RESULT = 8
MODAL = 9

RESPONSE_KINDS = {
    PONG: "pong",
    CHANNEL_MESSAGE: "message",
    DEFERRED_CHANNEL_MESSAGE: "deferred",
    DEFERRED_UPDATE_MESSAGE: "deferred_update",
    UPDATE_MESSAGE: "update",
    AUTOCOMPLETE_RESULT: "autocomplete",
    MODAL: "modal",
}


@dataclass
class InteractionResponse:
    """The bot's initial response to an interaction."""

    type: int
    message: Message | None = None
    modal: dict[str, Any] | None = None
    choices: list[dict[str, Any]] | None = None
    ephemeral: bool = False

    @property
    def kind(self) -> str:
        """`message`, `deferred`, `deferred_update`, `update`, `modal`, `autocomplete` or `pong`."""
        return RESPONSE_KINDS.get(self.type, str(self.type))

    @property
    def deferred(self) -> bool:
        return self.type in (DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE_MESSAGE)


@dataclass(eq=False)
class Interaction:
    """One interaction sent to the bot, with everything the bot answered to it."""

    id: int
    token: str
    type: int
    user: User
    channel: Channel
    guild: Guild | None
    data: dict[str, Any]
    payload: dict[str, Any]
    created_at: float  # loop time when dispatched, for the 3 s deadline
    source_message: Message | None = None
    # For a modal submission: the interaction the bot answered with the modal.
    triggered_by: Interaction | None = None
    response: InteractionResponse | None = None
    original: Message | None = None
    followups: list[Message] = field(default_factory=list)
    # Error codes the emulator answered to the bot's calls about this interaction (10062, 40060...).
    errors: list[int] = field(default_factory=list)
    _emu: Emulator | None = field(default=None, repr=False)

    def metadata(self) -> dict[str, Any]:
        """`interaction_metadata` of the messages answering this interaction, in Discord's shapes."""
        meta: dict[str, Any] = {
            "id": str(self.id),
            "type": self.type,
            "user": self.user.to_dict(),
            "authorizing_integration_owners": self.payload.get("authorizing_integration_owners", {}),
        }
        if self.type == APPLICATION_COMMAND:
            meta["name"] = self.data.get("name")
            meta["command_type"] = self.data.get("type", 1)
            if self.data.get("type") == 2:
                meta["target_user"] = self.data["resolved"]["users"][self.data["target_id"]]
            elif self.data.get("type") == 3:
                meta["target_message_id"] = self.data["target_id"]
        elif self.type == MESSAGE_COMPONENT and self.source_message is not None:
            meta["interacted_message_id"] = str(self.source_message.id)
        elif self.type == MODAL_SUBMIT and self.triggered_by is not None:
            meta["triggering_interaction_metadata"] = self.triggered_by.metadata()
        if self.original is not None:
            meta["original_response_message_id"] = str(self.original.id)
        return meta

    @property
    def name(self) -> str | None:
        return self.data.get("name")

    @property
    def custom_id(self) -> str | None:
        return self.data.get("custom_id")

    @property
    def responded(self) -> bool:
        return self.response is not None

    @property
    def ephemeral(self) -> bool:
        return bool(self.response and self.response.ephemeral)

    @property
    def modal(self) -> dict[str, Any] | None:
        return self.response.modal if self.response else None

    @property
    def messages(self) -> list[Message]:
        """The original response message (if any) followed by the follow-ups."""
        out = [self.original] if self.original is not None and self.original is not self.source_message else []
        return out + [m for m in self.followups if m is not self.original]

    async def wait_response(self, timeout: float = 5.0) -> InteractionResponse:  # noqa: ASYNC109 (a timeout argument is this helper's API)
        """Wait for the bot's initial response (message, defer, update or modal)."""
        assert self._emu is not None
        return await self._emu.wait_for(
            lambda: self.response, timeout=timeout, what=f"a response to interaction {self.describe()}"
        )

    async def wait_message(
        self, predicate: Callable[[Message], bool] | None = None, *, timeout: float = 5.0  # noqa: ASYNC109 (a timeout argument is this helper's API)
    ) -> Message:
        """Wait for the response message to be filled in (not 'thinking...') and to match `predicate`.

        For a deferred response this is the edit of the original response (or the first follow-up);
        for a button answered with an update it is the updated message.
        """
        assert self._emu is not None

        def check() -> Message | None:
            msg = self.original
            if msg is None or msg.loading:
                return None
            if predicate is not None and not predicate(msg):
                return None
            return msg

        return await self._emu.wait_for(check, timeout=timeout, what=f"the response message of {self.describe()}")

    async def wait_followup(
        self, predicate: Callable[[Message], bool] | None = None, *, timeout: float = 5.0  # noqa: ASYNC109 (a timeout argument is this helper's API)
    ) -> Message:
        """Wait for a follow-up message (any, or the first one matching `predicate`)."""
        assert self._emu is not None

        def check() -> Message | None:
            for msg in self.followups:
                if not msg.deleted and (predicate is None or predicate(msg)):
                    return msg
            return None

        return await self._emu.wait_for(check, timeout=timeout, what=f"a follow-up to {self.describe()}")

    async def wait_modal(self, timeout: float = 5.0) -> dict[str, Any]:  # noqa: ASYNC109 (a timeout argument is this helper's API)
        response = await self.wait_response(timeout)
        if response.modal is None:
            raise AssertionError(f"interaction {self.describe()} was answered with {response.kind}, not a modal")
        return response.modal

    async def submit_modal(self, values: dict[str, str | list[str]], *, timeout: float = 5.0) -> Interaction:  # noqa: ASYNC109 (a timeout argument is this helper's API)
        """The same user fills in and submits the modal the bot answered with."""
        modal = await self.wait_modal(timeout)
        user: EmulatedUser = self.user  # type: ignore[assignment]
        return await user.submit_modal(modal, values, channel=self.channel, source=self)

    def modal_inputs(self) -> list[dict[str, Any]]:
        """The input components of the modal (text inputs, selects), in order."""
        if not self.modal:
            return []
        return [c for c in iter_components(self.modal.get("components", [])) if "custom_id" in c]

    def describe(self) -> str:
        what = self.data.get("name") or self.data.get("custom_id") or ""
        return f"{self.id} ({what!r} by {self.user.username})"

    def __repr__(self) -> str:
        kind = self.response.kind if self.response else "unanswered"
        return f"<Interaction {self.describe()} {kind}>"
