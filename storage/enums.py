"""Domain vocabularies, stored as plain strings so SQLite and PostgreSQL share one schema."""

from enum import StrEnum


class TreeState(StrEnum):
    INITIAL_PROMPT_REVIEW = "initial_prompt_review"
    PROMPT_LOTTERY_WAITING = "prompt_lottery_waiting"
    GROWING = "growing"
    RANKING = "ranking"
    READY_FOR_SCORING = "ready_for_scoring"
    READY_FOR_EXPORT = "ready_for_export"
    SCORING_FAILED = "scoring_failed"
    BACKLOG_RANKING = "backlog_ranking"
    ABORTED_LOW_GRADE = "aborted_low_grade"
    HALTED_BY_MODERATOR = "halted_by_moderator"


class Role(StrEnum):
    PROMPTER = "prompter"
    ASSISTANT = "assistant"


class TaskKind(StrEnum):
    INITIAL_PROMPT = "initial_prompt"
    PROMPTER_REPLY = "prompter_reply"
    ASSISTANT_REPLY = "assistant_reply"
    RANK_ASSISTANT_REPLIES = "rank_assistant_replies"
    RANK_PROMPTER_REPLIES = "rank_prompter_replies"
    LABEL_INITIAL_PROMPT = "label_initial_prompt"
    LABEL_PROMPTER_REPLY = "label_prompter_reply"
    LABEL_ASSISTANT_REPLY = "label_assistant_reply"


class TaskState(StrEnum):
    OFFERED = "offered"
    DONE = "done"
    SKIPPED = "skipped"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class ChatRole(StrEnum):
    USER = "user"
    ASSISTANT = "assistant"


class ChatMessageState(StrEnum):
    GENERATING = "generating"
    COMPLETE = "complete"
    CANCELLED = "cancelled"
    FAILED = "failed"
