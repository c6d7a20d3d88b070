"""Backend for any OpenAI-compatible ``/v1/chat/completions`` server (llama.cpp server, vLLM,
Ollama, ...), streamed over server-sent events with aiohttp.

The same fair queue as the in-process backend decides who is sent next when more than
``max_concurrency`` requests are in flight; cancelling a stream closes its HTTP connection,
which is how such servers learn to stop generating.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import aiohttp

from .errors import BackendError, ModelConfigError, RunnerNotRunningError
from .fair_queue import FairQueue
from .params import DEFAULT_PRESET, PRESETS, SamplingParams
from .stream import ChatStream, PositionCallback, StreamSink
from .types import ChatResult, FinishReason, Messages, normalize_messages


@dataclass(eq=False)
class _HttpJob:
    sink: StreamSink
    messages: list[dict[str, str]]
    params: SamplingParams
    user_key: Hashable
    t_submit: float
    last_position: int = -1
    task: asyncio.Task[None] | None = field(default=None, repr=False)


def estimate_tokens(text: str) -> int:
    """About four characters of English per token: a budget estimate, not a count."""
    return max(1, math.ceil(len(text) / 4)) if text else 0


class OpenAICompatRunner:
    """``base_url`` is the API root, e.g. ``http://127.0.0.1:8080/v1``.

    ``extended_params`` sends top_k / repeat_penalty / ignore_eos too, which llama.cpp's server
    and vLLM understand; switch it off for servers that reject unknown fields.
    ``count_tokens`` is an estimate here (the OpenAI API has no tokenizer endpoint).
    """

    backend = "openai-compatible"
    count_tokens_is_exact = False

    def __init__(
        self,
        base_url: str,
        *,
        model: str,
        api_key: str | None = None,
        max_concurrency: int = 4,
        n_ctx: int = 4096,
        timeout_s: float = 600.0,
        extended_params: bool = True,
        check_on_start: bool = True,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be >= 1")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.max_concurrency = max_concurrency
        self.n_ctx = n_ctx
        self._api_key = api_key
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=10)
        self._extended = extended_params
        self._check_on_start = check_on_start
        self._session: aiohttp.ClientSession | None = None
        self._queue: FairQueue[_HttpJob] = FairQueue(on_positions=self._publish_positions)
        self._in_flight: set[_HttpJob] = set()
        self._closing = False

    @property
    def model_name(self) -> str:
        return PurePosixPath(self.model).name or self.model

    @property
    def running(self) -> bool:
        return self._session is not None and not self._closing

    async def start(self) -> None:
        """Open the HTTP session; with ``check_on_start`` ask ``/models`` so that a wrong URL or
        key is a ModelConfigError now rather than a failed chat later."""
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        self._session = aiohttp.ClientSession(headers=headers, timeout=self._timeout)
        if not self._check_on_start:
            return
        try:
            async with self._session.get(f"{self.base_url}/models") as resp:
                if resp.status in (401, 403):
                    raise ModelConfigError(f"The inference server at {self.base_url} refused the API key "
                                           f"(HTTP {resp.status}).")
                if resp.status >= 400:
                    raise ModelConfigError(f"The inference server at {self.base_url} answered HTTP "
                                           f"{resp.status} to GET /models; is the base URL right (…/v1)?")
        except aiohttp.ClientError as e:
            await self._session.close()
            self._session = None
            raise ModelConfigError(f"Cannot reach the inference server at {self.base_url}: {e}") from e
        except ModelConfigError:
            await self._session.close()
            self._session = None
            raise

    async def close(self) -> None:
        self._closing = True
        while (job := self._queue.pop_nowait()) is not None:
            job.sink.push_error(RunnerNotRunningError("the model runner was shut down"))
        tasks = [j.task for j in self._in_flight if j.task is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> OpenAICompatRunner:
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
        conversation_key: Hashable | None = None,  # servers do their own prefix caching
        on_position: PositionCallback | None = None,
    ) -> ChatStream:
        if not self.running:
            raise RunnerNotRunningError("the model runner is not running (start() it first)")
        stream = ChatStream(on_position=on_position, on_cancel=self._on_cancel)
        job = _HttpJob(stream.sink, normalize_messages(messages), params or PRESETS[DEFAULT_PRESET],
                       user_key, time.perf_counter())
        self._queue.put(job, user_key)
        self._dispatch()
        return stream

    async def count_tokens(self, messages_or_text: Messages | str) -> int:
        """Estimated tokens (see ``count_tokens_is_exact``), with a few per message for the
        chat template's role markers."""
        if isinstance(messages_or_text, str):
            return estimate_tokens(messages_or_text)
        msgs = normalize_messages(messages_or_text)
        return sum(estimate_tokens(m["content"]) + 4 for m in msgs) + 3

    def stats(self) -> dict[str, Any]:
        return {"waiting": len(self._queue), "active": len(self._in_flight)}

    # -- internals --------------------------------------------------------------------------------

    def _publish_positions(self, waiting: list[_HttpJob]) -> None:
        for i, job in enumerate(waiting, start=1):
            if job.last_position != i:
                job.last_position = i
                job.sink.push_position(i)

    def _on_cancel(self, sink: StreamSink) -> None:
        for job in self._queue.waiting():
            if job.sink is sink and self._queue.remove(job):
                sink.push_done(_empty_result(job, self.model_name))
                return
        for job in self._in_flight:
            if job.sink is sink and job.task is not None:
                job.task.cancel()  # closing the connection tells the server to stop
                return

    def _dispatch(self) -> None:
        while len(self._in_flight) < self.max_concurrency and not self._closing:
            job = self._queue.pop_nowait()
            if job is None:
                return
            self._in_flight.add(job)
            job.task = asyncio.get_running_loop().create_task(self._run(job))
            job.task.add_done_callback(self._make_done(job))

    def _make_done(self, job: _HttpJob) -> Callable[[asyncio.Task[None]], None]:
        def done(_: asyncio.Task[None]) -> None:
            self._in_flight.discard(job)
            if not self._closing:
                self._dispatch()

        return done

    def _body(self, job: _HttpJob) -> dict[str, Any]:
        p = job.params
        body: dict[str, Any] = {
            "model": self.model,
            "messages": job.messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": p.max_tokens,
            "temperature": p.temperature,
            "top_p": p.top_p,
        }
        if p.seed is not None:
            body["seed"] = p.seed
        if p.stop:
            body["stop"] = list(p.stop)
        if self._extended:
            body["top_k"] = p.top_k
            body["repeat_penalty"] = p.repeat_penalty
            body["repeat_last_n"] = p.repeat_last_n
            if p.ignore_eos:
                body["ignore_eos"] = True
        return body

    async def _run(self, job: _HttpJob) -> None:
        sink = job.sink
        t_start = time.perf_counter()
        sink.push_position(0)
        text: list[str] = []
        n_chunks = 0
        t_first: float | None = None
        t_last: float | None = None
        finish: FinishReason = "stop"
        usage: dict[str, Any] = {}
        try:
            assert self._session is not None
            async with self._session.post(f"{self.base_url}/chat/completions", json=self._body(job)) as resp:
                if resp.status >= 400:
                    detail = (await resp.text())[:300]
                    raise BackendError(f"the inference server answered HTTP {resp.status}: {detail}")
                async for data in _sse_data(resp):
                    if data == "[DONE]":
                        break
                    try:
                        event = json.loads(data)
                    except json.JSONDecodeError as e:
                        raise BackendError(f"the inference server sent invalid JSON: {data[:100]!r}") from e
                    if event.get("error"):
                        raise BackendError(f"the inference server reported: {event['error']}")
                    if event.get("usage"):
                        usage = event["usage"]
                    for choice in event.get("choices") or []:
                        delta = (choice.get("delta") or {}).get("content")
                        if delta:
                            now = time.perf_counter()
                            t_first = t_first or now
                            t_last = now
                            n_chunks += 1
                            sink.tokens_generated = n_chunks
                            text.append(delta)
                            sink.push_chunk(delta)
                        if choice.get("finish_reason") == "length":
                            finish = "length"
        except asyncio.CancelledError:
            finish = "cancelled"
        except BackendError as e:
            sink.push_error(e)
            return
        except (aiohttp.ClientError, TimeoutError) as e:
            sink.push_error(BackendError(f"lost the inference server: {e or type(e).__name__}"))
            return
        full = "".join(text)
        completion = int(usage.get("completion_tokens") or n_chunks)
        prompt = int(usage.get("prompt_tokens") or sum(estimate_tokens(m["content"]) + 4 for m in job.messages))
        cached = int(((usage.get("prompt_tokens_details") or {}).get("cached_tokens")) or 0)
        tps = None
        if t_first is not None and t_last is not None and t_last > t_first and completion > 1:
            tps = (completion - 1) / (t_last - t_first)
        end = time.perf_counter()
        sink.push_done(ChatResult(
            text=full,
            finish_reason=finish,
            model=self.model_name,
            prompt_tokens=prompt,
            prompt_tokens_evaluated=max(0, prompt - cached),
            completion_tokens=completion,
            queue_wait_s=t_start - job.t_submit,
            time_to_first_token_s=None if t_first is None else t_first - job.t_submit,
            tokens_per_second=tps,
            total_s=end - job.t_submit,
        ))


async def _sse_data(resp: aiohttp.ClientResponse):  # type: ignore[no-untyped-def]
    """Yield the data of each server-sent event (multi-line data joined with newlines)."""
    data: list[str] = []
    async for raw in resp.content:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith(":"):
            continue  # comment / keep-alive
        name, _, value = line.partition(":")
        if name == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield "\n".join(data)


def _empty_result(job: _HttpJob, model: str) -> ChatResult:
    now = time.perf_counter()
    return ChatResult(text="", finish_reason="cancelled", model=model, prompt_tokens=0,
                      prompt_tokens_evaluated=0, completion_tokens=0, queue_wait_s=now - job.t_submit,
                      time_to_first_token_s=None, tokens_per_second=None, total_s=now - job.t_submit)
