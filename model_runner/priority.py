"""The model's compute threads give way to the bot's own threads.

llama.cpp computes on ``n_threads`` threads: the runner's worker thread plus OpenMP helpers. With
every core busy decoding, the event loop thread had to wait for a core: bench/chat.py saw stalls of
100-350 ms, all during llama_decode calls (which run with the GIL released), and none when the
model was idle. The helper threads run at a lower priority (a higher nice value), so the kernel
hands a core to the event loop the moment it wakes. The worker thread itself keeps the normal
priority: it holds the GIL between decodes, and starving it would stall the loop instead.
"""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger(__name__)


def native_threads() -> set[int]:
    """Ids of this process's threads (Linux); empty where /proc is not available."""
    try:
        return {int(tid) for tid in os.listdir("/proc/self/task")}
    except OSError:
        return set()


def lower_priority(tids: set[int], nice: int) -> int:
    """Give the threads ``tids`` the nice value ``nice`` (never a higher priority); returns how
    many were changed. Python's own threads are left alone."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return 0
    python_threads = {t.native_id for t in threading.enumerate()}
    changed = 0
    for tid in tids - python_threads:
        try:
            if os.getpriority(os.PRIO_PROCESS, tid) < nice:
                os.setpriority(os.PRIO_PROCESS, tid, nice)
                changed += 1
        except OSError as error:  # the thread ended, or the system forbids it: keep going
            log.debug("could not lower the priority of thread %s: %s", tid, error)
    return changed
