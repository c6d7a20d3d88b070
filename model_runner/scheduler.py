"""What the next llama_decode holds: the next token of every generating reply, or a share of the
prompts still being read.

The two kinds alternate while both wait, and are never mixed in one call: with a KV window per
sequence, llama.cpp splits a batch into micro-batches holding equally many tokens of each
sequence, and a batch of one-token sequences plus a prompt chunk was measured to run many times
slower than the same work as two calls. For the same reason the prompts being read all advance
by the same number of tokens in one call: eight users who arrive together are read together, so
none waits behind the other seven prompts and their first tokens (the old schedule read one
prompt per step, shortest first, and the last of eight waited 1.5-1.7 single replies).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

# Prompt tokens read per step while others are generating: big enough for efficient batched
# prompt reading on a CPU, small enough that the others' next token is held up well under a
# second (Discord edits are throttled to about one a second anyway).
PREFILL_WHILE_GENERATING = 256


class Work(Protocol):
    pending: list[int]  # tokens still to feed (the prompt's unread part, or the last sampled token)
    n_generated: int


W = TypeVar("W", bound=Work)


def plan_step(active: Sequence[W], *, n_batch: int, decoded_last: bool) -> tuple[list[tuple[W, int]], bool]:
    """The jobs and token counts of the next decode, and whether it is a generation step."""
    decoding = [j for j in active if j.n_generated > 0]
    reading = [j for j in active if j.n_generated == 0 and j.pending]
    if reading and (not decoding or decoded_last):
        budget = n_batch if not decoding else min(n_batch, PREFILL_WHILE_GENERATING)
        # The shortest prompts first when not all fit; each gets the same share, at most what the
        # shortest still needs, so it finishes this step and its user gets a first token soonest.
        reading.sort(key=lambda j: len(j.pending))
        reading = reading[:budget]
        share = min(budget // len(reading), len(reading[0].pending))
        return [(j, share) for j in reading], False
    return [(j, 1) for j in decoding], True
