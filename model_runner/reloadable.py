"""A ChatRunner that forwards to the backend in use, counts what it served, and can load a new backend
(e.g. after the model file was replaced) without a restart.

``reload()`` builds and starts the new backend first; only once it runs does it take new requests.
Requests already streaming from the old backend finish there, then the old one is closed. If the new
one cannot be built or started (a missing or broken file), the error is raised and the old backend
keeps serving as if nothing happened.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import ModelConfigError, ModelRunnerError
from .factory import ChatRunner
from .params import SamplingParams
from .stream import ChatStream, PositionCallback
from .types import ChatResult, Messages

log = logging.getLogger(__name__)
# Decode speed is averaged over this many recent replies.
RECENT = 20
# How often, and how long at most, the old backend is checked for requests still running before closing.
DRAIN_POLL_S = 0.25
DRAIN_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class RunnerStats:
    backend: str
    model_name: str
    model_file: str | None
    waiting: int
    active: int
    requests_served: int
    requests_failed: int
    completion_tokens: int
    recent_tokens_per_second: float | None
    reloads: int
    loaded_at: float  # time.time() when the backend in use started


class _CountedStream:
    """The backend's stream, unchanged for the reader; its result is counted once it ends."""

    def __init__(self, inner: ChatStream, on_end: Callable[[ChatResult | None], None]) -> None:
        self._inner = inner
        self._on_end = on_end
        self._counted = False

    def _end(self, result: ChatResult | None) -> None:
        if not self._counted:
            self._counted = True
            self._on_end(result)

    def __aiter__(self) -> _CountedStream:
        return self

    async def __anext__(self) -> str:
        try:
            return await self._inner.__anext__()
        except StopAsyncIteration:
            self._end(self._inner.result)
            raise
        except Exception:
            self._end(None)
            raise

    async def final(self) -> ChatResult:
        async for _ in self:
            pass
        return self._inner.result

    async def aclose(self) -> None:
        await self._inner.aclose()
        if self._inner.done and not self._counted:
            try:
                self._end(self._inner.result)
            except Exception:
                self._end(None)

    async def __aenter__(self) -> _CountedStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __getattr__(self, name: str) -> Any:
        # position, result, done, tokens_generated, cancel(): as the backend's stream has them.
        return getattr(self._inner, name)


class ReloadableRunner:
    """``build()`` makes a fresh, not yet started backend from the current settings."""

    def __init__(self, runner: ChatRunner, build: Callable[[], ChatRunner | None]) -> None:
        self._runner = runner
        self._build = build
        self._recent: deque[tuple[int, float]] = deque(maxlen=RECENT)
        self._served = 0
        self._failed = 0
        self._tokens = 0
        self._reloads = 0
        self._loaded_at = time.time()
        self._reload_lock = asyncio.Lock()
        self._retiring: set[asyncio.Task[None]] = set()

    @property
    def backend(self) -> str:
        return self._runner.backend

    @property
    def model_name(self) -> str:
        return self._runner.model_name

    @property
    def current(self) -> ChatRunner:
        return self._runner

    async def start(self) -> None:
        await self._runner.start()
        self._loaded_at = time.time()

    async def close(self) -> None:
        for task in list(self._retiring):
            task.cancel()
        await asyncio.gather(*self._retiring, return_exceptions=True)
        await self._runner.close()

    def stream_chat(self, messages: Messages, params: SamplingParams | None = None, *, user_key: Any,
                    conversation_key: Any = None, on_position: PositionCallback | None = None) -> Any:
        inner = self._runner.stream_chat(messages, params, user_key=user_key, conversation_key=conversation_key,
                                         on_position=on_position)
        return _CountedStream(inner, self._count)

    def _count(self, result: ChatResult | None) -> None:
        if result is None:
            self._failed += 1
            return
        if result.finish_reason == "cancelled" and not result.completion_tokens:
            return
        self._served += 1
        self._tokens += result.completion_tokens
        if result.tokens_per_second and result.completion_tokens > 1:
            # Weighted by length: the seconds each reply spent decoding.
            self._recent.append((result.completion_tokens - 1, (result.completion_tokens - 1)
                                 / result.tokens_per_second))

    async def count_tokens(self, messages_or_text: Messages | str) -> int:
        return await self._runner.count_tokens(messages_or_text)

    def stats(self) -> dict[str, Any]:
        return self._runner.stats()

    def model_file(self) -> str | None:
        path = getattr(self._runner, "model_path", None)
        if path is not None:
            return str(path)
        url = getattr(self._runner, "base_url", None)
        return str(url) if url else None

    def runner_stats(self) -> RunnerStats:
        inner = self._runner.stats()
        tokens = sum(t for t, _ in self._recent)
        seconds = sum(s for _, s in self._recent)
        return RunnerStats(
            backend=self.backend, model_name=self.model_name, model_file=self.model_file(),
            waiting=int(inner.get("waiting", 0)), active=int(inner.get("active", 0)),
            requests_served=self._served, requests_failed=self._failed, completion_tokens=self._tokens,
            recent_tokens_per_second=tokens / seconds if seconds > 0 else None, reloads=self._reloads,
            loaded_at=self._loaded_at,
        )

    async def reload(self) -> RunnerStats:
        """Load the backend again from the settings (e.g. a replaced model file). Raises ModelConfigError
        (or another ModelRunnerError) when the new one cannot run; the old one then keeps serving."""
        async with self._reload_lock:
            try:
                fresh = self._build()
            except ModelRunnerError:
                raise
            except (OSError, ValueError) as exc:
                raise ModelConfigError(f"The new model could not be prepared: {exc}") from exc
            if fresh is None:
                raise ModelConfigError("No model is configured any more; the current one keeps serving.")
            try:
                await fresh.start()
            except BaseException:
                await fresh.close()
                raise
            old, self._runner = self._runner, fresh
            self._reloads += 1
            self._loaded_at = time.time()
            self._recent.clear()
            task = asyncio.get_running_loop().create_task(self._retire(old))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)
            return self.runner_stats()

    async def wait_retired(self) -> None:
        """Until every replaced backend has finished its requests and is closed."""
        await asyncio.gather(*self._retiring, return_exceptions=True)

    async def _retire(self, old: ChatRunner) -> None:
        """Let the old backend finish what it started, then free it."""
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        try:
            while time.monotonic() < deadline:
                stats = old.stats()
                if not stats.get("waiting") and not stats.get("active"):
                    break
                await asyncio.sleep(DRAIN_POLL_S)
        finally:
            await old.close()
            log.info("closed the previous model backend (%s)", old.model_name)
