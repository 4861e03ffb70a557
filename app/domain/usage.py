"""Usage rollups: units and rated charges per meter per local day (``DailyUsage``), per meter
per local month (``MonthlyUsage``) and per property per local day and utility
(``SiteDailyUsage``).

The rows are added to in the same transaction that stores and rates readings (``add_usage``,
called by ``app.domain.readings``), set-based: one upsert per few hundred rows of each table,
never a query per reading.  A reading's interval counts on the local day (property time zone)
of the reading that closes it.  Only consumption that was rated counts: ``accepted`` and
``released`` readings (baselines, held, tamper and out-of-order readings carry none).

``rebuild_usage`` recomputes the rows from the readings themselves, for a repair or after
loading readings by other means; it gives the same rows as the incremental path.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from zoneinfo import ZoneInfo

from app import clock
from app.clock import local_date, month_of_day
from app.db import write_tx
from app.domain.actors import Actor
from app.domain.audit import audit
from app.models import DailyUsage, Meter, MonthlyUsage, Property, Reading, SiteDailyUsage

COUNTED = ("accepted", "released")
UTC = dt.UTC
CHUNK = 500

# (meter id, property id, utility, local day, units, charge in fen)
UsageItem = tuple[int, int, str, dt.date, int, int]


DAILY_COLUMNS = ("meter_id", "day", "utility", "units", "charge_fen")
MONTHLY_COLUMNS = ("meter_id", "month", "utility", "units", "charge_fen")
SITE_COLUMNS = ("property_id", "day", "utility", "units", "charge_fen")


def _sum(items: Iterable[UsageItem]):
    """Daily, monthly and per-site rows (tuples in the *_COLUMNS order) from usage items."""
    daily: dict[tuple[int, dt.date], list] = {}
    monthly: dict[tuple[int, int], list] = {}
    site: dict[tuple[int, dt.date, str], list] = {}
    for meter_id, prop_id, utility, day, units, charge in items:
        if not units and not charge:
            continue
        for table, key in ((daily, (meter_id, day)), (monthly, (meter_id, month_of_day(day)))):
            row = table.get(key)
            if row is None:
                table[key] = [utility, units, charge]
            else:
                row[1] += units
                row[2] += charge
        row = site.setdefault((prop_id, day, utility), [0, 0])
        row[0] += units
        row[1] += charge
    return (
        [(m, d, u, n, c) for (m, d), (u, n, c) in sorted(daily.items())],
        [(m, mo, u, n, c) for (m, mo), (u, n, c) in sorted(monthly.items())],
        [(p, d, u, n, c) for (p, d, u), (n, c) in sorted(site.items())],
    )


def add_usage(items: Iterable[UsageItem]) -> int:
    """Add usage items to the rollups (items for the same meter and day are summed first).
    Returns the number of (meter, day) rows touched.  Runs inside the caller's transaction."""
    daily, monthly, site = _sum(items)
    DailyUsage.add_many(DAILY_COLUMNS, ("meter_id", "day"), daily)
    MonthlyUsage.add_many(MONTHLY_COLUMNS, ("meter_id", "month"), monthly)
    SiteDailyUsage.add_many(SITE_COLUMNS, ("property_id", "day", "utility"), site)
    return len(daily)


def _zones() -> dict[int, ZoneInfo]:
    return {p: clock.zone(tz) for p, tz in Property.select(Property.id, Property.timezone).tuples()}


def _insert(model, columns: tuple[str, ...], rows: list[tuple]) -> None:
    fields = [model._meta.columns[c] for c in columns]
    for i in range(0, len(rows), CHUNK):
        model.insert_many(rows[i : i + CHUNK], fields=fields).execute()


def rebuild_usage(*, since: dt.date | None = None, actor: Actor, now: dt.datetime) -> int:
    """Recompute the rollups from the readings: all days, or local days from ``since`` on
    (monthly rows from the first of that month).  Works through the meters a few hundred at a
    time, so memory stays small with years of readings.  Returns the number of daily rows
    written."""
    actor.require("site.edit")
    zones = _zones()
    meters = {m: (p, k) for m, p, k in Meter.select(Meter.id, Meter.property, Meter.kind).tuples()}
    first = since.replace(day=1) if since else None
    written = 0
    with write_tx():
        if since is None:
            for model in (DailyUsage, MonthlyUsage, SiteDailyUsage):
                model.delete().execute()
        else:
            DailyUsage.delete().where(DailyUsage.day >= since).execute()
            MonthlyUsage.delete().where(MonthlyUsage.month >= month_of_day(since)).execute()
            SiteDailyUsage.delete().where(SiteDailyUsage.day >= since).execute()
        site_totals: dict[tuple[int, dt.date, str], list[int]] = {}
        ids = sorted(meters)
        for i in range(0, len(ids), 200):
            query = Reading.select(
                Reading.meter, Reading.read_at, Reading.consumption, Reading.charge_fen
            ).where(
                Reading.meter.in_(ids[i : i + 200])
                & Reading.status.in_(COUNTED)
                & ((Reading.consumption != 0) | (Reading.charge_fen != 0))
            )
            if first is not None:
                # A local day begins at most 14 hours before UTC midnight; filtered exactly below.
                query = query.where(
                    Reading.read_at
                    >= dt.datetime.combine(first, dt.time()) - dt.timedelta(hours=15)
                )

            def items(query=query):
                for meter_id, read_at, units, charge in query.tuples().iterator():
                    if isinstance(read_at, str):
                        read_at = dt.datetime.fromisoformat(read_at)
                    prop_id, kind = meters[meter_id]
                    day = local_date(read_at, zones[prop_id])
                    if first is None or day >= first:
                        yield meter_id, prop_id, kind, day, units, charge

            daily, monthly, site = _sum(items())
            if since is not None:
                daily = [r for r in daily if r[1] >= since]
            _insert(DailyUsage, DAILY_COLUMNS, daily)
            _insert(MonthlyUsage, MONTHLY_COLUMNS, monthly)
            written += len(daily)
            for prop_id, day, utility, units, charge in site:
                if since is None or day >= since:
                    acc = site_totals.setdefault((prop_id, day, utility), [0, 0])
                    acc[0] += units
                    acc[1] += charge
        site_rows = [(p, d, u, n, c) for (p, d, u), (n, c) in sorted(site_totals.items())]
        _insert(SiteDailyUsage, SITE_COLUMNS, site_rows)
        audit(
            actor,
            "usage.rebuild",
            None,
            now=now,
            since=since.isoformat() if since else "",
            rows=written,
        )
    return written
