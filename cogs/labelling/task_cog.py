"""/task: the member's labelling loop. Each interaction reads the custom_id, calls one MemberTasks method
(one transaction) and renders the result; refusals are the engine's polite sentences, shown only to
the member."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.labelling.errors import LabellingError
from bot.labelling.member_tasks import Member, MemberTasks, Outcome
from bot.labelling.tasks import TaskOffer
from cogs.command_errors import DATABASE_BUSY, log_failure
from cogs.labelling import answering, render
from cogs.labelling.task_views import (
    DYNAMIC_ITEMS,
    MODAL_ID,
    MODAL_PREFIX,
    NO,
    SKIP_REASONS,
    YES,
    StaleState,
    again_view,
    complete_order,
    decode_order,
    decode_review,
    modal_text,
    outcome_view,
    parse_review,
    review_answers,
    skip_view,
    task_view,
    text_modal,
)
from storage.db import is_unavailable

KIND_OPTIONS = [
    app_commands.Choice(name="any", value="any"),
    app_commands.Choice(name="prompt", value="prompt"),
    app_commands.Choice(name="reply as assistant", value="assistant_reply"),
    app_commands.Choice(name="reply as user", value="prompter_reply"),
    app_commands.Choice(name="review", value="review"),
    app_commands.Choice(name="rank", value="rank"),
]
# Refusals after which the same task still takes a corrected text.
RETRYABLE = {"empty_text", "control_characters", "text_too_long", "duplicate_text", "rate_limited"}
STALE = ("These buttons are out of date or were not made by me, so nothing was recorded. "
         "Use /task to get a task again.")
# A form of ours whose custom_id does not parse (an older version's, or forged): the text comes back.
STALE_FORM = "This form is out of date or was not made by me, so nothing was recorded."
SKIP_PROMPT = "Skip this task? Telling why is optional and helps us give better tasks."
# Discord's text inputs hold at most 4000 characters.
TEXT_INPUT_MAX = 4000


def member_of(interaction: discord.Interaction) -> Member:
    user = interaction.user
    return Member(user.id, user.display_name, str(interaction.locale) if interaction.locale else None)


def refusal_text(error: LabellingError) -> str:
    if error.retry_at is not None:
        return f"{error.message} You can try again {discord.utils.format_dt(error.retry_at, 'R')}."
    return error.message


async def give_text_back(interaction: discord.Interaction, reason: str, retry: bool, text: str, task_id: int,
                         code: str) -> None:
    """Nothing the member wrote is lost: a refused text comes back with the reason, and with a "Write
    again" button when the same task still takes a corrected text."""
    await echo_text(interaction, reason, text, again_view(task_id, code) if retry else None)


async def echo_text(interaction: discord.Interaction, reason: str, text: str,
                    view: discord.ui.View | None = None) -> None:
    """The text back to the member with why it was not recorded; ``view`` offers to write it again."""
    embed, file = render.echo(reason, text, retry=view is not None)
    extra: dict[str, Any] = {"file": file} if file else {}
    if view is not None:
        extra["view"] = view
    await answering.note(interaction, embed=embed, **extra)


async def submit_text(interaction: discord.Interaction, members: MemberTasks, task_id: int, code: str,
                      text: str) -> Outcome | None:
    """The text of a Write modal submitted; None when it was refused (the engine's reason, or a database
    that cannot take it now) and given back to the member."""
    try:
        return await answering.run(interaction, members.submit_text(member_of(interaction), task_id, text))
    except LabellingError as refused:
        await give_text_back(interaction, refusal_text(refused), refused.reason in RETRYABLE, text, task_id, code)
    except Exception as error:
        if not is_unavailable(error):
            raise
        log_failure(f"the text written for task {task_id}", interaction.user.id, error)
        await give_text_back(interaction, DATABASE_BUSY, True, text, task_id, code)
    return None


