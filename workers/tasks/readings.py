"""Readings arriving from collectors and integrations."""

from __future__ import annotations

import datetime as dt

from huey import crontab

from app.config import load_config
from app.db import db
from app.domain.actors import SYSTEM
from app.domain.readings import ReadingIn, alert_long_held, apply_readings
from app.models import utcnow
from workers.queue import huey


@huey.task(retries=3, retry_delay=10)
def ingest_readings(rows: list[dict]) -> dict[str, int]:
    """Rate a batch of readings (dicts of ReadingIn fields; read_at ISO strings).  Safe to
    retry: readings are idempotent on meter + timestamp."""
    items = [
        ReadingIn(
            **{
                **row,
                "read_at": dt.datetime.fromisoformat(row["read_at"])
                if isinstance(row["read_at"], str)
                else row["read_at"],
            }
        )
        for row in rows
    ]
    with db.connection_context():
        results = apply_readings(items, actor=SYSTEM, now=utcnow())
    counts: dict[str, int] = {}
    for res in results:
        key = "duplicate" if res.duplicate else res.status
        counts[key] = counts.get(key, 0) + 1
    return counts


@huey.periodic_task(crontab(minute="50"))
@huey.lock_task("held-readings-alert")
def held_readings_alert_task() -> int:
    """Hourly: a staff alert for each meter whose reading has waited for review longer than
    HELD_ALERT_DAYS days."""
    days = int(load_config().get("HELD_ALERT_DAYS") or 3)
    with db.connection_context():
        return alert_long_held(now=utcnow(), days=days)
