"""The scheduler's leases seen from two Jobs instances (two processes) on one database: a long run keeps its lease."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace

from bot.config import Settings
from bot.jobs import Jobs

RUN_SECONDS = 6.0


def jobs_on(sessions) -> Jobs:
    # Only the scheduler settings and the sessions matter here; the built-in jobs are taken out.
    services = SimpleNamespace(settings=Settings(scheduler={"lease_grace_seconds": 1}), sessions=sessions,
                               synthetic=None)
    jobs = Jobs(services)  # type: ignore[arg-type]
    for name in ("expire_tasks", "maintain_trees"):
        jobs.remove(name)
    return jobs


async def test_a_run_longer_than_its_lease_keeps_the_lease_until_it_ends(sessions):
    """A run of 6 s under a lease of 2.2 s (a 1.2 s period plus 1 s grace): without renewal the other
    process would take the expired lease and run the same job beside it."""
    runs: list[tuple[str, float, float]] = []
    loop = asyncio.get_running_loop()
    processes = [jobs_on(sessions), jobs_on(sessions)]

    def slow_job(name: str):
        async def job() -> None:
            start = loop.time()
            await asyncio.sleep(RUN_SECONDS)
            runs.append((name, start, loop.time()))
        return job

    for name, jobs in zip("ab", processes, strict=True):
        jobs.add_interval("slow", slow_job(name), 0.02, first_run=datetime.now(UTC))
        jobs.start()
    try:
        await asyncio.sleep(RUN_SECONDS * 2.5)
    finally:
        for jobs in processes:
            await jobs.stop()
    runs.sort(key=lambda run: run[1])
    assert len(runs) >= 2
    for (_, _, earlier_end), (_, later_start, _) in zip(runs, runs[1:], strict=False):
        assert later_start >= earlier_end, f"two runs of one job overlapped: {runs}"
