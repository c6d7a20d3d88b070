"""The object a chat request returns: an async iterator of text chunks plus a final result.

The producer (a llama.cpp worker thread or an HTTP task) pushes events with ``_push``, which is
safe to call from any thread: it hands the event to the consumer's event loop with
``call_soon_threadsafe`` and never blocks.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import weakref
from collections.abc import Callable
from typing import Any

from .types import ChatResult

PositionCallback = Callable[[int], Any]

_CHUNK, _POSITION, _DONE, _ERROR = range(4)


async def _swallow(awaitable: Any) -> None:
    try:
        await awaitable
    except Exception:  # a UI callback must not break generation
        pass


class StreamSink:
    """The producer's handle on a stream. It holds the stream only weakly, so a consumer that
    drops its stream unread is noticed (``ChatStream.__del__`` cancels) instead of being kept
    alive by the producer."""

    def __init__(self, stream: ChatStream) -> None:
        self._loop = stream._loop
        self._stream_ref = weakref.ref(stream)
        self.cancelled = threading.Event()
        # Written by the producer as it samples; read by the consumer to see how far it got.
        self.tokens_generated = 0

    def _push(self, kind: int, value: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(self._deliver, kind, value)
        except RuntimeError:
            pass  # the consumer's loop is closed: nobody is listening any more

    def _deliver(self, kind: int, value: Any) -> None:
        stream = self._stream_ref()
        if stream is not None:
            stream._deliver(kind, value)

    def push_chunk(self, text: str) -> None:
        self._push(_CHUNK, text)

    def push_position(self, position: int) -> None:
        self._push(_POSITION, position)

    def push_done(self, result: ChatResult) -> None:
        self._push(_DONE, result)

    def push_error(self, exc: BaseException) -> None:
        self._push(_ERROR, exc)


class ChatStream:
    """``async for chunk in stream`` yields text; afterwards ``stream.result`` is a ChatResult.

    * ``position``: 1, 2, ... while waiting in the queue (1 = next), 0 once generating, None when
      finished. ``on_position`` (given to ``stream_chat``) is called on the event loop whenever it
      changes (it may be a coroutine function), so the caller can show "you are #3 in the
      queue". A request that starts at once briefly reports 1 before 0.
    * ``cancel()``: stop generating (within a token or two); the stream then ends with
      ``finish_reason == "cancelled"``. Leaving ``async with`` early, cancelling the task that
      iterates, or dropping the stream without reading it to the end all cancel too.
    * Errors (e.g. PromptTooLongError, BackendError) are raised from the iteration.
    """

    def __init__(self, *, on_position: PositionCallback | None = None,
                 on_cancel: Callable[[StreamSink], None] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._events: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()
        self._on_position = on_position
        self._on_cancel = on_cancel
        self._result: ChatResult | None = None
        self._error: BaseException | None = None
        self._finished = False
        self.position: int | None = None
        self._callback_tasks: set[asyncio.Task[Any]] = set()
        self.sink = StreamSink(self)

    @property
    def tokens_generated(self) -> int:
        """Tokens the backend has sampled so far (may be ahead of the chunks read)."""
        return self.sink.tokens_generated

    def _deliver(self, kind: int, value: Any) -> None:
        if kind == _POSITION:
            if self._finished or self.position == value:
                return
            self.position = value
            if self._on_position is not None:
                try:
                    res = self._on_position(value)
                    if inspect.isawaitable(res):  # an async callback: run it, keep a reference
                        task = self._loop.create_task(_swallow(res))
                        self._callback_tasks.add(task)
                        task.add_done_callback(self._callback_tasks.discard)
                except Exception:  # a UI callback must not break generation
                    pass
            return
        self._events.put_nowait((kind, value))

    def __aiter__(self) -> ChatStream:
        return self

    async def __anext__(self) -> str:
        if self._finished:
            if self._error is not None:
                raise self._error
            raise StopAsyncIteration
        try:
            kind, value = await self._events.get()
        except asyncio.CancelledError:
            self.cancel()  # the consuming task was cancelled: stop the model too
            raise
        if kind == _CHUNK:
            return value
        self._finished = True
        self.position = None
        if kind == _DONE:
            self._result = value
            raise StopAsyncIteration
        self._error = value
        raise value

    @property
    def done(self) -> bool:
        return self._finished

    @property
    def result(self) -> ChatResult:
        if self._result is None:
            if self._error is not None:
                raise self._error
            raise RuntimeError("the stream has not finished; read it to the end or await final()")
        return self._result

    async def final(self) -> ChatResult:
        """Read whatever is left and return the result."""
        async for _ in self:
            pass
        return self.result

    def cancel(self) -> None:
        """Ask the backend to stop. Idempotent; safe to call after the stream finished."""
        if self._finished or self.sink.cancelled.is_set():
            return
        self.sink.cancelled.set()
        if self._on_cancel is not None:
            self._on_cancel(self.sink)

    async def aclose(self) -> None:
        """Cancel if still running and wait for the backend to let go of the request."""
        if self._finished:
            return
        self.cancel()
        try:
            await self.final()
        except Exception:
            pass  # the caller is abandoning the stream; its error is of no interest now

    async def __aenter__(self) -> ChatStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __del__(self) -> None:
        # Dropped without reading to the end: free the model for others.
        sink = getattr(self, "sink", None)
        if sink is not None and not self._finished and not sink.cancelled.is_set():
            sink.cancelled.set()
            if self._on_cancel is not None:
                try:
                    self._on_cancel(sink)
                except Exception:
                    pass
