"""The sequences of one llama.cpp context and the saved states of conversations not live in one.

An idle sequence keeps the conversation it last served, so that conversation's next turn only
reads its new tokens. When a sequence is needed for another conversation, its state is saved with
``llama_state_seq_get_data`` into the byte-bounded StateCache and restored with
``llama_state_seq_set_data`` when the conversation comes back. Reuse is always checked token by
token, so a key never makes a wrong prefix count.
"""

from __future__ import annotations

import ctypes
import itertools
import mmap
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .state_cache import StateCache


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


@dataclass(eq=False)
class Slot:
    """One sequence of the context: the tokens its KV cells hold, and whom it serves."""

    seq_id: int
    tokens: list[int] = field(default_factory=list)
    key: Hashable | None = None
    last_used: int = 0
    busy: bool = False


def state_buffer(size: int) -> Any:
    """A ctypes byte array of ``size`` in an anonymous memory map. A conversation's state is
    100 MB and more; a mapping's pages are zeroed by the kernel when llama.cpp first writes them
    (with the GIL released), where allocating it as a Python or ctypes object would zero or copy
    it while holding the GIL and stall every other thread, the event loop included."""
    return (ctypes.c_uint8 * size).from_buffer(mmap.mmap(-1, max(size, 1)))


class Sequences:
    """Hands out the context's sequences; only the runner's worker thread uses it."""

    def __init__(self, lc: Any, ctx: Any, n_seq: int, state_cache: StateCache) -> None:
        self._lc = lc
        self._ctx = ctx
        self._mem = lc.llama_get_memory(ctx)
        self.slots = [Slot(seq_id=i) for i in range(n_seq)]
        self.state_cache = state_cache
        self._clock = itertools.count(1)

    @property
    def live_conversations(self) -> int:
        return sum(1 for s in self.slots if s.key is not None)

    def acquire(self, key: Hashable | None, prompt: list[int]) -> tuple[Slot, int]:
        """An idle sequence for this prompt and how many of its leading tokens it already holds.

        The conversation's own sequence if it is live; else its saved state restored into the
        emptiest / least recently used sequence; else the sequence sharing the longest prefix
        (e.g. the same system prompt). The last prompt token is always left to evaluate: its
        logits are what the first reply token is sampled from."""
        slot = self._pick(key, prompt)
        slot.busy = True
        slot.key = key
        slot.last_used = next(self._clock)
        keep = common_prefix_len(slot.tokens, prompt[:-1])
        if keep < len(slot.tokens):
            if not self._lc.llama_memory_seq_rm(self._mem, slot.seq_id, keep, -1):
                # Some memories (recurrent, sliding-window) cannot drop a tail: start over.
                self._lc.llama_memory_seq_rm(self._mem, slot.seq_id, -1, -1)
                keep = 0
            del slot.tokens[keep:]
        return slot, keep

    def release(self, slot: Slot) -> None:
        slot.busy = False
        slot.last_used = next(self._clock)

    def forget(self, slot: Slot) -> None:
        """The sequence's cells are unknown (a failed decode): empty it."""
        self._lc.llama_memory_seq_rm(self._mem, slot.seq_id, -1, -1)
        slot.tokens = []
        slot.key = None

    def _pick(self, key: Hashable | None, prompt: list[int]) -> Slot:
        idle = [s for s in self.slots if not s.busy]
        if key is not None:
            for s in idle:
                if s.key == key:
                    return s
        saved = self.state_cache.take(key) if key is not None else None
        if saved is not None:
            # Empty sequences first, then the least recently used one.
            victim = min(idle, key=lambda s: (bool(s.tokens), s.last_used))
        else:
            victim = max(idle, key=lambda s: (common_prefix_len(s.tokens, prompt), not s.tokens, -s.last_used))
        self._save(victim)
        if saved is not None:
            self._lc.llama_memory_seq_rm(self._mem, victim.seq_id, -1, -1)
            victim.tokens = []
            if self._lc.llama_state_seq_set_data(self._ctx, saved.blob, len(saved.blob), victim.seq_id):
                victim.tokens = list(saved.tokens)
            else:  # the saved state did not fit back: start cold rather than fail the chat
                self._lc.llama_memory_seq_rm(self._mem, victim.seq_id, -1, -1)
        return victim

    def _save(self, slot: Slot) -> None:
        """Keep the conversation a sequence holds in the state cache before it serves another."""
        key, slot.key = slot.key, None
        if key is None or not slot.tokens or self.state_cache.capacity_bytes <= 0:
            return
        lc = self._lc
        size = lc.llama_state_seq_get_size(self._ctx, slot.seq_id)
        if size + 8 * len(slot.tokens) > self.state_cache.capacity_bytes:
            return
        blob = state_buffer(size)
        if lc.llama_state_seq_get_data(self._ctx, blob, size, slot.seq_id) == size:
            self.state_cache.put(key, slot.tokens, blob)
