"""The sweep: work whose worker died is queued again.

Huey drops a task from its queue when a consumer takes it, so a task whose consumer is killed
is gone; the database rows (batch runs) say what was in progress.  The sweep runs when the
periodic consumer starts and then every minute.
"""

from __future__ import annotations

from huey import crontab

from app.clock import utcnow
from app.db import db
from app.domain.batch import requeue_abandoned
from workers.queue import huey
from workers.tasks.batch import run_batch_task


def sweep() -> dict[str, list[int]]:
    """Queue again every batch run whose worker is gone; returns what was queued."""
    with db.connection_context():
        batches = requeue_abandoned(now=utcnow())
    for run_id in batches:
        run_batch_task(run_id)
    return {"batches": batches}


@huey.task()
def sweep_task() -> dict[str, list[int]]:
    """The sweep queued by a consumer as it starts."""
    return sweep()


@huey.periodic_task(crontab(minute="*"))
@huey.lock_task("sweep")
def sweep_periodic_task() -> dict[str, list[int]]:
    """The sweep, every minute: catches a worker that died while the consumer kept running."""
    return sweep()
