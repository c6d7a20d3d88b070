from __future__ import annotations

from pathlib import Path

import pytest

from model_runner import LlamaCppRunner
from model_runner.synthetic import write_random_llama_gguf


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 64-dim, 2-layer random llama with a byte vocabulary and ChatML: loads in milliseconds."""
    return write_random_llama_gguf(tmp_path_factory.mktemp("models") / "tiny.gguf", seed=1)


@pytest.fixture
async def make_runner(tiny_gguf: Path):
    """Factory for started runners on the tiny model; all are closed after the test."""
    runners: list[LlamaCppRunner] = []

    async def make(**kwargs) -> LlamaCppRunner:
        kwargs.setdefault("n_ctx", 512)
        kwargs.setdefault("n_threads", 1)
        runner = LlamaCppRunner(kwargs.pop("model_path", tiny_gguf), **kwargs)
        await runner.start()
        runners.append(runner)
        return runner

    yield make
    for r in runners:
        await r.close()
