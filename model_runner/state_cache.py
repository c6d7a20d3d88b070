"""Saved KV states of recent conversations, least recently used first out, bounded by bytes."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SavedState:
    tokens: tuple[int, ...]  # the tokens whose keys/values the blob holds, in order
    blob: bytes | bytearray | memoryview  # llama_state_seq_get_data output

    @property
    def nbytes(self) -> int:
        # The token list costs about 8 bytes per entry on top of the blob (tuple slot + small int).
        return len(self.blob) + 8 * len(self.tokens)


class StateCache:
    """Not thread-safe: only the model worker thread uses it."""

    def __init__(self, capacity_bytes: int) -> None:
        if capacity_bytes < 0:
            raise ValueError("capacity_bytes must be >= 0")
        self.capacity_bytes = capacity_bytes
        self._entries: OrderedDict[Hashable, SavedState] = OrderedDict()
        self.nbytes = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def keys(self) -> list[Hashable]:
        return list(self._entries)

    def put(self, key: Hashable, tokens: Sequence[int], blob: bytes | bytearray | memoryview) -> bool:
        """Store (replacing any older state of ``key``); False if it alone exceeds the budget."""
        self.discard(key)
        state = SavedState(tuple(tokens), blob)
        if state.nbytes > self.capacity_bytes:
            return False
        self._entries[key] = state
        self.nbytes += state.nbytes
        while self.nbytes > self.capacity_bytes:
            _, old = self._entries.popitem(last=False)
            self.nbytes -= old.nbytes
            self.evictions += 1
        return True

    def take(self, key: Hashable) -> SavedState | None:
        """Remove and return the state of ``key`` (it is about to live in the model again)."""
        state = self._entries.pop(key, None)
        if state is not None:
            self.nbytes -= state.nbytes
        return state

    def discard(self, key: Hashable) -> None:
        self.take(key)

    def clear(self) -> None:
        self._entries.clear()
        self.nbytes = 0
