"""Nightly ledger check: a difference becomes a staff alert event."""

from __future__ import annotations

import json

from app.db import db, write_tx
from app.domain.ledger import verify_ledger
from app.models import Event, Property, utcnow
from workers.queue import huey, local_crontab


@huey.periodic_task(local_crontab(minute="17", hour="3"))  # 03:17 on the box's local clock
@huey.lock_task("verify-ledger")
def verify_ledger_task() -> bool:
    with db.connection_context():
        report = verify_ledger()
        if not report.ok:
            now = utcnow()
            with write_tx():
                for prop in Property.select():
                    Event.create(
                        kind="ledger.mismatch",
                        property=prop,
                        created_at=now,
                        data=json.dumps({"problems": report.problems[:50]}, ensure_ascii=False),
                    )
    return report.ok
