"""Exceptions of the model runner. Every message is written for the person running the bot."""

from __future__ import annotations


class ModelRunnerError(Exception):
    """Base class of everything this package raises on purpose."""


class ModelConfigError(ModelRunnerError):
    """The configured model cannot be used (missing, not a GGUF file, fails to load).

    Raised at startup (``resolve_model_path`` / ``start()``), never in the middle of a chat.
    """


class RunnerNotRunningError(ModelRunnerError):
    """A request reached a runner that is not started or already closed."""


class PromptTooLongError(ModelRunnerError):
    """The formatted conversation does not fit the context window; trim it with ``count_tokens``."""

    def __init__(self, n_prompt: int, n_ctx: int) -> None:
        super().__init__(
            f"The conversation is {n_prompt} tokens long but the model context holds {n_ctx}; "
            "drop older messages and try again."
        )
        self.n_prompt = n_prompt
        self.n_ctx = n_ctx


class BackendError(ModelRunnerError):
    """The backend failed while generating (llama.cpp decode error, HTTP error, bad stream)."""
