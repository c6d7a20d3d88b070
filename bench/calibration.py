"""The speed of this machine right now, printed by every benchmark so figures from different machines
compare: targets in the issues assume calibration_ms = 10 and scale by calibration_ms / 10."""

from __future__ import annotations

import statistics
import time


def calibration_ms() -> float:
    """Median of five timings of sum(range(10**6)), in milliseconds, in this process."""
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        sum(range(10**6))
        timings.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(timings), 2)
