"""Sampling parameters and the Open-Assistant presets."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SamplingParams(BaseModel):
    """How to pick tokens. ``top_k = 0`` and ``top_p = 1`` switch those filters off.

    ``temperature = 0`` means greedy decoding. ``seed = None`` draws a fresh random seed.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    temperature: float = Field(0.75, ge=0.0, le=5.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    top_k: int = Field(50, ge=0)
    repeat_penalty: float = Field(1.2, gt=0.0)
    # How many recent tokens the repetition penalty looks at (llama.cpp's default).
    repeat_last_n: int = Field(64, ge=0)
    max_tokens: int = Field(512, ge=1)
    seed: int | None = Field(None, ge=0, lt=2**32 - 1)
    stop: tuple[str, ...] = ()
    # Keep generating past end-of-turn tokens (benchmarks, tests on random-weight models).
    ignore_eos: bool = False

    def with_(self, **changes: object) -> SamplingParams:
        """A copy with some fields changed (validated)."""
        return SamplingParams.model_validate({**self.model_dump(), **changes})


# The sampling presets Open-Assistant's inference server offered (model_configs / work params).
PRESETS: dict[str, SamplingParams] = {
    "k50": SamplingParams(top_k=50, top_p=0.95, temperature=0.75, repeat_penalty=1.2),
    "k50-creative": SamplingParams(top_k=50, top_p=0.95, temperature=0.85, repeat_penalty=1.2),
    "k50-precise": SamplingParams(top_k=50, top_p=0.95, temperature=0.1, repeat_penalty=1.2),
    "nucleus9": SamplingParams(top_k=0, top_p=0.9, temperature=0.8, repeat_penalty=1.0),
}
DEFAULT_PRESET = "k50"


def preset(name: str, **overrides: object) -> SamplingParams:
    """The named preset, optionally with some fields overridden (e.g. ``max_tokens``, ``seed``)."""
    try:
        base = PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown sampling preset {name!r}; known: {', '.join(PRESETS)}") from None
    return base.with_(**overrides) if overrides else base
