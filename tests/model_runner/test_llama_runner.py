"""LlamaCppRunner against a tiny random-weight GGUF (generated per session, loads in milliseconds)."""

from __future__ import annotations

import asyncio
import gc
import threading
import time

import pytest

from model_runner import (
    PRESETS,
    PromptTooLongError,
    RunnerNotRunningError,
    SamplingParams,
)

# Random weights emit end-of-turn tokens at random; ignore_eos makes lengths predictable.
LONG = SamplingParams(temperature=0.8, top_k=0, top_p=1.0, repeat_penalty=1.0, max_tokens=3000,
                      ignore_eos=True, seed=7)
GREEDY = SamplingParams(temperature=0.0, repeat_penalty=1.0, max_tokens=40, ignore_eos=True)


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


async def test_stream_yields_chunks_and_final_result(make_runner):
    runner = await make_runner()
    messages = [{"role": "system", "content": "Be brief."}, *user("Hello there, how are you?")]
    stream = runner.stream_chat(messages, GREEDY.with_(max_tokens=25), user_key="u1")
    chunks = [c async for c in stream]
    res = stream.result
    assert chunks and all(isinstance(c, str) and c for c in chunks)
    assert "".join(chunks) == res.text
    assert res.finish_reason == "length"
    assert res.completion_tokens == 25
    assert res.prompt_tokens == await runner.count_tokens(messages)
    assert res.prompt_tokens_evaluated == res.prompt_tokens  # nothing to reuse on a first turn
    assert res.time_to_first_token_s is not None and res.time_to_first_token_s >= res.queue_wait_s >= 0
    assert res.tokens_per_second is not None and res.tokens_per_second > 0
    assert res.model == "tiny"
    assert stream.position is None


async def test_count_tokens_text_and_messages(make_runner):
    runner = await make_runner()
    # The tiny vocabulary is one token per byte.
    assert await runner.count_tokens("héllo") == len("héllo".encode())
    n_msgs = await runner.count_tokens(user("hi"))
    # <|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n : 3 special tokens + the bytes
    assert n_msgs == 3 + len("user\nhi" "\n" "assistant\n")


async def test_eos_stops_generation_without_ignore_eos(make_runner):
    runner = await make_runner()
    params = SamplingParams(temperature=1.5, top_k=0, top_p=1.0, repeat_penalty=1.0, max_tokens=400, seed=3)
    reasons = []
    for seed in range(12):
        res = await runner.stream_chat(user("x"), params.with_(seed=seed), user_key="u").final()
        reasons.append(res.finish_reason)
        assert res.completion_tokens <= 400
        if res.finish_reason == "stop":
            assert res.completion_tokens < 400
    # The random model samples its end-of-turn token now and then: at least one reply must end on it.
    assert "stop" in reasons
    assert set(reasons) <= {"stop", "length"}


async def test_stop_string_cuts_output(make_runner):
    runner = await make_runner()
    params = GREEDY.with_(max_tokens=60, repeat_penalty=1.3)  # the penalty keeps greedy from looping
    full = await runner.stream_chat(user("stop test"), params, user_key="u").final()
    text = full.text
    # A stop string from the middle of the greedy output (greedy: the rerun is identical).
    stop = next(text[i:i + 2] for i in range(5, len(text) - 2) if "\ufffd" not in text[i:i + 2])
    cut = text.index(stop)
    assert cut > 0
    stream = runner.stream_chat(user("stop test"), params.with_(stop=(stop,)), user_key="u")
    chunks = [c async for c in stream]
    assert stream.result.finish_reason == "stop"
    assert stream.result.text == text[:cut]
    assert "".join(chunks) == text[:cut]


async def test_cancel_stops_within_two_tokens(make_runner):
    runner = await make_runner(n_ctx=4096)
    stream = runner.stream_chat(user("go on"), LONG, user_key="u")
    seen = 0
    async for _ in stream:
        seen += 1
        if seen == 3:
            at_cancel = stream.tokens_generated
            stream.cancel()
    res = stream.result
    assert res.finish_reason == "cancelled"
    assert res.completion_tokens - at_cancel <= 2
    assert res.completion_tokens < LONG.max_tokens


async def test_cancelling_the_consumer_task_stops_generation(make_runner):
    runner = await make_runner(n_ctx=4096, n_parallel=1)
    stream = runner.stream_chat(user("go on"), LONG, user_key="u")
    sink = stream.sink
    got_some = asyncio.Event()

    async def consume():
        async for _ in stream:
            got_some.set()

    task = asyncio.create_task(consume())
    await got_some.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    at_cancel = sink.tokens_generated
    # With one sequence, the next request only runs once the cancelled one has let go.
    await runner.stream_chat(user("next"), GREEDY.with_(max_tokens=2), user_key="v").final()
    assert sink.cancelled.is_set()
    assert sink.tokens_generated - at_cancel <= 2


