"""Pick and build the backend from plain settings values (the bot passes its settings here)."""

from __future__ import annotations

import os
from typing import Any, Protocol, runtime_checkable

from .errors import ModelConfigError
from .llama_cpp_runner import LlamaCppRunner, MiB
from .openai_compat import OpenAICompatRunner
from .params import SamplingParams
from .resolve import resolve_model_path
from .stream import ChatStream, PositionCallback
from .types import Messages


@runtime_checkable
class ChatRunner(Protocol):
    """What both backends offer; type the chat service against this."""

    backend: str

    @property
    def model_name(self) -> str: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def stream_chat(
        self,
        messages: Messages,
        params: SamplingParams | None = None,
        *,
        user_key: Any,
        conversation_key: Any = None,
        on_position: PositionCallback | None = None,
    ) -> ChatStream: ...

    async def count_tokens(self, messages_or_text: Messages | str) -> int: ...

    def stats(self) -> dict[str, Any]: ...


def build_runner(
    *,
    model_path: str | os.PathLike[str] | None = None,
    openai_base_url: str | None = None,
    openai_model: str | None = None,
    openai_api_key: str | None = None,
    n_ctx: int = 4096,
    n_threads: int | None = None,
    n_batch: int = 512,
    n_parallel: int = 4,
    state_cache_bytes: int = 256 * MiB,
    allow_bundled_model: bool = True,
) -> ChatRunner | None:
    """An OpenAI-compatible runner if a server URL is set, else an in-process llama.cpp runner
    on the configured (or bundled SmolLM2) model, else None: chat disabled, tell the admin
    ``CHAT_DISABLED_MESSAGE``. A configured but unusable model file raises ModelConfigError.
    Call ``await runner.start()`` afterwards (it loads the model and can raise it too)."""
    if openai_base_url:
        if not openai_model:
            raise ModelConfigError("An OpenAI-compatible server is configured but no model name for it.")
        return OpenAICompatRunner(openai_base_url, model=openai_model, api_key=openai_api_key,
                                  max_concurrency=n_parallel, n_ctx=n_ctx)
    path = resolve_model_path(model_path, allow_bundled=allow_bundled_model)
    if path is None:
        return None
    return LlamaCppRunner(path, n_ctx=n_ctx, n_threads=n_threads, n_batch=n_batch, n_parallel=n_parallel,
                          state_cache_bytes=state_cache_bytes)
