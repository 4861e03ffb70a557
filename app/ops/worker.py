"""The task consumer as ``meterdesk worker`` (and the ``meterdesk-worker`` unit) runs it.

It is huey's own consumer over ``workers.huey`` with three additions for an appliance:

- exactly one consumer per box runs the periodic tasks (collection, backups, ledger check):
  it holds the ``worker`` run lock, and a second one refuses to start; consumers started
  with ``periodic=False`` (extra capacity on a Redis queue) hold a lock of their own so
  that ``backup restore`` still sees them;
- the periodic consumer flushes task locks left behind by a crash (``lock_task`` would
  otherwise skip that task for ever);
- the periodic consumer queues a sweep as it starts: work whose worker was killed (a power cut,
  the OOM killer) is queued again (``workers.tasks.sweep``);
- SIGINT (the unit's stop signal) finishes running tasks, at most ``shutdown_timeout``
  seconds, before exiting; SIGTERM stops at once; logs go to stderr (the journal).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from app.ops import runlock

SHUTDOWN_TIMEOUT_S = 60


class WorkerError(RuntimeError):
    """The consumer cannot start; the message says why."""


def run_worker(config: Mapping[str, Any], *, workers: int = 2, periodic: bool = True) -> None:
    """Run the consumer until it is told to stop."""
    from workers import huey

    if huey.immediate:
        raise WorkerError(
            "the task queue is in immediate mode (MD_HUEY_IMMEDIATE): there is "
            "nothing for a consumer to do"
        )
    if workers < 1:
        raise WorkerError("--workers must be at least 1")
    name = "worker" if periodic else f"worker-{os.getpid()}"
    try:
        lock = runlock.acquire(config["STATE_DIR"], name)
    except runlock.AlreadyRunning as exc:
        raise WorkerError(
            f"{exc}: only one consumer per box runs the periodic tasks; start "
            "more with --no-periodic"
        ) from None
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    consumer = huey.create_consumer(
        workers=workers,
        worker_type="thread",
        periodic=periodic,
        flush_locks=periodic,
        check_worker_health=True,
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
    )
    if periodic:
        from workers.tasks.sweep import sweep_task

        sweep_task()
    try:
        consumer.run()
    finally:
        lock.release()
