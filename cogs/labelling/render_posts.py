"""How a task post looks in a channel: part 1's conversation embeds (folded to Discord's limits, with
the full text attached when shortened) under a header that says what to do here and, once the work
is done, its result."""

from __future__ import annotations

from datetime import UTC, datetime

import discord

from bot.labelling.post_reactions import KEYCAPS
from bot.labelling.posts import FINAL, PostContent, PostText
from bot.labelling.tasks import MessageView, TaskOffer
from cogs.labelling import render
from storage.enums import Role, TaskKind

REMOVED = "*(removed by moderation)*"
VOTE_HINT = "React 👍 or 👎 to vote on the last message, 🚩 if it breaks the rules."
GUIDANCE = {
    "prompt": "Press **Write a prompt**: reviewers check it, then others answer it.",
    "reply": "Press **Reply** to write yours. " + VOTE_HINT,
    "review": ("React 👍 if it is a real message in the right language, 👎 if it is spam, 🚩 if it breaks "
               "the rules. **Full review** asks every question."),
    "rank": ("Rank by reacting with the numbers, **best first**, until you have reacted to every number; "
             "removing one before that starts over. Or press **Rank privately**."),
}
# The seeded reactions, besides the numbers of a ranking.
SEEDS = {"reply": ("👍", "👎", "🚩"), "review": ("👍", "👎", "🚩")}


def task_kind(content: PostContent) -> TaskKind:
    """The engine's kind of task the post offers (for titles and guidance)."""
    last = content.conversation[-1] if content.conversation else None
    if content.kind == "prompt" or last is None:
        return TaskKind.INITIAL_PROMPT
    if content.kind == "reply":
        return TaskKind.ASSISTANT_REPLY if last.role == Role.PROMPTER else TaskKind.PROMPTER_REPLY
    if content.kind == "review":
        if len(content.conversation) == 1:
            return TaskKind.LABEL_INITIAL_PROMPT
        return TaskKind.LABEL_ASSISTANT_REPLY if last.role == Role.ASSISTANT else TaskKind.LABEL_PROMPTER_REPLY
    return TaskKind.RANK_ASSISTANT_REPLIES if last.role == Role.PROMPTER else TaskKind.RANK_PROMPTER_REPLIES


def order_text(positions: tuple[int, ...]) -> str:
    return " > ".join(KEYCAPS[p] for p in positions)


def result_text(content: PostContent) -> str | None:
    outcome, progress, needed = content.outcome, content.progress, content.needed
    texts = {
        "accepted": f"✅ Accepted after {progress} reviews: it joins the conversation.",
        "rejected": "❌ Not accepted by the reviewers: it is left out.",
        "full": f"✅ Done: {progress} repl{'y' if progress == 1 else 'ies'} written; reviewers check them next.",
        "ranked": f"🏁 {progress} of {needed} rankings are in; the consensus shows here once the conversation is scored.",
        "consensus": f"🏆 Consensus, best first: {order_text(content.consensus)}",
        "removed": "🚩 Removed by moderation (red flags or a moderator); the text is hidden.",
        "stopped": "⏹️ This conversation was stopped, so this post is closed.",
        "superseded": "This call moved to a newer post further down.",
        "expired": "⌛ Expired: this work is offered again in later posts.",
    }
    return texts.get(outcome or "")


def progress_text(content: PostContent) -> str | None:
    if content.kind == "review" and content.progress is not None:
        return f"Reviews so far: {content.progress} of {content.needed}."
    if content.kind == "rank" and content.progress is not None:
        return f"Rankings so far: {content.progress} of {content.needed}."
    return None


def is_closed(content: PostContent) -> bool:
    return content.outcome in FINAL or content.outcome == "ranked"


def header(content: PostContent, *, folded: bool) -> discord.Embed:
    kind = render.KINDS[task_kind(content)]
    closed = is_closed(content)
    lines = [line for line in (result_text(content), progress_text(content) if not closed else None) if line]
    if not closed:
        lines.append(GUIDANCE[content.kind])
    lines.append(f"Language: **{content.lang}**")
    if folded:
        lines.append("Long texts are shortened here; the attached file holds them in full.")
    colour = discord.Colour.dark_grey() if closed else discord.Colour.gold()
    return discord.Embed(title=("Closed · " if closed else "") + kind.title, description="\n".join(lines),
                         colour=colour)


def _shown(text: PostText) -> MessageView:
    return MessageView(text.message_id, text.role, REMOVED if text.removed else text.text, 0)


def post_embeds(content: PostContent) -> tuple[list[discord.Embed], discord.File | None]:
    """The post's embeds within Discord's limits, and the full text as a file when it was shortened."""
    offer = TaskOffer(
        task_id=0, kind=task_kind(content), lang=content.lang, expires_at=datetime.now(UTC),
        target_message_id=content.target_message_id, tree_id=content.tree_id,
        conversation=tuple(_shown(t) for t in content.conversation),
        replies=tuple(_shown(t) for t in content.candidates),
    )
    embeds, file = render.task_embeds(offer)
    embeds[0] = header(content, folded=file is not None)
    for number, embed in enumerate(embeds[len(embeds) - len(content.candidates):] if content.candidates else []):
        role = render.ROLE_NAMES.get(content.candidates[number].role, "")
        embed.title = f"{KEYCAPS[number]} {role}"
    if file is not None:
        file.filename = "conversation.txt"
    return embeds, file


def seeds(content: PostContent) -> tuple[str, ...]:
    if content.kind == "rank":
        return KEYCAPS[:len(content.candidates)]
    return SEEDS.get(content.kind, ())