async def test_dropping_an_unread_stream_cancels_it(make_runner):
    runner = await make_runner(n_ctx=4096, n_parallel=1)
    stream = runner.stream_chat(user("go on"), LONG, user_key="u")
    sink = stream.sink
    async for _ in stream:
        break
    at_drop = sink.tokens_generated
    del stream
    gc.collect()
    await runner.stream_chat(user("next"), GREEDY.with_(max_tokens=2), user_key="v").final()
    assert sink.cancelled.is_set()
    assert sink.tokens_generated - at_drop <= 2


async def test_async_with_exit_cancels(make_runner):
    runner = await make_runner(n_ctx=4096)
    async with runner.stream_chat(user("go on"), LONG, user_key="u") as stream:
        async for _ in stream:
            break
    assert stream.done
    assert stream.result.finish_reason == "cancelled"
    assert stream.result.completion_tokens < LONG.max_tokens


async def test_cancel_while_waiting_never_starts(make_runner):
    runner = await make_runner(n_ctx=4096, n_parallel=1)
    first = runner.stream_chat(user("long"), LONG, user_key="a")
    positions: list[int] = []
    second = runner.stream_chat(user("queued"), GREEDY, user_key="b", on_position=positions.append)
    await asyncio.sleep(0)  # let position events arrive
    second.cancel()
    res = await second.final()
    assert res.finish_reason == "cancelled"
    assert res.completion_tokens == 0
    assert 0 not in positions  # it never reached the model
    first.cancel()
    assert (await first.final()).finish_reason == "cancelled"


async def test_fair_queue_serves_late_user_before_a_burst(make_runner):
    runner = await make_runner(n_ctx=4096, n_parallel=1)
    # Another user's long reply occupies the model while the line forms.
    gate = runner.stream_chat(user("gate"), LONG, user_key="G")
    async for _ in gate:
        break
    order: list[str] = []
    positions: dict[str, list[int]] = {}
    queued = {name: asyncio.Event() for name in [*(f"a{i}" for i in range(5)), "b"]}

    def on_position(name: str, p: int) -> None:
        positions[name].append(p)
        queued[name].set()

    async def run(name: str, user_key: str) -> None:
        positions[name] = []
        stream = runner.stream_chat(user(name), GREEDY.with_(max_tokens=30), user_key=user_key,
                                    on_position=lambda p: on_position(name, p))
        await stream.final()
        order.append(name)

    tasks = [asyncio.create_task(run(f"a{i}", "A")) for i in range(5)]
    await asyncio.gather(*(queued[f"a{i}"].wait() for i in range(5)))  # A's burst is in line first
    tasks.append(asyncio.create_task(run("b", "B")))
    await queued["b"].wait()
    gate.cancel()
    await asyncio.gather(*tasks)
    # B waits behind at most one of A's requests, not behind the whole burst.
    assert order == ["a0", "b", "a1", "a2", "a3", "a4"]
    assert positions["a4"][0] == 5 and positions["b"][0] == 2
    assert positions["a4"][1] == 6  # b was put ahead of it: a truthful position, not a stale one
    assert all(p[-1] == 0 for p in positions.values())  # everybody was told when they started


async def test_model_is_touched_from_one_thread_only(make_runner, monkeypatch):
    import llama_cpp

    threads: set[int] = set()
    calls = 0

    def recording(fn):
        def wrapper(*args, **kwargs):
            nonlocal calls
            threads.add(threading.get_ident())
            calls += 1
            return fn(*args, **kwargs)

        return wrapper

    for name in dir(llama_cpp):
        obj = getattr(llama_cpp, name)
        if name.startswith("llama_") and callable(obj) and not isinstance(obj, type):
            monkeypatch.setattr(llama_cpp, name, recording(obj))

    runner = await make_runner(n_parallel=2)

    async def chat(i: int) -> None:
        res = await runner.stream_chat(user(f"hello {i}"), GREEDY.with_(max_tokens=20), user_key=f"u{i % 3}",
                                       conversation_key=f"c{i}").final()
        assert res.completion_tokens == 20

    await asyncio.gather(*(chat(i) for i in range(8)), *(runner.count_tokens(user(f"x{i}")) for i in range(5)))
    assert calls > 100
    assert len(threads) == 1
    assert threading.get_ident() not in threads


async def test_next_turn_reuses_the_conversation_state(make_runner):
    runner = await make_runner(n_parallel=1)
    history = user("Tell me something.")
    first = await runner.stream_chat(history, GREEDY, user_key="u", conversation_key="c").final()
    history = [*history, {"role": "assistant", "content": first.text}, *user("And then?")]
    second = await runner.stream_chat(history, GREEDY, user_key="u", conversation_key="c").final()
    assert second.prompt_tokens > first.prompt_tokens
    # At least the whole first prompt was already in the cache.
    assert second.prompt_tokens_cached >= first.prompt_tokens
    assert second.prompt_tokens_evaluated <= second.prompt_tokens - first.prompt_tokens


