"""One scheduler across processes: a periodic job runs in the process holding its lease row, once per
period however many processes run, and moves to another process when its holder dies."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from emulator import Emulator
from storage import db
from storage.leases import release_leases, take_lease
from storage.models import JobLease
from tests.faults.shard_cluster import (
    BotProcess,
    config_text,
    fresh_database,
    holder_pid,
    needs_postgres,
    ready_shards,
    start_bot_process,
)

PERIOD_SECONDS = 3.0
GRACE_SECONDS = 2.0
JOBS = ("expire_tasks", "maintain_trees")


async def test_a_lease_has_one_holder_until_it_expires_or_is_released(sessions):
    start = datetime(2026, 1, 1, tzinfo=UTC)
    ttl = timedelta(seconds=10)
    assert await take_lease(sessions, "job", "a", ttl, now=start)
    assert not await take_lease(sessions, "job", "b", ttl, now=start + timedelta(seconds=9))
    # The holder renews its own lease at its next run.
    assert await take_lease(sessions, "job", "a", ttl, now=start + timedelta(seconds=9))
    assert not await take_lease(sessions, "job", "b", ttl, now=start + timedelta(seconds=18))
    # Its holder gone, the lease expires and another takes it; the old holder is refused from then on.
    assert await take_lease(sessions, "job", "b", ttl, now=start + timedelta(seconds=19))
    assert not await take_lease(sessions, "job", "a", ttl, now=start + timedelta(seconds=20))
    # Other jobs have leases of their own.
    assert await take_lease(sessions, "other", "a", ttl, now=start + timedelta(seconds=20))
    # A clean shutdown hands b's leases over at once.
    assert await release_leases(sessions, "b", now=start + timedelta(seconds=21)) == 1
    assert await take_lease(sessions, "job", "a", ttl, now=start + timedelta(seconds=21))
    async with sessions() as session:
        rows = {row.name: (row.holder, row.expires_at) for row in await session.scalars(select(JobLease))}
    assert rows == {"job": ("a", start + timedelta(seconds=31)), "other": ("a", start + timedelta(seconds=30))}


@needs_postgres
async def test_two_processes_racing_for_a_lease_on_postgresql_never_both_win():
    async with fresh_database() as url:
        engines = [db.create_engine(url) for _ in range(2)]
        await db.upgrade(engines[0])
        factories = [db.session_factory(engine) for engine in engines]
        ttl = timedelta(seconds=5)
        start = datetime.now(UTC)
        try:
            for round_number in range(40):
                # Every round the previous lease has just expired: both contenders may take it, one does.
                now = start + round_number * ttl
                won = await asyncio.gather(*(take_lease(f, "job", f"holder{i}", ttl, now=now)
                                             for i, f in enumerate(factories)))
                assert sorted(won) == [False, True], f"round {round_number}: {won}"
        finally:
            for engine in engines:
                await engine.dispose()


def runs(process: BotProcess, job: str) -> list[tuple[datetime, datetime, str]]:
    """(lease from, lease until, holder) of each run of a job in the process's log."""
    return [(datetime.fromisoformat(e["lease_from"]), datetime.fromisoformat(e["lease_until"]), e["holder"])
            for e in process.log() if e.get("job") == job and "lease_from" in e]


def assert_never_two_holders_at_once(all_runs: list[tuple[datetime, datetime, str]]) -> None:
    """A run whose holder differs from the previous run's started only after that lease expired."""
    ordered = sorted(all_runs)
    for before, after in zip(ordered, ordered[1:], strict=False):
        if before[2] != after[2]:
            assert after[0] >= before[1], f"{after[2]} ran at {after[0]} inside {before[2]}'s lease until {before[1]}"


async def eventually(check, *, within: float, what: str) -> None:
    try:
        async with asyncio.timeout(within):
            while not check():  # noqa: ASYNC110  (log files have no change event to wait on)
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(f"not within {within} s: {what}") from None


@needs_postgres
async def test_two_bot_processes_run_each_job_once_per_period_and_take_over_from_a_killed_one():
    emu = Emulator(shards=2)
    await emu.start()
    workdir = Path(tempfile.mkdtemp(prefix="oabot-scheduler-"))
    processes: list[BotProcess] = []
    scheduler = (f"[scheduler]\nexpire_tasks_minutes = {PERIOD_SECONDS / 60}\n"
                 f"tree_maintenance_minutes = {PERIOD_SECONDS / 60}\nlease_grace_seconds = {GRACE_SECONDS}\n")
    try:
        for shard in range(2):
            await emu.create_guild(f"Shard {shard}", shard=shard)
        async with fresh_database() as url:
            # Both start together on an empty database: one upgrades the schema, the other waits for it.
            for shard in range(2):
                config = config_text(emu, url, shard_ids=[shard], shard_count=2, extra=scheduler)
                processes.append(await start_bot_process(f"shard{shard}", workdir, config, emu.token))
            await emu.wait_for(lambda: ready_shards(emu) == {(0, 2), (1, 2)}, timeout=120, what="both shards")

            # Both alive: each job runs in one process per period; the other tries and is refused.
            window_start = datetime.now(UTC)
            await asyncio.sleep(6 * PERIOD_SECONDS)
            window_end = datetime.now(UTC)
            for job in JOBS:
                both = [run for p in processes for run in runs(p, job)]
                assert_never_two_holders_at_once(both)
                in_window = [run for run in both if window_start <= run[0] <= window_end]
                periods = (window_end - window_start).total_seconds() / PERIOD_SECONDS
                # Scheduler ticks can run late but never twice: at most one run per period started in
                # the window (plus one late tick from before it). Two schedulers would give twice as many.
                assert 2 <= len(in_window) <= periods + 2, (job, len(in_window), periods)
                assert any(f"job {job} skipped" in message for p in processes
                           for _, message in p.messages("job ")), "the second process never tried"

            # kill -9 the holder of expire_tasks: the survivor takes its jobs over once the leases expire.
            engine = db.create_engine(url)
            async with db.session_factory(engine)() as session:
                holder = (await session.get(JobLease, "expire_tasks")).holder
            await engine.dispose()
            [victim] = [p for p in processes if p.pid == holder_pid(holder)]
            [survivor] = [p for p in processes if p is not victim]
            victim.kill()
            await victim.process.wait()
            killed_at = datetime.now(UTC)
            for job in JOBS:
                await eventually(lambda job=job: sum(run[0] > killed_at for run in runs(survivor, job)) >= 2,
                                 within=60, what=f"{survivor.name} running {job}")
                both = [run for p in processes for run in runs(p, job)]
                assert_never_two_holders_at_once(both)
                last_of_victim = max((run for run in runs(victim, job)), default=None)
                first_after = min(run for run in runs(survivor, job) if run[0] > killed_at)
                if last_of_victim is not None:
                    assert first_after[0] >= last_of_victim[1]
            assert survivor.problems() == []

            # A clean stop hands the survivor's leases over at once.
            assert await survivor.stop() == 0
            engine = db.create_engine(url)
            async with db.session_factory(engine)() as session:
                rows = list(await session.scalars(select(JobLease)))
            await engine.dispose()
            stopped_at = datetime.now(UTC)
            assert {row.name for row in rows} >= set(JOBS)
            assert all(row.expires_at <= stopped_at for row in rows if holder_pid(row.holder) == survivor.pid)
    finally:
        for process in processes:
            if process.process.returncode is None:
                process.kill()
                await process.process.wait()
        await emu.stop()
