"""Which labels a review asks for, their validation, and the acceptance score of the reference."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from storage.enums import Role

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


def acceptance_score(spam_values: list[float], lang_mismatch_values: list[float]) -> float:
    """1 − (mean spam + mean lang_mismatch); a label no reviewer gave counts as 0."""
    mean_spam = sum(spam_values) / len(spam_values) if spam_values else 0.0
    mean_lang = sum(lang_mismatch_values) / len(lang_mismatch_values) if lang_mismatch_values else 0.0
    return 1.0 - (mean_spam + mean_lang)
