"""The sweep: work whose worker died is queued again.

Huey drops a task from its queue when a consumer takes it, so a task whose consumer is killed
is gone; the database rows (batch runs, scheduled jobs, meter commands) say what was in
progress.  The sweep runs when the
periodic consumer starts and then every minute.
"""

from __future__ import annotations

from huey import crontab

from app.clock import utcnow
from app.db import db
from app.domain.batch import requeue_abandoned
from app.domain.control import commands_waiting, release_abandoned_commands
from app.domain.jobs import requeue_jobs, resume_job
from workers.queue import huey
from workers.tasks.batch import run_batch_task
from workers.tasks.collect import collect_task


@huey.task(retries=2, retry_delay=60)
def resume_job_task(job_id: int) -> dict:
    """Run again the unit of work of a job whose worker died."""
    with db.connection_context():
        return resume_job(job_id, now=utcnow(), clock=utcnow).as_dict()


def sweep(*, starting: bool = False) -> dict[str, list[int]]:
    """Queue again every batch run and job whose worker is gone, and send again the commands
    whose sender is gone; returns what was queued.  As the consumer starts, commands already
    due are sent at once too rather than at the next minute's collection."""
    with db.connection_context():
        batches = requeue_abandoned(now=utcnow())
        jobs = requeue_jobs(now=utcnow())
        commands = release_abandoned_commands(now=utcnow())
        collect = bool(commands) or (starting and commands_waiting(now=utcnow()))
    for run_id in batches:
        run_batch_task(run_id)
    for job_id in jobs:
        resume_job_task(job_id)
    if collect:
        collect_task()
    return {"batches": batches, "jobs": jobs, "commands": commands}


@huey.task()
def sweep_task() -> dict[str, list[int]]:
    """The sweep queued by a consumer as it starts."""
    return sweep(starting=True)


@huey.periodic_task(crontab(minute="*"))
@huey.lock_task("sweep")
def sweep_periodic_task() -> dict[str, list[int]]:
    """The sweep, every minute: catches a worker that died while the consumer kept running."""
    return sweep()
