"""Periodic work run by the bot's scheduler; each job is a plain coroutine over the services.

Every process schedules every job, and a run first takes the job's lease row in the database
(storage/leases.py): the process holding the lease runs the job each period, the others skip, and
when the holder dies another one takes over once the lease has expired (one period plus
``[scheduler] lease_grace_seconds`` after the holder's last run or renewal; a run renews it every
third of its length). On a single-process SQLite bot the lease is one short write per run that always
succeeds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.services import Services
from storage import db, leases

log = logging.getLogger(__name__)

# A job is one short transaction; at shutdown it gets this long to finish before it is cancelled.
JOB_SHUTDOWN_GRACE_SECONDS = 30


async def expire_tasks(services: Services) -> int:
    expired = await services.labelling.expire_tasks()
    if expired:
        log.info("expired %d stale tasks; their work is offered again", expired)
    return expired


async def maintain_trees(services: Services) -> None:
    report = await services.labelling.maintain_trees()
    log.debug("tree maintenance: %s", report)


async def write_synthetic_reply(services: Services) -> int | None:
    if services.synthetic is None:
        return None
    message_id = await services.synthetic.write_one()
    if message_id is not None:
        log.info("the model wrote synthetic reply %d", message_id)
    return message_id


class Jobs:
    """The scheduler and the jobs it runs; `stop()` lets running jobs finish their transaction."""

    def __init__(self, services: Services, *, holder: str | None = None) -> None:
        self.services = services
        self.scheduler = AsyncIOScheduler(timezone="UTC")
        self._running: set[asyncio.Future[Any]] = set()
        intervals = services.settings.scheduler
        self.holder = holder or leases.new_holder_id()
        self.lease_grace = timedelta(seconds=intervals.lease_grace_seconds)
        self._add(expire_tasks, intervals.expire_tasks_minutes)
        self._add(maintain_trees, intervals.tree_maintenance_minutes)
        if services.synthetic is not None:
            self._add(write_synthetic_reply, intervals.synthetic_reply_minutes)

    def _add(self, job: Callable[[Services], Awaitable[Any]], minutes: float) -> None:
        # The first run happens at start-up (unless another live process holds the job's lease), so work
        # left by downtime (expired tasks, finished trees) moves on at once.
        self.add_interval(job.__name__, lambda: job(self.services), minutes, first_run=datetime.now(UTC))

    def add_interval(self, job_id: str, job: Callable[[], Awaitable[Any]], minutes: float, *,
                     first_run: datetime) -> None:
        """Run ``job`` every ``minutes`` from ``first_run`` while this process holds the job's lease; a job
        with the same id is replaced."""
        lease_ttl = timedelta(minutes=minutes) + self.lease_grace

        async def run() -> None:
            task = asyncio.current_task()
            assert task is not None
            self._running.add(task)
            try:
                now = datetime.now(UTC)
                if not await leases.take_lease(self.services.sessions, job_id, self.holder, lease_ttl, now=now):
                    log.debug("job %s skipped: another process holds its lease", job_id, extra={"job": job_id})
                    return
                log.debug("job %s runs in %s", job_id, self.holder, extra={
                    "job": job_id, "holder": self.holder, "lease_from": now.isoformat(),
                    "lease_until": (now + lease_ttl).isoformat()})
                renewal = asyncio.create_task(self._keep_lease(job_id, lease_ttl))
                try:
                    await job()
                finally:
                    renewal.cancel()
            except Exception as error:
                if not db.is_unavailable(error):
                    log.exception("job %s failed; it runs again at its next time", job_id)
                else:  # not a bug: one line, not a traceback per run while the database is away
                    log.warning("job %s failed, the database is unavailable (%s); it runs again at its next time",
                                job_id, db.describe_error(error))
            finally:
                self._running.discard(task)

        self.scheduler.add_job(
            run, "interval", minutes=minutes, id=job_id, name=job_id, max_instances=1, coalesce=True,
            next_run_time=first_run, replace_existing=True,
        )

    async def _keep_lease(self, job_id: str, lease_ttl: timedelta) -> None:
        """Renew the lease while a run lasts longer than a third of it: a slow run (a large tree maintenance,
        a database that was busy) must not let another process start the same job beside it."""
        while True:
            await asyncio.sleep(lease_ttl.total_seconds() / 3)
            try:
                if not await leases.take_lease(self.services.sessions, job_id, self.holder, lease_ttl):
                    log.warning("job %s lost its lease during a run", job_id, extra={"job": job_id})
                    return
            except Exception as error:  # the database is away: the run itself will fail or wait too
                log.warning("could not renew the lease of job %s: %s", job_id, db.describe_error(error),
                            extra={"job": job_id})

    def remove(self, job_id: str) -> None:
        if self.scheduler.get_job(job_id) is not None:
            self.scheduler.remove_job(job_id)

    def start(self) -> None:
        self.scheduler.start()

    async def stop(self) -> None:
        if not self.scheduler.running:
            return
        self.scheduler.pause()
        if self._running:
            await asyncio.wait(set(self._running), timeout=JOB_SHUTDOWN_GRACE_SECONDS)
        self.scheduler.shutdown(wait=False)
        # Another process takes the jobs over at its next run rather than after the leases expire.
        try:
            await leases.release_leases(self.services.sessions, self.holder)
        except Exception:
            log.exception("could not release the job leases; they expire by themselves")
