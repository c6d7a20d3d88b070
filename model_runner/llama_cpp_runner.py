"""In-process llama.cpp backend with continuous batching, fair queuing and KV-state reuse.

One worker thread owns the model and its context; nothing else touches them (a llama.cpp context
is not thread-safe). The context holds ``n_parallel`` sequences, each with its own ``n_ctx``
window. The worker alternates between one batch holding the next token of every generating
request and one chunk of a newly admitted prompt, so eight users are served at once (and faster
in total than one after another) instead of waiting behind each other's whole replies.

Reuse across turns: an idle sequence keeps the conversation it last served, so the next turn of
that conversation only evaluates the new tokens. When a sequence is needed for another
conversation, its state is saved with ``llama_state_seq_get_data`` into a byte-bounded LRU
(``state_cache_bytes``) and restored with ``llama_state_seq_set_data`` when that conversation
comes back. Reuse is always checked token by token, so a key never makes a wrong prefix count.

Tokens go back to the event loop through ``loop.call_soon_threadsafe``; the loop never waits.
"""

from __future__ import annotations

import asyncio
import codecs
import ctypes
import itertools
import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
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
from .resolve import check_gguf_file
from .state_cache import StateCache
from .stream import ChatStream, PositionCallback, StreamSink
from .synthetic import CHATML_TEMPLATE
from .types import ChatResult, FinishReason, Messages, normalize_messages

log = logging.getLogger(__name__)

MiB = 1024 * 1024
# Prompt tokens read per step while others are generating: big enough for efficient batched
# prompt reading on a CPU, small enough that the others' next token is held up well under a
# second (Discord edits are throttled to about one a second anyway).
PREFILL_WHILE_GENERATING = 256


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


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
    slot: _Slot | None = None
    sampler: Any = None
    pending: list[int] = field(default_factory=list)
    stops: tuple[str, ...] = ()
    prompt_tokens: int = 0
    prompt_evaluated: int = 0
    n_generated: int = 0
    text: str = ""
    emitted: int = 0
    decoder: Any = None
    t_start: float = 0.0
    t_first: float | None = None
    t_last: float | None = None


@dataclass(eq=False)
class _Slot:
    """One sequence of the context: the tokens its KV cells hold, and whom it serves."""

    seq_id: int
    tokens: list[int] = field(default_factory=list)
    key: Hashable | None = None
    last_used: int = 0
    job: _Job | None = None


_backend_lock = threading.Lock()
_backend_ready = False


