"""How a reply is sampled: the preset, a reproducible seed, and what makes a regeneration differ."""

from __future__ import annotations

from model_runner import SamplingParams, preset

SEED_MODULUS = 2**32 - 1


def offset_seed(seed: int | None, offset: int) -> int | None:
    """A configured seed made distinct per reply (or task), so runs are reproducible but no two
    replies share a seed; None stays None (a fresh random seed each time)."""
    return None if seed is None else (seed + offset) % SEED_MODULUS


def reply_params(preset_name: str, *, max_tokens: int, seed: int | None, reply_id: int,
                 regeneration: bool, regeneration_min_temperature: float) -> SamplingParams:
    """Sampling for one reply. A regeneration is sampled at least as hot as
    ``regeneration_min_temperature``: at a precise preset's 0.1 it would repeat the first answer."""
    params = preset(preset_name, max_tokens=max_tokens, seed=offset_seed(seed, reply_id))
    if regeneration and params.temperature < regeneration_min_temperature:
        params = params.with_(temperature=regeneration_min_temperature)
    return params
