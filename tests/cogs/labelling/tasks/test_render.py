"""Task messages fit Discord's embed limits whatever the conversation, and say when they shorten."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import example, given, settings
from hypothesis import strategies as st

from bot.labelling.tasks import MessageView, TaskOffer
from cogs.labelling.render import echo, echoed_text, fold, task_embeds
from storage.enums import TaskKind

texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=4000)


def _offer(kind: TaskKind, turns: list[str], replies: list[str]) -> TaskOffer:
    conversation = tuple(MessageView(i, "prompter" if i % 2 == 0 else "assistant", t, i) for i, t in enumerate(turns))
    return TaskOffer(1, kind, "en", datetime(2026, 1, 1, tzinfo=UTC), 1, 1, conversation,
                     tuple(MessageView(100 + i, "assistant", t, len(turns)) for i, t in enumerate(replies)))


@settings(max_examples=60, deadline=None)
@given(turns=st.lists(texts, min_size=1, max_size=14), replies=st.lists(texts, max_size=5))
@example(turns=[c * 1100 for c in "abcd"] + ["r" * 10] * 8, replies=[])  # the oldest turns share an embed that must be shortened
def test_any_conversation_fits_discords_limits(turns, replies):
    kind = TaskKind.RANK_ASSISTANT_REPLIES if replies else TaskKind.ASSISTANT_REPLY
    embeds, file = task_embeds(_offer(kind, turns, replies))
    assert len(embeds) <= 10
    assert all(len(e.description or "") <= 4096 for e in embeds)
    assert sum(len(e) for e in embeds) <= 6000
    if file is None:  # nothing shortened: every text is shown whole
        shown = "".join(e.description or "" for e in embeds)
        assert all(t in shown for t in turns + replies)


def test_fold_keeps_both_ends_and_says_how_much_is_left_out():
    text = "start " + "x" * 5000 + " end"
    folded = fold(text, 1000)
    assert len(folded) <= 1000 and folded.startswith("start ") and folded.endswith(" end")
    assert "characters shortened" in folded
    assert fold("short", 1000) == "short"


def test_a_refused_text_is_given_back_whole():
    embed, file = echo("The text is empty.", "line one\nline two", retry=True)
    assert file is None and "```\nline one\nline two\n```" in embed.description

    class Message:
        embeds = [embed]

    assert echoed_text(Message()) == "line one\nline two"
    embed, file = echo("Too long.", "with ``` fences", retry=False)
    assert file is not None and file.filename == "your-text.txt"
