"""Which labels a review asks for, how each is answered, their validation, and the acceptance score.

Open-Assistant's label set: yes/no questions (``spam`` always, ``fails_task`` for assistant replies),
flags a reviewer ticks when they apply, and 1-5 scales stored as 0, .25, .5, .75, 1. A cog renders a
review from the ``LabelSpec`` list of the task offer, with no table of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from storage.enums import Role

LabelKind = Literal["yes_no", "flag", "likert"]
# The values a 1-5 scale stores, in order.
LIKERT_VALUES = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class LabelSpec:
    """One label of a review: ``question`` for yes/no and flags; for a scale, what 1 and 5 mean."""

    name: str
    kind: LabelKind
    question: str
    low: str = ""
    high: str = ""


SPECS: dict[str, LabelSpec] = {spec.name: spec for spec in (
    LabelSpec("spam", "yes_no", "Is the message spam?"),
    LabelSpec("fails_task", "yes_no", "Is it a bad reply, as an answer to the conversation?"),
    LabelSpec("lang_mismatch", "flag", "Wrong language"),
    LabelSpec("pii", "flag", "Contains personal information (PII)"),
    LabelSpec("not_appropriate", "flag", "Inappropriate for an assistant"),
    LabelSpec("hate_speech", "flag", "Hate speech: abusive or threatening towards a group"),
    LabelSpec("sexual_content", "flag", "Sexual content"),
    LabelSpec("quality", "likert", "Quality", "low quality", "high quality"),
    LabelSpec("toxicity", "likert", "Toxicity", "polite", "rude"),
    LabelSpec("humor", "likert", "Humor", "serious", "funny"),
    LabelSpec("creativity", "likert", "Creativity", "ordinary", "creative"),
    LabelSpec("violence", "likert", "Violence", "harmless", "violent"),
    LabelSpec("helpfulness", "likert", "Helpfulness", "unhelpful", "helpful"),
)}

YES_NO = ("spam",)
ASSISTANT_YES_NO = ("fails_task",)
FLAGS = ("lang_mismatch", "pii", "not_appropriate", "hate_speech", "sexual_content")
LIKERT = ("quality", "toxicity", "humor", "creativity", "violence")
ASSISTANT_LIKERT = ("helpfulness",)
# Labels that count against the author on the trollboard when a reviewer sets them.
BAD_LABELS = ("lang_mismatch", "not_appropriate", "pii", "hate_speech", "sexual_content", "political_content")
MANDATORY = "spam"


def label_names(role: str, *, is_prompt: bool, mode: str) -> list[str]:
    """The labels one review asks for: 11 for prompter messages, 13 for assistant replies in full
    mode; spam and lang_mismatch (plus quality for replies) in simple mode."""
    assistant = role == Role.ASSISTANT
    if mode == "simple":
        return ["spam", "lang_mismatch"] + ([] if is_prompt else ["quality"])
    names = list(YES_NO) + list(FLAGS) + list(LIKERT)
    if assistant:
        names[1:1] = ASSISTANT_YES_NO
        names += ASSISTANT_LIKERT
    return names


def label_specs(names: Iterable[str]) -> tuple[LabelSpec, ...]:
    return tuple(SPECS[name] for name in names if name in SPECS)


def invalid_label_problem(values: Mapping[str, float], allowed: Iterable[str]) -> str | None:
    """Why these label values cannot be recorded, or None when they are fine."""
    allowed = set(allowed)
    if MANDATORY not in values:
        return "The spam label is required."
    unknown = sorted(set(values) - allowed)
    if unknown:
        return f"Labels not asked for in this task: {', '.join(unknown)}."
    for name, value in values.items():
        if not isinstance(value, int | float) or not 0 <= float(value) <= 1:
            return f"Label {name} must be a number between 0 and 1."
    return None


def acceptance_score(spam_values: list[float], lang_mismatch_values: list[float], reviews: int) -> float:
    """1 − (mean spam + mean lang_mismatch), each mean over all ``reviews`` of the message: a review
    that left a label out counts as 0 for it (Open-Assistant's rule)."""
    if reviews <= 0:
        return 1.0
    return 1.0 - (sum(spam_values) + sum(lang_mismatch_values)) / reviews
