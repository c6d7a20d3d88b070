"""A waiting line that is fair across users.

Start-time fair queuing with unit cost: each request gets a *round* one past its user's previous
request, but never earlier than the round being served now. Requests leave in (round, arrival)
order, so a user who queues five requests gets one per round, and a user who arrives later gets
in at the current round, ahead of the burst's remaining ones, instead of waiting behind it.

Thread-safe: callers put from the event loop, the model worker takes from its own thread.
"""

from __future__ import annotations

import bisect
import itertools
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(order=True)
class _Entry(Generic[T]):
    round: int
    seq: int
    user: Hashable = field(compare=False)
    item: T = field(compare=False)


class FairQueue(Generic[T]):
    def __init__(self, on_positions: Callable[[list[T]], None] | None = None) -> None:
        """``on_positions(waiting)`` is called after every change with the waiting items in
        service order, so callers can tell each its place in line."""
        self._cond = threading.Condition()
        self._entries: list[_Entry[T]] = []
        self._last_round: dict[Hashable, int] = {}
        self._current_round = 0
        self._seq = itertools.count()
        self._on_positions = on_positions

    @property
    def condition(self) -> threading.Condition:
        """The lock the worker can wait on for new work together with its own conditions."""
        return self._cond

    def __len__(self) -> int:
        with self._cond:
            return len(self._entries)

    def put(self, item: T, user: Hashable) -> int:
        """Queue ``item`` for ``user``; returns its 1-based position."""
        with self._cond:
            rnd = max(self._current_round, self._last_round.get(user, 0) + 1)
            self._last_round[user] = rnd
            entry = _Entry(rnd, next(self._seq), user, item)
            bisect.insort(self._entries, entry)
            position = self._entries.index(entry) + 1
            self._notify_locked()
            self._cond.notify_all()
        return position

    def pop_nowait(self) -> T | None:
        """The next item in fair order, or None if nobody waits. Call without holding the lock."""
        with self._cond:
            item = self._pop_locked()
            if item is not None:
                self._notify_locked()
        return item

    def _pop_locked(self) -> T | None:
        if not self._entries:
            return None
        entry = self._entries.pop(0)
        self._current_round = entry.round
        self._forget_idle_users()
        return entry.item

    def remove(self, item: T) -> bool:
        """Take a waiting item out (its request was cancelled). False if it is not waiting."""
        with self._cond:
            for i, e in enumerate(self._entries):
                if e.item is item:
                    del self._entries[i]
                    break
            else:
                return False
            self._notify_locked()
            self._cond.notify_all()
        return True

    def waiting(self) -> list[T]:
        with self._cond:
            return [e.item for e in self._entries]

    def _forget_idle_users(self) -> None:
        # A user whose last round is behind the current one gets the current round anyway, so
        # keeping them only grows the dict.
        if len(self._last_round) > 4 * len(self._entries) + 64:
            self._last_round = {u: r for u, r in self._last_round.items() if r >= self._current_round}

    def _notify_locked(self) -> None:
        # Called under the lock so that updates are published in the order the line changed;
        # the callback must only hand the news on (e.g. call_soon_threadsafe), never block.
        if self._on_positions is not None:
            self._on_positions([e.item for e in self._entries])
