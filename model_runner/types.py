"""Result types shared by all backends."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

# {"role": "system" | "user" | "assistant", "content": "..."}
ChatMessage = Mapping[str, str]
Messages = Sequence[ChatMessage]

FinishReason = Literal["stop", "length", "cancelled"]


@dataclass(frozen=True, slots=True)
class ChatResult:
    """What one chat request produced. Times are seconds (``time.perf_counter`` deltas)."""

    text: str
    finish_reason: FinishReason
    model: str
    prompt_tokens: int
    # Prompt tokens actually run through the model; the rest came from a reused KV cache.
    prompt_tokens_evaluated: int
    completion_tokens: int
    # From submission until the backend started on it (waiting in the fair queue).
    queue_wait_s: float
    # From submission until the first generated token (None if none was generated).
    time_to_first_token_s: float | None
    # Decode speed after the first token: (completion_tokens - 1) / time between first and last.
    tokens_per_second: float | None
    total_s: float

    @property
    def prompt_tokens_cached(self) -> int:
        return self.prompt_tokens - self.prompt_tokens_evaluated


def normalize_messages(messages: Messages) -> list[dict[str, str]]:
    """Validate and copy messages into plain dicts (the worker thread must not see caller objects)."""
    out: list[dict[str, str]] = []
    for i, m in enumerate(messages):
        try:
            role, content = m["role"], m["content"]
        except (KeyError, TypeError):
            raise ValueError(f"message {i} needs 'role' and 'content' keys") from None
        if not isinstance(role, str) or not isinstance(content, str):
            raise ValueError(f"message {i}: role and content must be strings")
        out.append({"role": role, "content": content})
    if not out:
        raise ValueError("a chat needs at least one message")
    return out
