"""LLM backends behind one small async streaming interface.

``LlamaCppRunner`` (in-process llama.cpp, the default) and ``OpenAICompatRunner`` (any
OpenAI-compatible ``/v1/chat/completions`` server) share the same methods::

    runner = LlamaCppRunner(path, n_ctx=4096, n_threads=2, state_cache_bytes=256 << 20)
    await runner.start()
    async with runner.stream_chat(messages, PRESETS["k50"], user_key=uid, conversation_key=cid,
                                  on_position=show_place_in_line) as stream:
        async for chunk in stream:
            ...
    result = stream.result  # ChatResult: token counts, timings, finish reason

No discord, storage or bot imports here.
"""

from .errors import (
    BackendError,
    ModelConfigError,
    ModelRunnerError,
    PromptTooLongError,
    RunnerNotRunningError,
)
from .factory import ChatRunner, build_runner
from .llama_cpp_runner import LlamaCppRunner
from .openai_compat import OpenAICompatRunner
from .params import DEFAULT_PRESET, PRESETS, SamplingParams, preset
from .resolve import CHAT_DISABLED_MESSAGE, bundled_smollm2_path, check_gguf_file, resolve_model_path
from .stream import ChatStream
from .types import ChatMessage, ChatResult, FinishReason, Messages

__all__ = [
    "CHAT_DISABLED_MESSAGE",
    "DEFAULT_PRESET",
    "PRESETS",
    "BackendError",
    "ChatMessage",
    "ChatRunner",
    "ChatResult",
    "ChatStream",
    "FinishReason",
    "LlamaCppRunner",
    "Messages",
    "ModelConfigError",
    "ModelRunnerError",
    "OpenAICompatRunner",
    "PromptTooLongError",
    "RunnerNotRunningError",
    "SamplingParams",
    "build_runner",
    "bundled_smollm2_path",
    "check_gguf_file",
    "preset",
    "resolve_model_path",
]
