"""Discord snowflake ids: 42 bits of milliseconds since the Discord epoch, then worker and sequence bits."""

from __future__ import annotations

import threading
import time

DISCORD_EPOCH_MS = 1420070400000


class SnowflakeFactory:
    """Hands out strictly increasing snowflakes, so ordering by id is ordering by creation (as on Discord)."""

    def __init__(self, worker: int = 1) -> None:
        self._worker = worker & 0x1F
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
            candidate = (ms << 22) | (self._worker << 17)
            # Several ids in one millisecond: bump the low bits instead of waiting.
            self._last = max(candidate, self._last + 1)
            return self._last


def snowflake_time_ms(snowflake: int) -> int:
    return (int(snowflake) >> 22) + DISCORD_EPOCH_MS
