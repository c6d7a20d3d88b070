"""/tutorial: a short, paged walk through every kind of task, shown with the same embeds and components
as real tasks (disabled: nothing here touches the database), each with a good and a bad example."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.labelling.labels import label_names, label_specs
from bot.labelling.tasks import MessageView, TaskOffer
from cogs.command_errors import answers_failures
from cogs.custom_ids import PAGE
from cogs.labelling import render
from cogs.labelling.task_views import task_view
from storage.enums import TaskKind

PROMPT = "How do I keep basil alive on a windowsill? Mine always wilts after a week."
ANSWER = ("Basil wants 6+ hours of sun, so pick your brightest (south-facing) window. Water when the top "
          "centimetre of soil is dry, never let the pot stand in water, and pinch off flower buds so the "
          "plant keeps making leaves. Supermarket basil is often several plants in one pot: splitting them "
          "into 2-3 pots helps a lot.")


@dataclass(frozen=True)
class Page:
    title: str
    text: str
    example: TaskOffer | None = None


def _offer(kind: TaskKind, conversation: tuple[MessageView, ...] = (), replies: tuple[MessageView, ...] = (),
           labels: tuple[str, ...] = ()) -> TaskOffer:
    return TaskOffer(task_id=0, kind=kind, lang="en", expires_at=datetime.now(UTC),
                     target_message_id=None, tree_id=None, conversation=conversation, replies=replies,
                     label_names=labels, review_mode="simple" if labels else None, labels=label_specs(labels))


def _turn(role: str, text: str, depth: int) -> MessageView:
    return MessageView(0, role, text, depth)


PAGES = (
    Page("How labelling works",
         "Together we write conversations between a **User** and an **Assistant**, check them and rank the "
         "replies, to train open assistant models.\n\n"
         "• `/task` gives you one task; pick a kind (prompt, reply as assistant, reply as user, review, "
         "rank) or let the bot choose what is most needed.\n"
         "• Every task has **Skip**: skipping is fine and that task never comes back to you.\n"
         "• You earn points for each task, and more when your texts pass review or your rankings agree "
         "with the others'.\n\nPress **Next** to see each kind of task as it will look."),
    Page("Write a prompt",
         "Start a new conversation with a request a real person could have.\n"
         f"✅ Good: *{PROMPT}*\n❌ Bad: *hi* or *test 123* (nothing to answer), or ten questions at once.\n"
         "Press **Write**, type in the box that opens, and send.",
         _offer(TaskKind.INITIAL_PROMPT)),
    Page("Reply as the assistant",
         "Answer as the best possible assistant: correct, helpful, honest about what it does not know.\n"
         "✅ Good: a clear, practical answer like the one in the next page's review.\n"
         "❌ Bad: *Just google it.*, made-up facts, or an answer to a different question.",
         _offer(TaskKind.ASSISTANT_REPLY, (_turn("prompter", PROMPT, 0),))),
    Page("Reply as the user",
         "Play the person: react to the assistant's answer with a natural follow-up.\n"
         "✅ Good: *My window faces north. Would a grow light work instead?*\n"
         "❌ Bad: *Thanks!* (nothing to answer) or switching to an unrelated topic.",
         _offer(TaskKind.PROMPTER_REPLY, (_turn("prompter", PROMPT, 0), _turn("assistant", ANSWER, 1)))),
    Page("Review a message",
         "Answer the questions in the selects, then **Confirm**. *Is it spam?* is required; tick a flag only "
         "when it clearly applies; scales go from 1 to 5. Some reviews ask more questions over several "
         "pages (**More questions**).\n"
         "✅ Good: this reply is not spam, in the right language, quality 4 or 5.\n"
         "❌ Bad: calling a real but clumsy question spam, or marking a reply bad because you would have "
         "phrased it differently.",
         _offer(TaskKind.LABEL_ASSISTANT_REPLY, (_turn("prompter", PROMPT, 0), _turn("assistant", ANSWER, 1)),
                labels=tuple(label_names("assistant", is_prompt=False, mode="simple")))),
    Page("Rank replies",
         "Pick the best reply in the select, then the best of the rest, and so on; check the order shown "
         "and press **Confirm** (**Reset** starts over). If the replies cannot be compared fairly, press "
         "**Not rankable**.\n"
         "✅ Good: A > B > C here: A is right and practical, B is vague, C is wrong.\n"
         "❌ Bad: ranking by length, or putting a wrong answer first because it sounds confident.",
         _offer(TaskKind.RANK_ASSISTANT_REPLIES, (_turn("prompter", PROMPT, 0),), replies=(
             _turn("assistant", ANSWER, 1),
             _turn("assistant", "Give it light and water and it should be fine.", 1),
             _turn("assistant", "Basil grows best in full shade; water it twice a day.", 1),
         ))),
)


class TutorialButton(discord.ui.DynamicItem[discord.ui.Button], template=rf"tut:(?P<page>{PAGE})"):
    def __init__(self, page: int, label: str, emoji: str) -> None:
        super().__init__(discord.ui.Button(label=label, emoji=emoji, custom_id=f"tut:{page}",
                                           style=discord.ButtonStyle.primary), row=4)
        self.page = page

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button,
                             match: re.Match[str]) -> TutorialButton:
        return cls(int(match["page"]), item.label or "", "")

    @answers_failures
    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.response.edit_message(**tutorial_page(self.page))


def tutorial_page(number: int) -> dict[str, Any]:
    """The message of one page: its text, the example task as members see it, and Back/Next."""
    number = min(max(number, 0), len(PAGES) - 1)
    page = PAGES[number]
    intro = discord.Embed(title=f"Tutorial {number + 1}/{len(PAGES)}: {page.title}", description=page.text,
                          colour=discord.Colour.teal())
    embeds = [intro]
    content = None
    view = discord.ui.View(timeout=None)
    if page.example is not None:
        example = replace(page.example, expires_at=datetime.now(UTC) + timedelta(days=2))
        examples, _ = render.task_embeds(example)
        examples[0].set_footer(text="Example: the buttons below are shown but do nothing here")
        embeds += examples
        view, content = task_view(example, disabled=True)
    if number > 0:
        view.add_item(TutorialButton(number - 1, "Back", "◀️"))
    if number < len(PAGES) - 1:
        view.add_item(TutorialButton(number + 1, f"Next: {PAGES[number + 1].title}", "▶️"))
    return {"content": content, "embeds": embeds, "view": view}


class TutorialCog(commands.Cog, name="Tutorial"):
    def __init__(self, bot: Any) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(TutorialButton)

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(TutorialButton)

    @app_commands.command(name="tutorial", description="A short walk through every kind of labelling task")
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)
    @app_commands.allowed_installs(guilds=True, users=False)
    async def tutorial(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(ephemeral=True, **tutorial_page(0))


async def setup(bot: Any) -> None:
    await bot.add_cog(TutorialCog(bot))
