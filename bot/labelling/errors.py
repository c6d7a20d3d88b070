"""Refusals the bot can explain: every error carries a stable ``reason`` code and a polite message.

Cogs map ``reason`` to their own wording or show ``message`` as is; ``retry_at`` tells a rate-limited
user when to come back.
"""

from __future__ import annotations

from datetime import datetime


class LabellingError(Exception):
    """Base class; ``reason`` is a short machine code, ``message`` a sentence for the user."""

    default_messages: dict[str, str] = {}

    def __init__(self, reason: str, message: str | None = None, *, retry_at: datetime | None = None) -> None:
        self.reason = reason
        self.message = message or self.default_messages.get(reason, reason.replace("_", " "))
        self.retry_at = retry_at
        super().__init__(self.message)


class NoTaskAvailable(LabellingError):
    """No task can be given right now; the reason says why (banned, rate_limited, too_many_pending, no_work)."""

    default_messages = {
        "banned": "You are banned from the labelling campaign.",
        "rate_limited": "You asked for many tasks in a short time; please wait a little.",
        "too_many_pending": "You already have the maximum number of open tasks; finish or skip one first.",
        "no_work": "There is no task of this kind in your language right now; please try again later.",
    }


class TaskRefused(LabellingError):
    """A submission or skip that was not recorded."""

    default_messages = {
        "task_not_found": "That task does not exist.",
        "not_your_task": "That task belongs to someone else.",
        "wrong_task_kind": "That answer does not fit this kind of task.",
        "task_expired": "That task has expired; please ask for a new one.",
        "already_done": "That task is already done; it was recorded once.",
        "task_cancelled": "That task was withdrawn (the conversation changed or was moderated).",
        "banned": "You are banned from the labelling campaign.",
        "empty_text": "The text is empty.",
        "control_characters": ("The text contains control codes (invisible characters such as NUL or ESC, "
                                "from a terminal or a broken copy); please remove them."),
        "text_too_long": "The text is too long.",
        "duplicate_text": "You sent the same text a short while ago.",
        "already_replied": "You already replied to this message.",
        "parent_full": "This message already has enough replies.",
        "tree_closed": "This conversation no longer takes this kind of work.",
        "message_gone": "That message was removed.",
        "own_message": "You cannot review or rank your own message.",
        "already_labelled": "You already reviewed this message.",
        "already_ranked": "You already ranked these replies.",
        "invalid_labels": "Those labels are not valid for this message.",
        "invalid_ranking": "The ranking must order exactly the replies shown, each once.",
        "stale_ranking": "The replies changed since the task was given; please ask for a new task.",
        "rate_limited": "You are writing replies faster than allowed; please wait a little.",
    }


class VoteRefused(LabellingError):
    default_messages = {
        "message_not_found": "That message is not part of the campaign.",
        "own_message": "You cannot vote on your own message.",
        "banned": "You are banned from the labelling campaign.",
    }


class ModerationError(LabellingError):
    default_messages = {
        "user_not_found": "No such user.",
        "message_not_found": "No such message.",
        "tree_not_found": "No such conversation tree.",
        "already_halted": "That tree is already halted.",
        "not_halted": "That tree is not halted.",
        "already_deleted": "That message is already deleted.",
    }


class UnknownUser(LabellingError):
    default_messages = {"user_not_found": "No such user."}
