"""In-process llama.cpp backend with continuous batching, fair queuing and KV-state reuse.

One worker thread owns the model and its context; nothing else touches them (a llama.cpp context
is not thread-safe). The context holds ``n_parallel`` sequences, each with its own ``n_ctx``
window, so eight users are served at once (and faster in total than one after another) instead of
waiting behind each other's whole replies. The parts: ``vocab`` (tokenizer, chat template),
``sequences`` (which sequence serves whom, saved states), ``sampler``, ``scheduler`` (what each
decode holds) and ``text_buffer`` (UTF-8 and stop strings). Tokens go back to the event loop
through ``loop.call_soon_threadsafe``; the loop never waits.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import (
    BackendError,
    ModelConfigError,
    PromptTooLongError,
    RunnerNotRunningError,
)
from .fair_queue import FairQueue
from .params import DEFAULT_PRESET, PRESETS, SamplingParams
from .priority import lower_priority, native_threads
from .resolve import check_gguf_file
from .sampler import make_sampler
from .scheduler import plan_step
from .sequences import Sequences, Slot
from .state_cache import StateCache
from .stream import ChatStream, PositionCallback, StreamSink
from .text_buffer import StopTextBuffer
from .types import ChatResult, FinishReason, Messages, normalize_messages
from .vocab import LlamaVocab

log = logging.getLogger(__name__)

MiB = 1024 * 1024


@dataclass(eq=False)
class _Job:
    """One chat request. Fields below ``t_submit`` belong to the worker thread."""

    sink: StreamSink
    messages: list[dict[str, str]]
    params: SamplingParams
    user_key: Hashable
    conversation_key: Hashable | None
    t_submit: float
    last_position: int = -1
    slot: Slot | None = None
    sampler: Any = None
    pending: list[int] = field(default_factory=list)
    prompt_tokens: int = 0
    prompt_evaluated: int = 0
    n_generated: int = 0
    text: StopTextBuffer | None = None
    t_start: float = 0.0
    t_first: float | None = None
    t_last: float | None = None


_backend_lock = threading.Lock()
_backend_ready = False


class LlamaCppRunner:
    """Chat with a GGUF model in this process.

    ``n_ctx`` is the window of one conversation; the context allocates ``n_ctx * n_parallel``
    KV cells. ``state_cache_bytes`` bounds the saved states of conversations that are not live
    in one of the ``n_parallel`` sequences (0 disables saving).

    ``helper_nice`` is the nice value of llama.cpp's helper compute threads (see ``priority``);
    0 leaves them at the bot's priority.
    """

    backend = "llama.cpp"

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_threads_batch: int | None = None,
        n_batch: int = 512,
        n_parallel: int = 4,
        state_cache_bytes: int = 256 * MiB,
        chat_template: str | None = None,
        helper_nice: int = 10,
        verbose: bool = False,
    ) -> None:
        if n_ctx < 16 or n_batch < 1 or n_parallel < 1:
            raise ValueError("n_ctx must be >= 16, n_batch and n_parallel >= 1")
        self.model_path = Path(model_path)
        self.n_threads = n_threads or os.cpu_count() or 1
        self.n_threads_batch = n_threads_batch or self.n_threads
        self.n_batch = n_batch
        self.n_parallel = n_parallel
        self._n_ctx_requested = n_ctx
        self._chat_template_override = chat_template
        self._helper_nice = helper_nice
        self._verbose = verbose

        self._queue: FairQueue[_Job] = FairQueue(on_positions=self._publish_positions)
        self._cond = self._queue.condition
        self._control: deque[tuple[Callable[[], Any], asyncio.AbstractEventLoop, asyncio.Future[Any]]] = deque()
        self._thread: threading.Thread | None = None
        self._running = False
        self._closing = False
        self._crashed: BaseException | None = None

        # Worker-thread state.
        self._lc: Any = None  # the llama_cpp module, imported in start()
        self._model: Any = None
        self._ctx: Any = None
        self._batch: Any = None
        self._vocab: Any = None  # LlamaVocab
        self._sequences: Sequences | None = None
        self._n_ctx_seq = n_ctx
        self._active: list[_Job] = []
        self._decoded_last = False
        self.state_cache = StateCache(state_cache_bytes)
        self.chat_template: str | None = None

    # -- public API -------------------------------------------------------------------------------

    @property
    def model_name(self) -> str:
        return self.model_path.stem

    @property
    def n_ctx(self) -> int:
        """Tokens one conversation may hold (prompt + reply); known exactly after start()."""
        return self._n_ctx_seq

    @property
    def running(self) -> bool:
        return self._running and not self._closing

    async def start(self) -> None:
        """Load the model in the worker thread. Raises ModelConfigError if it cannot be used."""
        if self._thread is not None:
            raise RuntimeError("start() was already called")
        check_gguf_file(self.model_path)
        try:
            import llama_cpp
        except ImportError as e:  # pragma: no cover - a packaging problem, not a test case
            raise ModelConfigError("llama-cpp-python is not installed: pip install llama-cpp-python") from e
        self._lc = llama_cpp
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        self._thread = threading.Thread(
            target=self._worker_main, args=(loop, ready), name=f"llama-{self.model_name}", daemon=True
        )
        self._thread.start()
        try:
            await ready
        except BaseException:
            await asyncio.to_thread(self._thread.join)
            raise
        self._running = True

    async def close(self) -> None:
        """Stop: running requests end as cancelled, waiting ones fail with RunnerNotRunningError."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            self._running = False
            return
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        await asyncio.to_thread(thread.join)
        self._running = False

    async def __aenter__(self) -> LlamaCppRunner:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def stream_chat(
        self,
        messages: Messages,
        params: SamplingParams | None = None,
        *,
        user_key: Hashable,
        conversation_key: Hashable | None = None,
        on_position: PositionCallback | None = None,
    ) -> ChatStream:
        """Queue a chat request and return its stream (must be called on the event loop).

        ``user_key`` decides fairness (one user's burst does not delay others);
        ``conversation_key`` lets the next turn of the same conversation reuse its KV state.
        """
        if not self.running:
            raise RunnerNotRunningError("the model runner is not running (start() it first)")
        job_messages = normalize_messages(messages)
        stream = ChatStream(on_position=on_position, on_cancel=self._cancel_waiting)
        job = _Job(
            sink=stream.sink,
            messages=job_messages,
            params=params or PRESETS[DEFAULT_PRESET],
            user_key=user_key,
            conversation_key=conversation_key,
            t_submit=time.perf_counter(),
        )
        self._queue.put(job, user_key)
        return stream

    async def count_tokens(self, messages_or_text: Messages | str) -> int:
        """Tokens of a plain text, or of a conversation formatted as a prompt (with the
        assistant header), i.e. exactly what ``stream_chat`` would feed the model."""
        if isinstance(messages_or_text, str):
            data = messages_or_text.encode("utf-8")
            return await self._call_in_worker(
                lambda: len(self._vocab.tokenize(data, add_special=False, parse_special=False)))
        msgs = normalize_messages(messages_or_text)
        return await self._call_in_worker(lambda: len(self._vocab.prompt(msgs)[0]))

    def stats(self) -> dict[str, Any]:
        """A snapshot for logs and benchmarks (read without locking: approximate while busy)."""
        return {
            "waiting": len(self._queue),
            "active": len(self._active),
            "state_cache_entries": len(self.state_cache),
            "state_cache_bytes": self.state_cache.nbytes,
            "state_cache_capacity_bytes": self.state_cache.capacity_bytes,
            "state_cache_evictions": self.state_cache.evictions,
            "live_conversations": self._sequences.live_conversations if self._sequences else 0,
        }

    # -- event-loop side helpers ------------------------------------------------------------------

    def _publish_positions(self, waiting: list[_Job]) -> None:
        # Runs under the queue lock, on whichever thread changed the line; only hands news on.
        for i, job in enumerate(waiting, start=1):
            if job.last_position != i:
                job.last_position = i
                job.sink.push_position(i)

    def _cancel_waiting(self, sink: StreamSink) -> None:
        for job in self._queue.waiting():
            if job.sink is sink:
                if self._queue.remove(job):
                    sink.push_done(self._result(job, "cancelled", started=False))
                return
        # Already running: the worker sees sink.cancelled before its next decode.

    async def _call_in_worker(self, fn: Callable[[], Any]) -> Any:
        if not self.running:
            raise RunnerNotRunningError("the model runner is not running (start() it first)")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        with self._cond:
            self._control.append((fn, loop, fut))
            self._cond.notify_all()
        return await fut

    # -- worker thread ----------------------------------------------------------------------------

    def _worker_main(self, loop: asyncio.AbstractEventLoop, ready: asyncio.Future[None]) -> None:
        try:
            self._load()
        except BaseException as e:
            self._free()
            err = e if isinstance(e, ModelConfigError) else ModelConfigError(
                f"Could not load the model {str(self.model_path)!r}: {e}"
            )
            _resolve_future(loop, ready, exc=err)
            return
        _resolve_future(loop, ready, value=None)
        try:
            self._serve()
        except BaseException as e:  # a bug: fail the requests loudly rather than leave them hanging
            log.exception("the llama.cpp worker stopped unexpectedly")
            self._crashed = e
        finally:
            self._shutdown()

    def _load(self) -> None:
        global _backend_ready
        lc = self._lc
        from llama_cpp._logger import set_verbose

        set_verbose(self._verbose)
        with _backend_lock:
            if not _backend_ready:
                lc.llama_backend_init()
                _backend_ready = True
        mparams = lc.llama_model_default_params()
        mparams.n_gpu_layers = 0
        model = lc.llama_model_load_from_file(str(self.model_path).encode(), mparams)
        if not model:
            raise ModelConfigError(
                f"llama.cpp could not load the model file {str(self.model_path)!r}: it is corrupt, "
                "truncated or of an architecture this llama-cpp-python does not support."
            )
        self._model = model
        self._vocab = LlamaVocab(lc, model, chat_template=self._chat_template_override)
        self.chat_template = self._vocab.chat_template
        n_ctx = min(self._n_ctx_requested, lc.llama_model_n_ctx_train(model) or self._n_ctx_requested)

        cparams = lc.llama_context_default_params()
        # llama.cpp pads a context to a multiple of 256 cells; pad each window ourselves so the
        # total divides evenly between the sequences, and enforce the requested n_ctx below.
        cparams.n_ctx = -(-n_ctx // 256) * 256 * self.n_parallel
        cparams.n_batch = self.n_batch
        cparams.n_ubatch = min(self.n_batch, 512)
        cparams.n_seq_max = self.n_parallel
        cparams.kv_unified = False  # one window of n_ctx cells per sequence: simple accounting
        cparams.n_threads = self.n_threads
        cparams.n_threads_batch = self.n_threads_batch
        cparams.no_perf = True
        ctx = lc.llama_init_from_model(model, cparams)
        if not ctx:
            raise ModelConfigError(
                f"llama.cpp could not create a context of {n_ctx} x {self.n_parallel} tokens for "
                f"{self.model_name!r} (not enough memory? lower n_ctx or n_parallel)."
            )
        self._ctx = ctx
        self._n_ctx_seq = min(n_ctx, lc.llama_n_ctx_seq(ctx))
        self._batch = lc.llama_batch_init(self.n_batch, 0, 1)
        self._sequences = Sequences(lc, ctx, self.n_parallel, self.state_cache)
        self._start_helper_threads()

    def _start_helper_threads(self) -> None:
        """One throwaway decode starts llama.cpp's helper threads; they then yield to the bot's."""
        before = native_threads()
        self._decode_tokens([(0, 0, 0)])
        self._lc.llama_memory_seq_rm(self._lc.llama_get_memory(self._ctx), 0, -1, -1)
        changed = lower_priority(native_threads() - before, self._helper_nice)
        log.debug("%d llama.cpp helper threads at nice %d", changed, self._helper_nice)

    def _decode_tokens(self, items: list[tuple[int, int, int]]) -> int:
        """llama_decode of (sequence, token, position) items, logits for the last; returns its code."""
        batch = self._batch
        for n, (seq, token, pos) in enumerate(items):
            batch.token[n], batch.pos[n], batch.n_seq_id[n], batch.seq_id[n][0] = token, pos, 1, seq
            batch.logits[n] = n == len(items) - 1
        batch.n_tokens = len(items)
        return self._lc.llama_decode(self._ctx, batch)

    def _serve(self) -> None:
        while True:
            with self._cond:
                while not (self._closing or self._control or self._active or len(self._queue)):
                    self._cond.wait()
                closing = self._closing
                controls = list(self._control)
                self._control.clear()
            for fn, loop, fut in controls:
                try:
                    _resolve_future(loop, fut, value=fn())
                except Exception as e:
                    _resolve_future(loop, fut, exc=e)
            if closing:
                return
            while len(self._active) < self.n_parallel:
                job = self._queue.pop_nowait()
                if job is None:
                    break
                self._admit(job)
            for job in [j for j in self._active if j.sink.cancelled.is_set()]:
                self._finish(job, "cancelled")
            if self._active:
                self._step()

    def _admit(self, job: _Job) -> None:
        job.t_start = time.perf_counter()
        if job.sink.cancelled.is_set():
            job.sink.push_done(self._result(job, "cancelled", started=False))
            return
        job.sink.push_position(0)
        try:
            prompt, template_stops = self._vocab.prompt(job.messages)
        except Exception as e:
            job.sink.push_error(BackendError(f"could not format the conversation with the chat template: {e}"))
            return
        if len(prompt) + 1 > self._n_ctx_seq:
            job.sink.push_error(PromptTooLongError(len(prompt), self._n_ctx_seq))
            return
        assert self._sequences is not None
        slot, keep = self._sequences.acquire(job.conversation_key, prompt)
        job.pending = prompt[keep:]
        job.prompt_tokens = len(prompt)
        job.prompt_evaluated = len(job.pending)
        job.text = StopTextBuffer(tuple(job.params.stop) + template_stops)
        job.sampler = make_sampler(self._lc, job.params, n_vocab=self._vocab.n_vocab,
                                   eog_tokens=self._vocab.eog_tokens)
        job.slot = slot
        self._active.append(job)

    def _step(self) -> None:
        """One llama_decode, as the scheduler plans it."""
        work, self._decoded_last = plan_step(self._active, n_batch=self.n_batch, decoded_last=self._decoded_last)
        self._decode(work)

    def _decode(self, work: list[tuple[_Job, int]]) -> None:
        lc = self._lc
        batch = self._batch
        n = 0
        fed: list[tuple[_Job, list[int]]] = []
        outputs: list[tuple[_Job, int]] = []
        for job, take in work:
            slot = job.slot
            assert slot is not None
            pos0 = len(slot.tokens)
            chunk = job.pending[:take]
            for i, tok in enumerate(chunk):
                batch.token[n] = tok
                batch.pos[n] = pos0 + i
                batch.n_seq_id[n] = 1
                batch.seq_id[n][0] = slot.seq_id
                batch.logits[n] = 0
                n += 1
            del job.pending[:take]
            if not job.pending:
                batch.logits[n - 1] = 1
                outputs.append((job, n - 1))
            fed.append((job, chunk))
        if n == 0:
            return
        batch.n_tokens = n
        rc = lc.llama_decode(self._ctx, batch)
        if rc != 0:
            for job, _ in fed:
                self._fail(job, BackendError(f"llama_decode failed with code {rc}"))
            return
        for job, chunk in fed:
            job.slot.tokens.extend(chunk)  # type: ignore[union-attr]
        for job, idx in outputs:
            self._sample(job, idx)

    def _sample(self, job: _Job, idx: int) -> None:
        tok = self._lc.llama_sampler_sample(job.sampler, self._ctx, idx)
        now = time.perf_counter()
        job.n_generated += 1
        job.sink.tokens_generated = job.n_generated
        if job.t_first is None:
            job.t_first = now
        job.t_last = now
        if not job.params.ignore_eos and self._vocab.is_eog(tok):
            self._finish(job, "stop")
            return
        assert job.text is not None
        shown, stopped = job.text.feed(self._vocab.piece(tok))
        if shown:
            job.sink.push_chunk(shown)
        if stopped:
            self._finish(job, "stop", flush=False)
            return
        slot = job.slot
        assert slot is not None
        if job.n_generated >= job.params.max_tokens or len(slot.tokens) + 1 >= self._n_ctx_seq:
            self._finish(job, "length")
            return
        job.pending = [tok]

    def _release(self, job: _Job) -> None:
        if job.sampler is not None:
            self._lc.llama_sampler_free(job.sampler)
            job.sampler = None
        if job.slot is not None and self._sequences is not None:
            self._sequences.release(job.slot)
        if job in self._active:
            self._active.remove(job)

    def _finish(self, job: _Job, reason: FinishReason, *, flush: bool = True) -> None:
        if flush and job.text is not None:  # a stop-string hit already cut the text
            shown, stopped = job.text.finish()
            if shown:
                job.sink.push_chunk(shown)
            if stopped:
                reason = "stop"
        self._release(job)
        job.sink.push_done(self._result(job, reason, started=True))

    def _fail(self, job: _Job, exc: BaseException) -> None:
        slot = job.slot
        self._release(job)
        if slot is not None and self._sequences is not None:
            self._sequences.forget(slot)
        job.sink.push_error(exc)

    def _result(self, job: _Job, reason: FinishReason, *, started: bool) -> ChatResult:
        end = time.perf_counter()
        start = job.t_start if started and job.t_start else end
        tps = None
        if job.t_first is not None and job.t_last is not None and job.n_generated > 1 and job.t_last > job.t_first:
            tps = (job.n_generated - 1) / (job.t_last - job.t_first)
        return ChatResult(
            text=job.text.text if job.text is not None else "",
            finish_reason=reason,
            model=self.model_name,
            prompt_tokens=job.prompt_tokens,
            prompt_tokens_evaluated=job.prompt_evaluated,
            completion_tokens=job.n_generated,
            queue_wait_s=start - job.t_submit,
            time_to_first_token_s=None if job.t_first is None else job.t_first - job.t_submit,
            tokens_per_second=tps,
            total_s=end - job.t_submit,
        )

    def _shutdown(self) -> None:
        self._closing = True
        for job in list(self._active):
            if self._crashed is not None:
                self._fail(job, BackendError(f"the model worker stopped: {self._crashed!r}"))
            else:
                self._finish(job, "cancelled")
        while (job := self._queue.pop_nowait()) is not None:
            job.sink.push_error(RunnerNotRunningError("the model runner was shut down"))
        with self._cond:
            controls = list(self._control)
            self._control.clear()
        for _, loop, fut in controls:
            _resolve_future(loop, fut, exc=RunnerNotRunningError("the model runner was shut down"))
        self._free()

    def _free(self) -> None:
        lc = self._lc
        self.state_cache.clear()
        if self._batch is not None:
            lc.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx is not None:
            lc.llama_free(self._ctx)
            self._ctx = None
        if self._model is not None:
            lc.llama_model_free(self._model)
            self._model = None


def _resolve_future(loop: asyncio.AbstractEventLoop, fut: asyncio.Future[Any], *,
                    value: Any = None, exc: BaseException | None = None) -> None:
    def apply() -> None:
        if fut.done():
            return
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(value)

    try:
        loop.call_soon_threadsafe(apply)
    except RuntimeError:
        pass  # the loop that asked is gone
