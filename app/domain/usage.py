"""Daily usage rollups: units and rated charges per meter per local day.

``DailyUsage`` rows are added to in the same transaction that stores and rates readings
(``add_usage``, called by ``app.domain.readings``), set-based: one upsert per few hundred
(meter, day) pairs, never a query per reading.  A reading's interval counts on the local day
(property time zone) of the reading that closes it.  Only consumption that was rated counts:
``accepted`` and ``released`` readings (baselines, held, tamper and out-of-order readings
carry no consumption into the rollup).

``rebuild_usage`` recomputes the rows from the readings themselves, for a repair or after
loading readings by other means; it gives the same rows as the incremental path.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from zoneinfo import ZoneInfo

from app.db import write_tx
from app.domain.actors import Actor
from app.domain.audit import audit
from app.models import DailyUsage, Meter, Property, Reading

COUNTED = ("accepted", "released")
UTC = dt.UTC


def local_day(read_at: dt.datetime, zone: ZoneInfo) -> dt.date:
    """The local date of a naive-UTC time."""
    return read_at.replace(tzinfo=UTC).astimezone(zone).date()


def add_usage(items: Iterable[tuple[int, str, dt.date, int, int]]) -> int:
    """Add ``(meter_id, utility, day, units, charge_fen)`` items to the rollup; items for the
    same meter and day are summed first.  Returns the number of (meter, day) rows touched.
    Runs inside the caller's transaction."""
    sums: dict[tuple[int, dt.date], list] = {}
    for meter_id, utility, day, units, charge in items:
        if not units and not charge:
            continue
        row = sums.get((meter_id, day))
        if row is None:
            sums[(meter_id, day)] = [utility, units, charge]
        else:
            row[1] += units
            row[2] += charge
    rows = [{"meter": m, "day": d, "utility": u, "units": units, "charge_fen": charge}
            for (m, d), (u, units, charge) in sorted(sums.items())]
    DailyUsage.add_many(rows)
    return len(rows)


def _zones() -> dict[int, ZoneInfo]:
    return {p: ZoneInfo(tz) for p, tz in Property.select(Property.id, Property.timezone).tuples()}


def rebuild_usage(*, since: dt.date | None = None, actor: Actor, now: dt.datetime) -> int:
    """Recompute the rollup from the readings (all days, or local days from ``since`` on).
    Returns the number of rows written."""
    actor.require("site.edit")
    zones = _zones()
    meter_info = {m: (p, k) for m, p, k in Meter.select(Meter.id, Meter.property, Meter.kind).tuples()}
    with write_tx():
        delete = DailyUsage.delete()
        query = (Reading.select(Reading.meter, Reading.read_at, Reading.consumption, Reading.charge_fen)
                 .where(Reading.status.in_(COUNTED) & ((Reading.consumption != 0) | (Reading.charge_fen != 0))))
        if since is not None:
            delete = delete.where(DailyUsage.day >= since)
            # A day begins at most 14 hours before UTC midnight anywhere; filter exactly below.
            query = query.where(Reading.read_at >= dt.datetime.combine(since, dt.time()) - dt.timedelta(hours=15))
        delete.execute()
        sums: dict[tuple[int, dt.date], list] = defaultdict(lambda: [0, 0])
        for meter_id, read_at, units, charge in query.tuples().iterator():
            if isinstance(read_at, str):
                read_at = dt.datetime.fromisoformat(read_at)
            prop_id, _kind = meter_info[meter_id]
            day = local_day(read_at, zones[prop_id])
            if since is not None and day < since:
                continue
            row = sums[(meter_id, day)]
            row[0] += units
            row[1] += charge
        rows = [{"meter": m, "day": d, "utility": meter_info[m][1], "units": u, "charge_fen": c}
                for (m, d), (u, c) in sorted(sums.items())]
        for i in range(0, len(rows), 500):
            DailyUsage.insert_many(rows[i : i + 500]).execute()
        audit(actor, "usage.rebuild", None, now=now, since=since.isoformat() if since else "", rows=len(rows))
    return len(rows)
