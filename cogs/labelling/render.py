"""How a task, its conversation and the result of a submission look in Discord (embeds and files).

Discord caps an embed description at 4096 characters, all embeds of a message at 6000 together and a
message at 10 embeds. Texts that do not fit are shortened in the middle, fairly (short ones whole, the
long ones cut to one shared length), and the whole conversation is attached as a text file then.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import discord

from bot.labelling.member_tasks import Outcome
from bot.labelling.tasks import TaskOffer
from storage.enums import TaskKind, TreeState

EMBED_DESCRIPTION = 4096
MESSAGE_EMBED_TEXT = 6000
MESSAGE_EMBEDS = 10
# Room kept for the folding note, the embed titles and rounding.
SAFETY = 120

ROLE_NAMES = {"prompter": "User", "assistant": "Assistant"}
ROLE_COLOURS = {"prompter": discord.Colour.blurple(), "assistant": discord.Colour.green()}


@dataclass(frozen=True)
class KindText:
    title: str
    guidance: str


KINDS: dict[TaskKind, KindText] = {
    TaskKind.INITIAL_PROMPT: KindText(
        "Write a prompt",
        "Write the first message of a new conversation: a question or request a person could ask an "
        "assistant. Be specific and natural; one clear task is better than several vague ones.",
    ),
    TaskKind.ASSISTANT_REPLY: KindText(
        "Reply as the assistant",
        "Answer the last **User** message the way an ideal assistant would: correct, helpful, polite and "
        "to the point. Say so when you are not sure; never invent facts.",
    ),
    TaskKind.PROMPTER_REPLY: KindText(
        "Reply as the user",
        "Continue the conversation as the person talking to the assistant: a follow-up question, a "
        "correction or a new request that fits what was said.",
    ),
    TaskKind.LABEL_INITIAL_PROMPT: KindText(
        "Review a prompt",
        "Read the prompt and answer the questions below. Spam means it is not a real request "
        "(nonsense, advertising, a test). Tick a flag only when it clearly applies.",
    ),
    TaskKind.LABEL_PROMPTER_REPLY: KindText(
        "Review a user reply",
        "Read the conversation and judge the last **User** message: does it continue the conversation "
        "sensibly? Answer the questions below; spam is required.",
    ),
    TaskKind.LABEL_ASSISTANT_REPLY: KindText(
        "Review an assistant reply",
        "Read the conversation and judge the last **Assistant** message: is it correct, helpful and "
        "appropriate? Answer the questions below; spam is required.",
    ),
    TaskKind.RANK_ASSISTANT_REPLIES: KindText(
        "Rank the assistant replies",
        "Put the replies in order from best to worst: pick the best, then the next best, and so on. "
        "Prefer correct, helpful and honest answers. If none can be compared fairly, press Not rankable.",
    ),
    TaskKind.RANK_PROMPTER_REPLIES: KindText(
        "Rank the user replies",
        "Put the user replies in order from best to worst: the most natural, meaningful follow-up first.",
    ),
}


def letter(index: int) -> str:
    return chr(ord("A") + index)


def fold(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters: its beginning and end, with what was left out named."""
    if len(text) <= limit:
        return text
    note = f"\n\n… [{len(text) - limit:,}+ characters shortened, see the attached file] …\n\n"
    room = max(limit - len(note), 0)
    head = room * 2 // 3
    return text[:head] + note + text[len(text) - (room - head):] if room else text[:limit]


def _cap(lengths: list[int], budget: int) -> int | None:
    """The largest length every text may keep so that all fit in ``budget`` (None: no cut needed)."""
    if sum(lengths) <= budget:
        return None
    remaining, count = budget, len(lengths)
    for length in sorted(lengths):
        share = remaining // count
        if length > share:
            return share
        remaining -= length
        count -= 1
    return None


@dataclass(frozen=True)
class Block:
    title: str
    text: str
    role: str


def _blocks(offer: TaskOffer) -> list[Block]:
    blocks = []
    last = len(offer.conversation) - 1
    for index, turn in enumerate(offer.conversation):
        title = ROLE_NAMES.get(turn.role, turn.role)
        if index == last and offer.kind in (TaskKind.LABEL_INITIAL_PROMPT, TaskKind.LABEL_PROMPTER_REPLY,
                                            TaskKind.LABEL_ASSISTANT_REPLY):
            title += " · the message to review"
        elif index == last and offer.kind in (TaskKind.ASSISTANT_REPLY, TaskKind.PROMPTER_REPLY):
            title += " · reply to this"
        blocks.append(Block(title, turn.text, turn.role))
    for index, reply in enumerate(offer.replies):
        blocks.append(Block(f"Reply {letter(index)} ({ROLE_NAMES.get(reply.role, reply.role)})", reply.text,
                            reply.role))
    return blocks


def full_text(offer: TaskOffer) -> str:
    return "\n\n".join(f"--- {block.title} ---\n{block.text}" for block in _blocks(offer)) + "\n"


