"""The components of a task message. Every one is a DynamicItem whose custom_id carries the task id and
the member's picks so far (review answers, ranking order), so a message keeps working after a restart
and nothing is held in memory: each click re-reads the task from the database through the cog.

custom_ids: ``lt:b:<action>:<task>:<state>`` (buttons), ``lt:s:<action>:<task>:<state>:<arg>`` (selects),
``lt:next:<asked>:<lang>`` (Next task), modal ``lt:m:<task>:<kind letter>`` with one text input ``lt:text``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import discord

from bot.labelling.labels import LIKERT_VALUES, LabelSpec
from bot.labelling.member_tasks import Outcome
from bot.labelling.tasks import TaskOffer
from cogs.command_errors import answers_failures
from cogs.custom_ids import ROW_ID
from cogs.labelling.render import letter, preview
from storage.enums import TaskKind

COG = "Tasks"
STATE = r"[0-9A-Za-z.-]*"
MODAL_PREFIX = "lt:m:"
MODAL_ID = re.compile(rf"{MODAL_PREFIX}(?P<task>{ROW_ID}):(?P<code>[a-z]?)")
TEXT_INPUT_ID = "lt:text"
ROWS_PER_PAGE = 4  # the fifth row holds the buttons
SKIP_REASONS = {
    "not_my_topic": "Not my topic",
    "dont_know": "I don't know enough about it",
    "inappropriate": "Inappropriate or harmful",
    "unclear": "Unclear or broken",
}
# Write tasks: a letter in the Write button's state names the kind, so the modal opens without a lookup.
WRITE_CODES = {TaskKind.INITIAL_PROMPT: "p", TaskKind.ASSISTANT_REPLY: "a", TaskKind.PROMPTER_REPLY: "u"}
MODAL_TITLES = {"p": "Write a prompt", "a": "Reply as the assistant", "u": "Reply as the user"}


def _cog(interaction: discord.Interaction) -> Any:
    return interaction.client.get_cog(COG)  # type: ignore[union-attr]


class TaskButton(discord.ui.DynamicItem[discord.ui.Button],
                 template=rf"lt:b:(?P<action>[a-z]+):(?P<task>{ROW_ID}):(?P<state>{STATE})"):
    def __init__(self, action: str, task_id: int, state: str = "", *, label: str,
                 style: discord.ButtonStyle = discord.ButtonStyle.secondary, disabled: bool = False,
                 emoji: str | None = None) -> None:
        super().__init__(discord.ui.Button(label=label, style=style, disabled=disabled, emoji=emoji,
                                           custom_id=f"lt:b:{action}:{task_id}:{state}"))
        self.action, self.task_id, self.state = action, task_id, state

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button,
                             match: re.Match[str]) -> TaskButton:
        return cls(match["action"], int(match["task"]), match["state"], label=item.label or "")

    @answers_failures
    async def callback(self, interaction: discord.Interaction) -> None:
        await _cog(interaction).on_button(interaction, self.action, self.task_id, self.state)


class TaskSelect(discord.ui.DynamicItem[discord.ui.Select],
                 template=rf"lt:s:(?P<action>[a-z]+):(?P<task>{ROW_ID}):(?P<state>{STATE}):(?P<arg>[0-9a-z]*)"):
    def __init__(self, action: str, task_id: int, state: str, arg: str = "", *,
                 options: Sequence[discord.SelectOption] = (), placeholder: str | None = None,
                 min_values: int = 1, max_values: int = 1, disabled: bool = False) -> None:
        super().__init__(discord.ui.Select(
            custom_id=f"lt:s:{action}:{task_id}:{state}:{arg}", options=list(options),
            placeholder=placeholder, min_values=min_values, max_values=max_values, disabled=disabled,
        ))
        self.action, self.task_id, self.state, self.arg = action, task_id, state, arg

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Select,
                             match: re.Match[str]) -> TaskSelect:
        return cls(match["action"], int(match["task"]), match["state"], match["arg"])

    @answers_failures
    async def callback(self, interaction: discord.Interaction) -> None:
        values = [str(v) for v in (interaction.data or {}).get("values", [])]
        await _cog(interaction).on_select(interaction, self.action, self.task_id, self.state, self.arg, values)


class NextTaskButton(discord.ui.DynamicItem[discord.ui.Button],
                     template=r"lt:next:(?P<asked>[a-z_]+):(?P<lang>[A-Za-z-]{0,16})"):
    def __init__(self, asked: str, lang: str) -> None:
        super().__init__(discord.ui.Button(label="Next task", style=discord.ButtonStyle.primary, emoji="➡️",
                                           custom_id=f"lt:next:{asked}:{lang}"))
        self.asked, self.lang = asked, lang

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button,
                             match: re.Match[str]) -> NextTaskButton:
        return cls(match["asked"], match["lang"])

    @answers_failures
    async def callback(self, interaction: discord.Interaction) -> None:
        await _cog(interaction).on_next(interaction, self.asked, self.lang)


DYNAMIC_ITEMS = (TaskButton, TaskSelect, NextTaskButton)


class StaleState(ValueError):
    """A custom_id whose state does not fit the task (forged, or from an older version)."""


# ----- review answers: one character per label of the offer ---------------------------------------
# "-" not answered, else an index into LIKERT_VALUES (0, .25, .5, .75, 1): a 1-5 scale uses "0".."4",
# yes/no and flags "0" (no) and "4" (yes), so the answers map to values without knowing the labels.


YES, NO = "4", "0"


@dataclass(frozen=True)
class ReviewState:
    page: int
    answers: str

    def encode(self) -> str:
        return f"{self.page}.{self.answers}"

    def with_answer(self, index: int, value: str) -> ReviewState:
        return ReviewState(self.page, self.answers[:index] + value + self.answers[index + 1:])


def new_review(labels: Sequence[LabelSpec]) -> ReviewState:
    # Flags are ticked when they apply: unticked means "no", not "unanswered".
    return ReviewState(0, "".join(NO if spec.kind == "flag" else "-" for spec in labels))


def review_pages(labels: Sequence[LabelSpec]) -> list[list[list[int]]]:
    """Pages of rows; a row asks one label, or every flag at once."""
    rows: list[list[int]] = []
    flags = [i for i, spec in enumerate(labels) if spec.kind == "flag"]
    for index, spec in enumerate(labels):
        if spec.kind != "flag":
            rows.append([index])
        elif index == flags[0]:
            rows.append(flags)
    return [rows[i:i + ROWS_PER_PAGE] for i in range(0, len(rows), ROWS_PER_PAGE)] or [[]]


def parse_review(state: str) -> ReviewState:
    match = re.fullmatch(r"(\d{1,2})\.([-0-4]*)", state)
    if match is None:
        raise StaleState(state)
    return ReviewState(int(match[1]), match[2])


def decode_review(state: str, labels: Sequence[LabelSpec]) -> ReviewState:
    review = parse_review(state)
    if len(review.answers) != len(labels) or review.page >= len(review_pages(labels)):
        raise StaleState(state)
    for spec, answer in zip(labels, review.answers, strict=True):
        if spec.kind != "likert" and answer not in "-04":
            raise StaleState(state)
    return review


def review_answers(state: ReviewState) -> list[float | None]:
    """One value per label of the offer, as the review service takes them."""
    return [None if answer == "-" else LIKERT_VALUES[int(answer)] for answer in state.answers]


def review_summary(state: ReviewState, labels: Sequence[LabelSpec]) -> str:
    parts = []
    for spec, answer in zip(labels, state.answers, strict=True):
        if answer == "-" or (spec.kind == "flag" and answer == NO):
            continue
        name = spec.question if spec.kind != "yes_no" else spec.name.replace("_", " ")
        parts.append(f"{name}: {int(answer) + 1}/5" if spec.kind == "likert" else
                     name if spec.kind == "flag" else f"{name}: {'yes' if answer == YES else 'no'}")
    return "**Your answers:** " + ("; ".join(parts) if parts else "none yet")


def _label_select(task_id: int, state: ReviewState, labels: Sequence[LabelSpec], row: list[int],
                  disabled: bool) -> TaskSelect:
    spec = labels[row[0]]
    encoded = state.encode()
    if spec.kind == "flag":
        options = [discord.SelectOption(label=labels[i].question[:100], value=str(i),
                                        default=state.answers[i] == YES) for i in row]
        return TaskSelect("flags", task_id, encoded, "", options=options, min_values=0, max_values=len(row),
                          placeholder="Tick what applies (leave empty when none does)", disabled=disabled)
    answer = state.answers[row[0]]
    if spec.kind == "yes_no":
        options = [discord.SelectOption(label="Yes", value=YES, default=answer == YES),
                   discord.SelectOption(label="No", value=NO, default=answer == NO)]
        placeholder = spec.question
    else:
        words = {0: f" · {spec.low}", 4: f" · {spec.high}"}
        options = [discord.SelectOption(label=f"{n + 1}{words.get(n, '')}", value=str(n), default=answer == str(n))
                   for n in range(len(LIKERT_VALUES))]
        placeholder = f"{spec.question}: 1 = {spec.low} … 5 = {spec.high}"
    return TaskSelect("label", task_id, encoded, str(row[0]), options=options, placeholder=placeholder[:150],
                      disabled=disabled)


def review_view(offer: TaskOffer, state: ReviewState, *, disabled: bool = False) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    pages = review_pages(offer.labels)
    for row_number, row in enumerate(pages[state.page]):
        item = _label_select(offer.task_id, state, offer.labels, row, disabled)
        item.row = row_number
        view.add_item(item)
    buttons = []
    if state.page > 0:
        buttons.append(TaskButton("page", offer.task_id, ReviewState(state.page - 1, state.answers).encode(),
                                  label="Back", emoji="◀️", disabled=disabled))
    if state.page < len(pages) - 1:
        buttons.append(TaskButton("page", offer.task_id, ReviewState(state.page + 1, state.answers).encode(),
                                  label=f"More questions ({state.page + 2}/{len(pages)})", emoji="▶️",
                                  disabled=disabled))
    buttons.append(TaskButton("confirm", offer.task_id, state.encode(), label="Confirm",
                              style=discord.ButtonStyle.success, disabled=disabled))
    buttons.append(skip_button(offer.task_id, state.encode(), disabled))
    for button in buttons:
        button.row = min(len(pages[state.page]), 4)
        view.add_item(button)
    return view


# ----- ranking: the letters picked so far, best first ------------------------------------------------


def decode_order(state: str, count: int) -> str:
    allowed = {letter(i) for i in range(count)}
    if len(set(state)) != len(state) or not set(state) <= allowed:
        raise StaleState(state)
    return state


def complete_order(order: str, count: int) -> str:
    """With one reply left, its place is decided."""
    left = [letter(i) for i in range(count) if letter(i) not in order]
    return order + left[0] if len(left) == 1 else order


def order_summary(order: str) -> str:
    if not order:
        return "**Your order:** nothing picked yet; start with the best reply."
    return "**Your order:** " + " > ".join(f"{n + 1}. Reply {c}" for n, c in enumerate(order))


def rank_view(offer: TaskOffer, order: str, *, disabled: bool = False) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    count = len(offer.replies)
    left = [i for i in range(count) if letter(i) not in order]
    if left:
        options = [discord.SelectOption(label=f"Reply {letter(i)}", value=letter(i),
                                        description=preview(offer.replies[i].text)) for i in left]
        placeholder = "Pick the best reply" if not order else f"Pick the best of the rest (place {len(order) + 1})"
        view.add_item(TaskSelect("rank", offer.task_id, order, "", options=options, placeholder=placeholder,
                                 disabled=disabled))
    view.add_item(TaskButton("rankok", offer.task_id, order, label="Confirm", style=discord.ButtonStyle.success,
                             disabled=disabled or bool(left)))
    view.add_item(TaskButton("reset", offer.task_id, "", label="Reset", disabled=disabled or not order))
    view.add_item(TaskButton("notrank", offer.task_id, "", label="Not rankable", disabled=disabled))
    view.add_item(skip_button(offer.task_id, order, disabled))
    return view


# ----- writing, skipping, after a submission -------------------------------------------------------


def skip_button(task_id: int, back_state: str, disabled: bool = False) -> TaskButton:
    return TaskButton("skip", task_id, back_state, label="Skip", disabled=disabled)


def write_view(offer: TaskOffer, *, disabled: bool = False) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(TaskButton("write", offer.task_id, WRITE_CODES[offer.kind], label="Write",
                             style=discord.ButtonStyle.primary, emoji="✍️", disabled=disabled))
    view.add_item(skip_button(offer.task_id, "", disabled))
    return view


def again_view(task_id: int, code: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(TaskButton("again", task_id, code, label="Write again", style=discord.ButtonStyle.primary,
                             emoji="✍️"))
    view.add_item(skip_button(task_id, ""))
    return view


def skip_view(task_id: int, back_state: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    options = [discord.SelectOption(label=label, value=value) for value, label in SKIP_REASONS.items()]
    view.add_item(TaskSelect("skipwhy", task_id, "", "", options=options, placeholder="Why skip? (optional)"))
    view.add_item(TaskButton("skipnow", task_id, "", label="Skip without a reason"))
    view.add_item(TaskButton("back", task_id, back_state, label="Back to the task", emoji="◀️"))
    return view


def outcome_view(outcome: Outcome) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(NextTaskButton(outcome.asked, outcome.lang))
    return view


def task_view(offer: TaskOffer, state: str = "", *, disabled: bool = False) -> tuple[discord.ui.View, str | None]:
    """The components of a task and the status line above them; ``state`` as the custom_ids carry it."""
    if offer.kind in WRITE_CODES:
        return write_view(offer, disabled=disabled), None
    if offer.labels:
        review = decode_review(state, offer.labels) if state else new_review(offer.labels)
        return review_view(offer, review, disabled=disabled), review_summary(review, offer.labels)
    order = decode_order(state, len(offer.replies))
    return rank_view(offer, order, disabled=disabled), order_summary(order)


def text_modal(task_id: int, code: str, max_length: int, text: str | None = None) -> discord.ui.Modal:
    """Its submission is handled by the cog's interaction listener, which works after a restart too, so the
    modal object itself does nothing when submitted."""
    modal = discord.ui.Modal(title=MODAL_TITLES.get(code, "Your text"), custom_id=f"lt:m:{task_id}:{code}")
    modal.add_item(discord.ui.TextInput(
        label="Your text", custom_id=TEXT_INPUT_ID, style=discord.TextStyle.paragraph, min_length=1,
        max_length=max_length, default=(text or "")[:max_length] or None,
        placeholder="Write in the task's language; Markdown is fine.",
    ))
    return modal


def modal_text(data: dict[str, Any]) -> str | None:
    """The text input's value in a modal submission (action rows or labels)."""
    stack = list(data.get("components", []))
    while stack:
        component = stack.pop()
        if component.get("custom_id") == TEXT_INPUT_ID:
            return str(component.get("value", ""))
        stack.extend(component.get("components", []))
        if "component" in component:
            stack.append(component["component"])
    return None
