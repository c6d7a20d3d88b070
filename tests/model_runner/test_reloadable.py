"""The reloadable runner: counts what it serves, swaps in a reloaded model between requests, closes the
old one once its requests finished, and keeps the old one serving when the new file is missing or broken."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from model_runner import LlamaCppRunner, ModelConfigError, SamplingParams
from model_runner.reloadable import ReloadableRunner
from model_runner.synthetic import write_random_llama_gguf

PARAMS = SamplingParams(max_tokens=8, temperature=0.0, seed=1)
HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture
async def reloadable(tiny_gguf: Path, tmp_path: Path):
    path = tmp_path / "model.gguf"
    shutil.copy(tiny_gguf, path)
    built: list[LlamaCppRunner] = []

    def build() -> LlamaCppRunner:
        runner = LlamaCppRunner(path, n_ctx=256, n_threads=1)
        built.append(runner)
        return runner

    runner = ReloadableRunner(build(), build)
    await runner.start()
    yield runner, path, built
    await runner.close()


def replace(path: Path, write) -> None:
    """Replace the model file the way an operator must: write a new file and move it over the old one.
    (llama.cpp maps the running model's file into memory; writing into that file crashes the process.)"""
    new = path.with_suffix(".new")
    write(new)
    os.replace(new, path)


async def reply(runner) -> str:
    async with runner.stream_chat(HELLO, PARAMS, user_key="u") as stream:
        return "".join([chunk async for chunk in stream])


async def test_counts_requests_tokens_and_speed(reloadable):
    runner, path, _ = reloadable
    stats = runner.runner_stats()
    assert (stats.backend, stats.model_name, stats.model_file) == ("llama.cpp", "model", str(path))
    assert stats.requests_served == 0 and stats.recent_tokens_per_second is None
    await reply(runner)
    result = await runner.stream_chat(HELLO, PARAMS, user_key="v").final()
    stats = runner.runner_stats()
    assert stats.requests_served == 2 and stats.completion_tokens == 2 * result.completion_tokens == 16
    assert stats.recent_tokens_per_second > 0 and stats.waiting == stats.active == 0
    assert await runner.count_tokens("hello") == 5  # byte vocabulary


async def test_a_broken_or_missing_file_leaves_the_old_model_serving(reloadable):
    runner, path, built = reloadable
    first = await reply(runner)
    replace(path, lambda new: new.write_bytes(b"not a gguf file at all"))
    with pytest.raises(ModelConfigError):
        await runner.reload()
    path.unlink()
    with pytest.raises(ModelConfigError):
        await runner.reload()
    assert runner.current is built[0] and built[0].running
    assert await reply(runner) == first
    assert runner.runner_stats().reloads == 0 and runner.runner_stats().requests_served == 2


async def test_reload_swaps_between_requests_and_retires_the_old_model(reloadable):
    runner, path, built = reloadable
    before = await reply(runner)
    long_params = SamplingParams(max_tokens=64, temperature=0.0, seed=1)
    # A reply still being written on the old model when the new file arrives.
    running = runner.stream_chat(HELLO, long_params, user_key="w")
    first_chunk = await running.__anext__()
    replace(path, lambda new: write_random_llama_gguf(new, seed=2))  # the operator replaced the file
    stats = await runner.reload()
    assert stats.reloads == 1 and runner.current is built[1] and built[0].running
    rest = "".join([chunk async for chunk in running])
    assert first_chunk + rest and running.result.finish_reason in ("length", "stop")
    # New requests go to the new model (different weights, different reply); the old one is closed.
    assert await reply(runner) != before
    await asyncio.wait_for(runner.wait_retired(), timeout=10)
    assert not built[0].running
    assert runner.runner_stats().requests_served == 3  # counted across reloads