class LlamaCppRunner:
    """Chat with a GGUF model in this process.

    ``n_ctx`` is the window of one conversation; the context allocates ``n_ctx * n_parallel``
    KV cells. ``state_cache_bytes`` bounds the saved states of conversations that are not live
    in one of the ``n_parallel`` sequences (0 disables saving).

    (Lowering the worker thread's OS priority was tried and dropped: the thread holds the GIL
    between decodes, so under outside CPU load a deprioritised worker made the event loop wait
    longer, not shorter.)
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
        self._vocab: Any = None
        self._ctx: Any = None
        self._mem: Any = None
        self._batch: Any = None
        self._n_ctx_seq = n_ctx
        self._n_vocab = 0
        self._eog_tokens: list[int] = []
        self._formatter: Any = None
        self._piece_buf = ctypes.create_string_buffer(256)
        self._slots: list[_Slot] = []
        self._active: list[_Job] = []
        self._decoded_last = False
        self._use_clock = itertools.count(1)
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
            return await self._call_in_worker(lambda: len(self._tokenize(data, False, False)))
        msgs = normalize_messages(messages_or_text)
        return await self._call_in_worker(lambda: len(self._prompt_tokens(msgs)[0]))

    def stats(self) -> dict[str, Any]:
        """A snapshot for logs and benchmarks (read without locking: approximate while busy)."""
        return {
            "waiting": len(self._queue),
            "active": len(self._active),
            "state_cache_entries": len(self.state_cache),
            "state_cache_bytes": self.state_cache.nbytes,
            "state_cache_capacity_bytes": self.state_cache.capacity_bytes,
            "state_cache_evictions": self.state_cache.evictions,
            "live_conversations": sum(1 for s in self._slots if s.key is not None),
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
        self._vocab = lc.llama_model_get_vocab(model)
        self._n_vocab = lc.llama_vocab_n_tokens(self._vocab)
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
        self._mem = lc.llama_get_memory(ctx)
        self._n_ctx_seq = min(n_ctx, lc.llama_n_ctx_seq(ctx))
        self._batch = lc.llama_batch_init(self.n_batch, 0, 1)
        self._slots = [_Slot(seq_id=i) for i in range(self.n_parallel)]
        self._eog_tokens = [t for t in range(self._n_vocab) if lc.llama_vocab_is_eog(self._vocab, t)]

        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = self._chat_template_override or self._meta_str("tokenizer.chat_template") or CHATML_TEMPLATE
        self.chat_template = template
        bos, eos = lc.llama_vocab_bos(self._vocab), lc.llama_vocab_eos(self._vocab)
        self._formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=self._token_text(eos) if eos >= 0 else "",
            bos_token=self._token_text(bos) if bos >= 0 else "",
            add_generation_prompt=True,
        )

    def _meta_str(self, key: str) -> str | None:
        lc = self._lc
        size = 4096
        while True:
            buf = ctypes.create_string_buffer(size)
            n = lc.llama_model_meta_val_str(self._model, key.encode(), buf, size)
            if n < 0:
                return None
            if n < size:
                return buf.value.decode("utf-8", errors="replace")
            size = n + 1

    def _token_text(self, token: int) -> str:
        raw = self._lc.llama_vocab_get_text(self._vocab, token)
        return raw.decode("utf-8", errors="replace") if raw else ""

    def _tokenize(self, data: bytes, add_special: bool, parse_special: bool) -> list[int]:
        lc = self._lc
        n_max = len(data) + 16
        while True:
            buf = (lc.llama_token * n_max)()
            n = lc.llama_tokenize(self._vocab, data, len(data), buf, n_max, add_special, parse_special)
            if n >= 0:
                return list(buf[:n])
            n_max = -n

    def _piece(self, token: int) -> bytes:
        n = self._lc.llama_token_to_piece(self._vocab, token, self._piece_buf, len(self._piece_buf), 0, False)
        if n < 0:
            self._piece_buf = ctypes.create_string_buffer(-n)
            n = self._lc.llama_token_to_piece(self._vocab, token, self._piece_buf, -n, 0, False)
        return self._piece_buf.raw[:n]

    def _prompt_tokens(self, messages: list[dict[str, str]]) -> tuple[list[int], tuple[str, ...]]:
        formatted = self._formatter(messages=messages)
        tokens = self._tokenize(formatted.prompt.encode("utf-8"), not formatted.added_special, True)
        stop = formatted.stop
        stops = tuple(s for s in ([stop] if isinstance(stop, str) else (stop or [])) if s)
        return tokens, stops

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
            prompt, template_stops = self._prompt_tokens(job.messages)
        except Exception as e:
            job.sink.push_error(BackendError(f"could not format the conversation with the chat template: {e}"))
            return
        if len(prompt) + 1 > self._n_ctx_seq:
            job.sink.push_error(PromptTooLongError(len(prompt), self._n_ctx_seq))
            return
        slot = self._pick_slot(job.conversation_key, prompt)
        # Keep what matches, but always evaluate at least the last prompt token: its logits
        # are what the first reply token is sampled from.
        keep = common_prefix_len(slot.tokens, prompt[:-1])
        if keep < len(slot.tokens):
            if not self._lc.llama_memory_seq_rm(self._mem, slot.seq_id, keep, -1):
                # Some memories (recurrent, sliding-window) cannot drop a tail: start over.
                self._lc.llama_memory_seq_rm(self._mem, slot.seq_id, -1, -1)
                keep = 0
            del slot.tokens[keep:]
        job.pending = prompt[keep:]
        job.prompt_tokens = len(prompt)
        job.prompt_evaluated = len(job.pending)
        job.stops = tuple(job.params.stop) + template_stops
        job.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        job.sampler = self._make_sampler(job.params)
        job.slot = slot
        slot.job = job
        slot.key = job.conversation_key
        slot.last_used = next(self._use_clock)
        self._active.append(job)

    def _pick_slot(self, key: Hashable | None, prompt: list[int]) -> _Slot:
        idle = [s for s in self._slots if s.job is None]
        if key is not None:
            for s in idle:
                if s.key == key:
                    return s
        saved = self.state_cache.take(key) if key is not None else None
        if saved is not None:
            # Empty sequences first, then the least recently used one.
            victim = min(idle, key=lambda s: (bool(s.tokens), s.last_used))
        else:
            # The longest shared prefix (e.g. the same system prompt), else empty, else LRU.
            victim = max(idle, key=lambda s: (common_prefix_len(s.tokens, prompt), not s.tokens, -s.last_used))
        self._save_slot(victim)
        if saved is not None:
            self._lc.llama_memory_seq_rm(self._mem, victim.seq_id, -1, -1)
            victim.tokens = []
            if self._lc.llama_state_seq_set_data(self._ctx, saved.blob, len(saved.blob), victim.seq_id):
                victim.tokens = list(saved.tokens)
            else:  # the saved state did not fit back: start cold rather than fail the chat
                self._lc.llama_memory_seq_rm(self._mem, victim.seq_id, -1, -1)
        return victim

    def _save_slot(self, slot: _Slot) -> None:
        """Keep the conversation a sequence holds in the state cache before reusing it."""
        key, slot.key = slot.key, None
        if key is None or not slot.tokens or self.state_cache.capacity_bytes <= 0:
            return
        lc = self._lc
        size = lc.llama_state_seq_get_size(self._ctx, slot.seq_id)
        if size + 8 * len(slot.tokens) > self.state_cache.capacity_bytes:
            return
        blob = (ctypes.c_uint8 * size)()
        written = lc.llama_state_seq_get_data(self._ctx, blob, size, slot.seq_id)
        if written == size:
            self.state_cache.put(key, slot.tokens, blob)

    def _make_sampler(self, p: SamplingParams) -> Any:
        lc = self._lc
        chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
        if p.ignore_eos and self._eog_tokens:
            biases = (lc.llama_logit_bias * len(self._eog_tokens))()
            for i, t in enumerate(self._eog_tokens):
                biases[i].token = t
                biases[i].bias = float("-inf")
            lc.llama_sampler_chain_add(
                chain, lc.llama_sampler_init_logit_bias(self._n_vocab, len(self._eog_tokens), biases)
            )
        if p.repeat_penalty != 1.0 and p.repeat_last_n > 0:
            lc.llama_sampler_chain_add(
                chain, lc.llama_sampler_init_penalties(self._n_vocab, p.repeat_last_n, p.repeat_penalty, 0.0, 0.0)
            )
        if p.temperature <= 0.0:
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_greedy())
            return chain
        if p.top_k > 0:
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_k(p.top_k))
        if p.top_p < 1.0:
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_p(p.top_p, 1))
        lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_temp(p.temperature))
        seed = p.seed if p.seed is not None else random.getrandbits(31)
        lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_dist(seed))
        return chain

    def _step(self) -> None:
        """One llama_decode: either the next token of every generating request, or one chunk of
        one prompt. The two alternate while both kinds of work wait.

        They are never mixed in one call: with a KV window per sequence, llama.cpp splits a
        batch into micro-batches holding equally many tokens of each sequence, and a batch of
        one-token sequences plus a prompt chunk was measured to run many times slower than the
        same work as two calls."""
        decoding = [j for j in self._active if j.n_generated > 0]
        reading = [j for j in self._active if j.n_generated == 0]
        if reading and (not decoding or self._decoded_last):
            # The shortest remaining prompt first: its user gets a first token soonest.
            job = min(reading, key=lambda j: len(j.pending))
            budget = self.n_batch if not decoding else min(self.n_batch, PREFILL_WHILE_GENERATING)
            work = [(job, min(budget, len(job.pending)))]
            self._decoded_last = False
        else:
            work = [(j, 1) for j in decoding]
            self._decoded_last = True
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
        lc = self._lc
        tok = lc.llama_sampler_sample(job.sampler, self._ctx, idx)
        now = time.perf_counter()
        job.n_generated += 1
        job.sink.tokens_generated = job.n_generated
        if job.t_first is None:
            job.t_first = now
        job.t_last = now
        if not job.params.ignore_eos and lc.llama_vocab_is_eog(self._vocab, tok):
            self._finish(job, "stop")
            return
        text = job.decoder.decode(self._piece(tok))
        if text and self._append_text(job, text):
            self._finish(job, "stop", flush=False)
            return
        slot = job.slot
        assert slot is not None
        if job.n_generated >= job.params.max_tokens or len(slot.tokens) + 1 >= self._n_ctx_seq:
            self._finish(job, "length")
            return
        job.pending = [tok]

    def _append_text(self, job: _Job, text: str) -> bool:
        """Add decoded text; emit what cannot be part of a stop string. True if one was hit."""
        job.text += text
        if job.stops:
            search_from = max(0, job.emitted - max(len(s) for s in job.stops))
            hits = [i for i in (job.text.find(s, search_from) for s in job.stops) if i >= 0]
            if hits:
                job.text = job.text[: min(hits)]
                self._emit(job, len(job.text))
                return True
            hold = 0
            for s in job.stops:
                for k in range(min(len(s) - 1, len(job.text)), hold, -1):
                    if job.text.endswith(s[:k]):
                        hold = k
                        break
            self._emit(job, len(job.text) - hold)
        else:
            self._emit(job, len(job.text))
        return False

    def _emit(self, job: _Job, upto: int) -> None:
        if upto > job.emitted:
            job.sink.push_chunk(job.text[job.emitted : upto])
            job.emitted = upto

    def _release(self, job: _Job) -> None:
        if job.sampler is not None:
            self._lc.llama_sampler_free(job.sampler)
            job.sampler = None
        if job.slot is not None:
            job.slot.job = None
            job.slot.last_used = next(self._use_clock)
        if job in self._active:
            self._active.remove(job)

    def _finish(self, job: _Job, reason: FinishReason, *, flush: bool = True) -> None:
        if flush:  # a stop-string hit already cut the text; otherwise nothing is held back
            tail = job.decoder.decode(b"", final=True) if job.decoder is not None else ""
            if tail and self._append_text(job, tail):
                reason = "stop"
            self._emit(job, len(job.text))
        self._release(job)
        job.sink.push_done(self._result(job, reason, started=True))

    def _fail(self, job: _Job, exc: BaseException) -> None:
        slot = job.slot
        self._release(job)
        if slot is not None:  # the KV content of a failed decode is unknown: forget it
            self._lc.llama_memory_seq_rm(self._mem, slot.seq_id, -1, -1)
            slot.tokens = []
            slot.key = None
        job.sink.push_error(exc)

    def _result(self, job: _Job, reason: FinishReason, *, started: bool) -> ChatResult:
        end = time.perf_counter()
        start = job.t_start if started and job.t_start else end
        tps = None
        if job.t_first is not None and job.t_last is not None and job.n_generated > 1 and job.t_last > job.t_first:
            tps = (job.n_generated - 1) / (job.t_last - job.t_first)
        return ChatResult(
            text=job.text,
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
