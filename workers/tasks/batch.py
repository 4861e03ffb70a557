"""Batch actions on many meters, run in the background; progress lives on the BatchRun row."""

from __future__ import annotations

from app.db import db
from app.domain.batch import fail_batch, run_batch
from app.models import utcnow
from workers.queue import huey


@huey.task(retries=2, retry_delay=10, context=True)
def run_batch_task(run_id: int, task=None) -> dict[str, int]:
    """Carry a batch run to its end; a retry carries on where the last attempt stopped, and
    the run is marked failed only when no retry is left."""
    with db.connection_context():
        try:
            run = run_batch(run_id, now=utcnow(), clock=utcnow)
        except Exception as exc:
            if task is None or not task.retries:
                fail_batch(run_id, f"{type(exc).__name__}: {exc}", now=utcnow())
            raise
        return {"done": run.done, "failed": run.failed}