def header_embed(offer: TaskOffer, *, folded: bool = False) -> discord.Embed:
    kind = KINDS[offer.kind]
    description = kind.guidance
    if offer.review_mode:
        description += f"\n*{'Full' if offer.review_mode == 'full' else 'Quick'} review: {len(offer.labels)} questions.*"
    description += f"\n\nLanguage: **{offer.lang}** · expires {discord.utils.format_dt(offer.expires_at, 'R')}"
    if folded:
        description += "\nLong texts are shortened here; the attached file holds them in full."
    embed = discord.Embed(title=kind.title, description=description, colour=discord.Colour.gold())
    embed.set_footer(text=f"Task {offer.task_id}")
    return embed


def task_embeds(offer: TaskOffer) -> tuple[list[discord.Embed], discord.File | None]:
    """The task's header and its conversation (and candidates), within Discord's limits; a file with
    every text in full when some had to be shortened."""
    blocks = _blocks(offer)
    header = header_embed(offer, folded=True)
    slots = MESSAGE_EMBEDS - 1
    # Past 9 texts, the oldest turns share one embed.
    merged = max(len(blocks) - slots + 1, 0) if len(blocks) > slots else 0
    titles = sum(len(b.title) for b in blocks[merged:]) + (len("Earlier conversation") if merged else 0)
    budget = MESSAGE_EMBED_TEXT - len(header) - titles - SAFETY * (1 + bool(merged))
    cap = _cap([len(b.text) + (len(b.title) + 8 if i < merged else 0) for i, b in enumerate(blocks)], budget)
    limit = min(cap if cap is not None else EMBED_DESCRIPTION, EMBED_DESCRIPTION - SAFETY)
    earlier = "\n\n".join(f"**{b.title}**\n{fold(b.text, limit)}" for b in blocks[:merged])
    folded = any(len(b.text) > limit for b in blocks) or len(earlier) > EMBED_DESCRIPTION
    embeds = [header if folded else header_embed(offer)]
    if merged:
        embeds.append(discord.Embed(title="Earlier conversation", description=fold(earlier, EMBED_DESCRIPTION)))
    for block in blocks[merged:]:
        embeds.append(discord.Embed(title=block.title, description=fold(block.text, limit) or "\u200b",
                                    colour=ROLE_COLOURS.get(block.role)))
    file = discord.File(io.BytesIO(full_text(offer).encode()), filename=f"task-{offer.task_id}.txt") if folded else None
    return embeds, file


def preview(text: str, limit: int = 90) -> str:
    """One line of a text, for a select option."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _points(points: float) -> str:
    return f"{points:g} point{'s' if points != 1 else ''}"


def next_step(outcome: Outcome) -> str:
    kind = outcome.kind
    if outcome.skipped:
        return "Skipped: you will not get this one again. Thank you for saying so."
    if kind == TaskKind.INITIAL_PROMPT:
        return (f"{outcome.needed} reviewers will check your prompt; once accepted, others will answer it. "
                "You earn more points when it passes.")
    if kind in (TaskKind.ASSISTANT_REPLY, TaskKind.PROMPTER_REPLY):
        return (f"{outcome.needed} reviewers will check your reply; accepted replies are then ranked against "
                "the other replies to the same message.")
    if outcome.tree_state == TreeState.READY_FOR_EXPORT:
        return "That completed the conversation: the consensus is reached and it is ready for export. 🎉"
    if kind in (TaskKind.RANK_ASSISTANT_REPLIES, TaskKind.RANK_PROMPTER_REPLIES):
        return f"{outcome.progress} of {outcome.needed} rankings of these replies are in."
    if outcome.accepted is True:
        return "Your review completed the check: the message was accepted and the conversation goes on."
    if outcome.accepted is False:
        return "Your review completed the check: the message did not pass and is left out."
    return f"{outcome.progress} of {outcome.needed} reviews of this message are in."


def outcome_embed(outcome: Outcome) -> discord.Embed:
    if outcome.skipped:
        return discord.Embed(title="Task skipped", description=next_step(outcome), colour=discord.Colour.greyple())
    description = f"You earned **{_points(outcome.points)}**.\n{next_step(outcome)}"
    return discord.Embed(title="Thank you, recorded!", description=description, colour=discord.Colour.green())


ECHO_TITLE = "Your text (not recorded)"


def echo(reason: str, text: str, *, retry: bool) -> tuple[discord.Embed, discord.File | None]:
    """A refused text given back, so nothing the member wrote is lost: in a code block when it fits,
    else as a file."""
    hint = "Press **Write again** to fix it; the box opens with your text." if retry else (
        "Copy it if you want to keep it; use /task for a new task.")
    intro = f"{reason}\n{hint}"
    fenced = f"```\n{text}\n```"
    if "```" not in text and len(intro) + len(fenced) + 2 <= EMBED_DESCRIPTION:
        return discord.Embed(title=ECHO_TITLE, description=f"{intro}\n{fenced}", colour=discord.Colour.orange()), None
    embed = discord.Embed(title=ECHO_TITLE, description=f"{intro}\nYour text is in the attached file.",
                          colour=discord.Colour.orange())
    return embed, discord.File(io.BytesIO(text.encode()), filename="your-text.txt")


def echoed_text(message: discord.Message | None) -> str | None:
    """The text an ``echo`` embed holds, to fill the box again (None when it went to a file)."""
    for embed in message.embeds if message else []:
        if embed.title == ECHO_TITLE and embed.description and embed.description.endswith("\n```"):
            start = embed.description.find("```\n")
            if start >= 0:
                return embed.description[start + 4: -4]
    return None