async def test_saved_state_is_restored_after_another_conversation(make_runner):
    runner = await make_runner(n_parallel=1, state_cache_bytes=16 << 20)
    x1 = await runner.stream_chat(user("conversation x " * 8), GREEDY, user_key="u", conversation_key="x").final()
    await runner.stream_chat(user("conversation y " * 8), GREEDY, user_key="v", conversation_key="y").final()
    assert runner.stats()["state_cache_entries"] == 1  # x was saved when y took the sequence
    x_history = [*user("conversation x " * 8), {"role": "assistant", "content": x1.text}, *user("more")]
    x2 = await runner.stream_chat(x_history, GREEDY, user_key="u", conversation_key="x").final()
    assert x2.prompt_tokens_cached >= x1.prompt_tokens

    # The restored state gives exactly what a cold start gives (greedy decoding).
    cold_runner = await make_runner(n_parallel=1, state_cache_bytes=0)
    await cold_runner.stream_chat(user("conversation y " * 8), GREEDY, user_key="v", conversation_key="y").final()
    cold = await cold_runner.stream_chat(x_history, GREEDY, user_key="u", conversation_key="x").final()
    # Without a budget x was not kept: only the prefix it shares with y's prompt was reused.
    assert cold.prompt_tokens_cached < x1.prompt_tokens
    assert cold.text == x2.text


async def test_state_cache_budget_evicts_least_recently_used(make_runner):
    probe = await make_runner(n_parallel=1, state_cache_bytes=64 << 20)
    prompts = {k: user(f"{k} conversation " * 10) for k in "abc"}
    for k in "ab":
        await probe.stream_chat(prompts[k], GREEDY, user_key=k, conversation_key=k).final()
    one_state = probe.stats()["state_cache_bytes"]
    assert one_state > 0

    runner = await make_runner(n_parallel=1, state_cache_bytes=int(one_state * 1.5))
    first = {}
    for k in "abc":
        first[k] = await runner.stream_chat(prompts[k], GREEDY, user_key=k, conversation_key=k).final()
    stats = runner.stats()
    assert stats["state_cache_evictions"] == 1  # a was pushed out when b was saved
    assert stats["state_cache_entries"] == 1
    assert stats["state_cache_bytes"] <= stats["state_cache_capacity_bytes"]
    again_b = await runner.stream_chat(prompts["b"], GREEDY, user_key="b", conversation_key="b").final()
    assert again_b.prompt_tokens_evaluated == 1  # restored: only the last token is re-read for logits
    again_a = await runner.stream_chat(prompts["a"], GREEDY, user_key="a", conversation_key="a").final()
    # Evicted: only "<|im_start|>user\n" (6 tokens), shared with the live conversation, is reused.
    assert again_a.prompt_tokens_cached == 6


async def test_prompt_too_long_is_a_clear_error(make_runner):
    runner = await make_runner(n_ctx=64)
    stream = runner.stream_chat(user("x" * 200), GREEDY, user_key="u")
    with pytest.raises(PromptTooLongError) as e:
        async for _ in stream:
            pass
    assert e.value.n_ctx == runner.n_ctx
    # The runner keeps serving afterwards.
    ok = await runner.stream_chat(user("hi"), GREEDY.with_(max_tokens=3), user_key="u").final()
    assert ok.completion_tokens == 3


async def test_generation_stops_at_the_context_window(make_runner):
    runner = await make_runner(n_ctx=64)
    res = await runner.stream_chat(user("hi"), LONG, user_key="u").final()
    assert res.finish_reason == "length"
    assert res.prompt_tokens + res.completion_tokens <= runner.n_ctx


async def test_event_loop_keeps_ticking_during_generation(make_runner):
    runner = await make_runner(n_ctx=4096, n_threads=2)
    lags: list[float] = []
    stop = asyncio.Event()

    async def ticker():
        while not stop.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - t - 0.005)

    tick = asyncio.create_task(ticker())
    res = await runner.stream_chat(user("go"), LONG.with_(max_tokens=1500), user_key="u").final()
    stop.set()
    await tick
    assert res.completion_tokens == 1500
    assert len(lags) > 1
    assert max(lags) < 1.0  # sanity bound only; bench/chat.py reports the real figure