class TaskCog(commands.Cog, name="Tasks"):
    """After each recorded submission it dispatches ``task_outcome`` (an Outcome), so task posts showing
    the same work can be brought up to date."""

    def __init__(self, bot: Any, members: MemberTasks) -> None:
        self.bot = bot
        self.members = members

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(*DYNAMIC_ITEMS)

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(*DYNAMIC_ITEMS)

    @property
    def text_limit(self) -> int:
        return min(self.members.ctx.settings.max_text_length, TEXT_INPUT_MAX)

    @app_commands.command(name="task", description="Get a labelling task: write, review or rank")
    @app_commands.describe(kind="What you want to do (default: whatever is most needed)",
                           language="A language tag such as en or de (default: your language)")
    @app_commands.choices(kind=KIND_OPTIONS)
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)
    @app_commands.allowed_installs(guilds=True, users=False)
    async def task(self, interaction: discord.Interaction, kind: app_commands.Choice[str] | None = None,
                   language: app_commands.Range[str, 2, 16] | None = None) -> None:
        asked = kind.value if kind else "any"
        try:
            offer = await answering.run(interaction, self.members.request(member_of(interaction), asked, language),
                                        thinking=True)
        except LabellingError as refused:
            await answering.show(interaction, content=refusal_text(refused))
            return
        await answering.show(interaction, **task_message(offer))

    # ----- components (see task_views for the custom_ids) ------------------------------------------

    async def on_button(self, interaction: discord.Interaction, action: str, task_id: int, state: str) -> None:
        if action in ("write", "again"):
            # A modal must be the first answer, so it opens without a lookup; the submission is checked.
            text = render.echoed_text(interaction.message) if action == "again" else None
            await interaction.response.send_modal(text_modal(task_id, state, self.text_limit, text))
        elif action in ("skip", "back", "page", "reset"):
            await self._redraw(interaction, task_id, lambda offer: self._after_button(offer, action, state))
        else:
            try:
                work = self._submission(interaction, action, task_id, state)
            except StaleState:
                await answering.note(interaction, STALE)
                return
            await self._submit(interaction, work)

    @staticmethod
    def _after_button(offer: TaskOffer, action: str, state: str) -> dict[str, Any]:
        if action == "skip":
            return {"content": SKIP_PROMPT, "view": skip_view(offer.task_id, state)}
        view, status = task_view(offer, "" if action == "reset" else state)
        return {"content": status, "view": view}

    def _submission(self, interaction: discord.Interaction, action: str, task_id: int,
                    state: str) -> Awaitable[Outcome]:
        who = member_of(interaction)
        if action == "skipnow":
            return self.members.skip(who, task_id)
        if action == "confirm":
            return self.members.submit_review(who, task_id, review_answers(parse_review(state)))
        if action == "rankok":
            return self.members.submit_ranking(who, task_id, [ord(c) - ord("A") for c in state])
        if action == "notrank":
            return self.members.submit_ranking(who, task_id, None, not_rankable=True)
        raise StaleState(action)

    async def _redraw(self, interaction: discord.Interaction, task_id: int,
                      draw: Callable[[TaskOffer], dict[str, Any]]) -> None:
        """A click that only changes what the message shows: the task is read again, nothing written."""
        try:
            offer = await answering.run(interaction, self.members.open(member_of(interaction), task_id))
            changes = draw(offer)
        except LabellingError as refused:
            await answering.note(interaction, refusal_text(refused))
        except StaleState:
            await answering.note(interaction, STALE)
        else:
            await answering.update(interaction, **changes)

    async def _submit(self, interaction: discord.Interaction, work: Awaitable[Outcome]) -> None:
        try:
            outcome = await answering.run(interaction, work)
        except LabellingError as refused:
            await answering.note(interaction, refusal_text(refused))
        else:
            # Posts showing the same work are brought up to date without waiting for the member's answer.
            self.bot.dispatch("task_outcome", outcome)
            await answering.update(interaction, **outcome_message(outcome))

    async def on_select(self, interaction: discord.Interaction, action: str, task_id: int, state: str, arg: str,
                        values: list[str]) -> None:
        if action == "skipwhy":
            reason = values[0] if values and values[0] in SKIP_REASONS else None
            await self._submit(interaction, self.members.skip(member_of(interaction), task_id, reason))
        else:
            await self._redraw(interaction, task_id, lambda offer: self._after_pick(offer, action, state, arg, values))

    @staticmethod
    def _after_pick(offer: TaskOffer, action: str, state: str, arg: str, values: list[str]) -> dict[str, Any]:
        """The message after a pick in a select: the new state is carried by the components."""
        if action == "rank":
            order = decode_order(state, len(offer.replies))
            order = complete_order(decode_order(order + "".join(values[:1]), len(offer.replies)),
                                   len(offer.replies))
            view, status = task_view(offer, order)
            return {"content": status, "view": view}
        review = decode_review(state, offer.labels)
        if action == "flags":
            flags = [i for i, spec in enumerate(offer.labels) if spec.kind == "flag"]
            if not set(values) <= {str(i) for i in flags}:
                raise StaleState(values)
            for index in flags:
                review = review.with_answer(index, YES if str(index) in values else NO)
        elif action == "label" and arg.isdigit() and int(arg) < len(offer.labels) and len(values) == 1:
            review = review.with_answer(int(arg), values[0])
        else:
            raise StaleState(action)
        view, status = task_view(offer, decode_review(review.encode(), offer.labels).encode())
        return {"content": status, "view": view}

    async def on_next(self, interaction: discord.Interaction, asked: str, lang: str) -> None:
        try:
            offer = await answering.run(interaction, self.members.request(member_of(interaction), asked, lang or None))
        except LabellingError as refused:
            await answering.note(interaction, refusal_text(refused))
            return
        await answering.update(interaction, **task_message(offer))

    # ----- the Write modal -------------------------------------------------------------------------

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """Modal submissions arrive here, not at a Modal object, so they are taken after a restart too.
        (Components no template knows are answered by the bot, see cogs/command_errors.py.)"""
        custom_id = str((interaction.data or {}).get("custom_id", ""))
        if interaction.type is not discord.InteractionType.modal_submit or not custom_id.startswith(MODAL_PREFIX):
            return
        text = modal_text(dict(interaction.data or {})) or ""
        match = MODAL_ID.fullmatch(custom_id)
        if match is None:
            await echo_text(interaction, STALE_FORM, text)
            return
        task_id, code = int(match["task"]), match["code"]
        outcome = await submit_text(interaction, self.members, task_id, code, text)
        if outcome is None:
            return
        self.bot.dispatch("task_outcome", outcome)
        await answering.update(interaction, **outcome_message(outcome))


def task_message(offer: TaskOffer) -> dict[str, Any]:
    embeds, file = render.task_embeds(offer)
    view, status = task_view(offer)
    return {"content": status, "embeds": embeds, "view": view, "attachments": [file] if file else []}


def outcome_message(outcome: Outcome) -> dict[str, Any]:
    return {"content": None, "embeds": [render.outcome_embed(outcome)], "view": outcome_view(outcome),
            "attachments": []}


async def setup(bot: Any) -> None:
    await bot.add_cog(TaskCog(bot, MemberTasks(bot.services.labelling)))
