"""llama.cpp sampler chains built from SamplingParams."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from .params import SamplingParams


def make_sampler(lc: Any, p: SamplingParams, *, n_vocab: int, eog_tokens: Sequence[int]) -> Any:
    """A sampler chain (free it with ``lc.llama_sampler_free``): penalties, then greedy, or
    top-k, top-p, temperature and a seeded draw; ``ignore_eos`` bans the end-of-turn tokens."""
    chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
    if p.ignore_eos and eog_tokens:
        biases = (lc.llama_logit_bias * len(eog_tokens))()
        for i, t in enumerate(eog_tokens):
            biases[i].token = t
            biases[i].bias = float("-inf")
        lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_logit_bias(n_vocab, len(eog_tokens), biases))
    if p.repeat_penalty != 1.0 and p.repeat_last_n > 0:
        lc.llama_sampler_chain_add(
            chain, lc.llama_sampler_init_penalties(n_vocab, p.repeat_last_n, p.repeat_penalty, 0.0, 0.0)
        )
    if p.temperature <= 0.0:
        lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_greedy())
        return chain
    if p.top_k > 0:
        lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_k(p.top_k))
    if p.top_p < 1.0:
        lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_p(p.top_p, 1))
    lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_temp(p.temperature))
    seed = p.seed if p.seed is not None else random.getrandbits(31)
    lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_dist(seed))
    return chain