async def test_closed_runner_refuses_and_close_ends_running_streams(make_runner):
    runner = await make_runner(n_ctx=4096, n_parallel=1)
    running = runner.stream_chat(user("long"), LONG, user_key="a")
    waiting = runner.stream_chat(user("queued"), GREEDY, user_key="b")
    async for _ in running:
        break
    await runner.close()
    assert (await running.final()).finish_reason == "cancelled"
    with pytest.raises(RunnerNotRunningError):
        await waiting.final()
    with pytest.raises(RunnerNotRunningError):
        runner.stream_chat(user("late"), GREEDY, user_key="c")
    with pytest.raises(RunnerNotRunningError):
        await runner.count_tokens("x")


async def test_bad_messages_are_rejected_before_queueing(make_runner):
    runner = await make_runner()
    with pytest.raises(ValueError):
        runner.stream_chat([], GREEDY, user_key="u")
    with pytest.raises(ValueError):
        runner.stream_chat([{"role": "user"}], GREEDY, user_key="u")


def test_presets_match_open_assistant():
    assert PRESETS["k50"].model_dump(include={"top_k", "top_p", "temperature", "repeat_penalty"}) == {
        "top_k": 50, "top_p": 0.95, "temperature": 0.75, "repeat_penalty": 1.2}
    assert PRESETS["k50-creative"].temperature == 0.85 and PRESETS["k50-creative"].top_k == 50
    assert PRESETS["k50-precise"].temperature == 0.1 and PRESETS["k50-precise"].top_p == 0.95
    assert PRESETS["nucleus9"].top_p == 0.9 and PRESETS["nucleus9"].temperature == 0.8
    assert PRESETS["nucleus9"].top_k == 0
    with pytest.raises(ValueError):
        SamplingParams(temperature=-1)


async def test_parallel_requests_are_batched_not_serialised(make_runner):
    runner = await make_runner(n_ctx=1024, n_parallel=4)
    events: list[tuple[str, str]] = []

    async def chat(name: str) -> None:
        stream = runner.stream_chat(user(name), LONG.with_(max_tokens=300), user_key=name,
                                    on_position=lambda p: events.append(("start", name)) if p == 0 else None)
        await stream.final()
        events.append(("done", name))

    await asyncio.gather(*(chat(f"u{i}") for i in range(4)))
    first_done = next(i for i, (kind, _) in enumerate(events) if kind == "done")
    assert sorted(n for kind, n in events[:first_done] if kind == "start") == ["u0", "u1", "u2", "u3"]


async def test_a_worker_crash_fails_requests_instead_of_hanging_them(make_runner, caplog):
    runner = await make_runner()

    def broken_step() -> None:
        raise RuntimeError("simulated bug")

    runner._step = broken_step  # type: ignore[method-assign]
    with pytest.raises(Exception, match="simulated bug"):
        await asyncio.wait_for(runner.stream_chat(user("hi"), GREEDY, user_key="u").final(), timeout=30)
    assert "worker stopped unexpectedly" in caplog.text
    with pytest.raises(RunnerNotRunningError):
        runner.stream_chat(user("again"), GREEDY, user_key="u")


async def test_prompts_are_read_together_and_apart_from_next_tokens(make_runner, monkeypatch):
    # With a KV window per sequence llama.cpp micro-batches equally many tokens of each sequence:
    # every decode gives every sequence in it the same number of tokens.
    import llama_cpp

    shapes: list[dict[int, int]] = []
    real = llama_cpp.llama_decode

    def recording(ctx, batch):
        per_seq: dict[int, int] = {}
        for i in range(batch.n_tokens):
            per_seq[batch.seq_id[i][0]] = per_seq.get(batch.seq_id[i][0], 0) + 1
        shapes.append(per_seq)
        return real(ctx, batch)

    monkeypatch.setattr(llama_cpp, "llama_decode", recording)
    runner = await make_runner(n_ctx=1024, n_parallel=4)
    await asyncio.gather(*(
        runner.stream_chat(user(f"user {i} " * (10 + 20 * i)), GREEDY.with_(max_tokens=30), user_key=i).final()
        for i in range(4)
    ))
    multi = [s for s in shapes if len(s) > 1]
    assert any(set(s.values()) == {1} for s in multi), "the four conversations were never decoded together"
    assert any(min(s.values()) > 1 for s in multi), "prompts arriving together were read one by one"
    assert all(len(set(s.values())) == 1 for s in shapes)


async def test_llama_cpp_helper_threads_yield_to_the_bots_threads(make_runner):
    import os

    from model_runner.priority import native_threads

    if not native_threads():
        pytest.skip("needs /proc (Linux)")
    before = native_threads()
    await make_runner(n_threads=2)
    new = native_threads() - before
    python_threads = {t.native_id for t in threading.enumerate()}
    helpers = new - python_threads
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    assert helpers and all(os.getpriority(os.PRIO_PROCESS, tid) >= max(10, ours) for tid in helpers)
    assert all(os.getpriority(os.PRIO_PROCESS, tid) == ours for tid in new & python_threads)  # the worker
