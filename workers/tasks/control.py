"""Periodic control upkeep."""

from __future__ import annotations

from huey import crontab

from app.db import db
from app.domain.accounts import expire_keep_power
from app.domain.status import cut_deferred, expire_awaiting
from app.models import utcnow
from workers.queue import huey


@huey.periodic_task(crontab(minute="*"))
@huey.lock_task("expire-keep-power")
def expire_keep_power_task() -> int:
    """Release keep-power whose time is up, so arrears take effect."""
    with db.connection_context():
        return expire_keep_power(now=utcnow())


@huey.periodic_task(crontab(minute="*"))
@huey.lock_task("expire-opening-grace")
def expire_opening_grace_task() -> int:
    """End the opening grace of accounts still awaiting their first payment."""
    with db.connection_context():
        return expire_awaiting(now=utcnow())


@huey.periodic_task(crontab(minute="*"))
@huey.lock_task("deferred-cuts")
def deferred_cuts_task() -> int:
    """Trip the accounts in arrears whose cut waited for the end of the friendly window."""
    with db.connection_context():
        return cut_deferred(now=utcnow())
