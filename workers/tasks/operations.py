"""Scheduled operations: water daily deduction, rent and fees, apportionment, monthly bills.

Each task runs hourly and does only what is due: the units of work carry their own keys and
Job rows (``app.domain.jobs``), so a unit that finished is skipped, one that failed is retried,
and a box that was off catches up.  Hourly runs keep the local-day boundaries right for every
property's time zone.  Tasks hold a lock (one run at a time) and declare retries for failures
other than a refusal with a message.
"""

from __future__ import annotations

from huey import crontab

from app.db import db
from app.domain.jobs import run_apportionment, run_bills, run_rent, run_water_daily
from app.models import utcnow
from workers.queue import huey


@huey.periodic_task(crontab(minute="10"), retries=2, retry_delay=120)
@huey.lock_task("operations-water-daily")
def water_daily_task() -> dict:
    """Deduct each finished local day's water (valves close at zero through the command queue)."""
    with db.connection_context():
        return run_water_daily(now=utcnow(), clock=utcnow).as_dict()


@huey.periodic_task(crontab(minute="15"), retries=2, retry_delay=120)
@huey.lock_task("operations-rent")
def rent_task() -> dict:
    """Charge rent and property fees due today."""
    with db.connection_context():
        return run_rent(now=utcnow(), clock=utcnow).as_dict()


@huey.periodic_task(crontab(minute="25"), retries=2, retry_delay=300)
@huey.lock_task("operations-apportionment")
def apportionment_task() -> dict:
    """Post last month's apportionment of every active group."""
    with db.connection_context():
        return run_apportionment(now=utcnow(), clock=utcnow).as_dict()


@huey.periodic_task(crontab(minute="40"), retries=2, retry_delay=300)
@huey.lock_task("operations-bills")
def bills_task() -> dict:
    """Issue last month's bills."""
    with db.connection_context():
        return run_bills(now=utcnow(), clock=utcnow).as_dict()
