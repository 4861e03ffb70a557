"""The figures of the overview page (项目总览): takings, usage, devices, balances to watch.

Read-only.  Everything here is a handful of aggregate queries on indexes or on the daily
usage rollup (``app.domain.usage``), never a scan of raw readings, so the page stays fast
with 10,000 meters and years of readings.

Takings for a period are the amounts of the sales made in it less the amounts of the sales
reversed in it (by the time of the reversal): what the cash accounts of the ledger received
over the period.  Days and months are local to the property time zone.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from peewee import JOIN, fn

from app import clock
from app.models import (
    Account,
    Gateway,
    LedgerAccount,
    Meter,
    MonthlyUsage,
    Property,
    Room,
    Sale,
    SiteDailyUsage,
    Tenant,
)

LIST_LIMIT = 20
TOP = 10
UTC = dt.UTC


@dataclass
class Overview:
    today: dt.date
    takings_today: int = 0
    takings_month: int = 0
    takings_to_date: int = 0
    # [(first day of month, takings)], oldest first, the current month last.
    months: list[tuple[dt.date, int]] = field(default_factory=list)
    # [(day, electricity 0.01 kWh, water litres)], oldest first.
    usage: list[tuple[dt.date, int, int]] = field(default_factory=list)
    top_electricity: list[dict] = field(default_factory=list)
    top_water: list[dict] = field(default_factory=list)
    meters_online: int = 0
    meters_offline: int = 0
    gateways_online: int = 0
    gateways_offline: int = 0
    low_balance: list[dict] = field(default_factory=list)
    low_balance_count: int = 0
    arrears: list[dict] = field(default_factory=list)
    arrears_count: int = 0


def zone_groups(properties: list[int] | None = None) -> dict[ZoneInfo, list[int]]:
    """The properties (``None``: all) grouped by their time zone."""
    query = Property.select(Property.id, Property.timezone).order_by(Property.id)
    if properties is not None:
        query = query.where(Property.id.in_(properties or [0]))
    groups: dict[ZoneInfo, list[int]] = {}
    for pid, name in query.tuples():
        groups.setdefault(clock.zone(name), []).append(pid)
    return groups


def _in(field, properties: list[int] | None):
    """A condition limiting rows to some properties (``None``: every property)."""
    return True if properties is None else field.in_(properties or [0])


def takings(
    start: dt.datetime | None, end: dt.datetime, properties: list[int] | None = None
) -> int:
    """Sales made in [start, end) less sales reversed in it (naive UTC; ``start`` None: ever)."""
    scope = _in(Sale.property, properties)
    sold = Sale.select(fn.COALESCE(fn.SUM(Sale.amount_fen), 0)).where(
        (Sale.created_at < end) & scope
    )
    back = Sale.select(fn.COALESCE(fn.SUM(Sale.amount_fen), 0)).where(
        (Sale.reversed_at < end) & scope
    )
    if start is not None:
        sold = sold.where(Sale.created_at >= start)
        back = back.where(Sale.reversed_at >= start)
    return int(sold.scalar() or 0) - int(back.scalar() or 0)


def _month_starts(today: dt.date, n: int) -> list[dt.date]:
    y, m = today.year, today.month
    out = []
    for _ in range(n):
        out.append(dt.date(y, m, 1))
        y, m = (y, m - 1) if m > 1 else (y - 1, 12)
    return out[::-1]


def monthly_takings(
    *, months: int = 12, now: dt.datetime, properties: list[int] | None = None
) -> list[tuple[dt.date, int]]:
    """Takings of the last ``months`` local months, each property by its own zone's months
    (keyed by the first day of the month), the current month last."""
    totals: dict[dt.date, int] = {}
    for zone, ids in zone_groups(properties).items():
        starts = _month_starts(clock.site_today(zone, now), months)
        bounds = [clock.local_midnight(zone, d) for d in starts] + [now + dt.timedelta(seconds=1)]
        for i, d in enumerate(starts):
            totals[d] = totals.get(d, 0) + takings(bounds[i], bounds[i + 1], ids)
    return sorted(totals.items())[-months:] if totals else []


def local_takings(*, now: dt.datetime, month: bool, properties: list[int] | None = None) -> int:
    """Takings since the start of each property's local day (or ``month``) up to ``now``."""
    total = 0
    for zone, ids in zone_groups(properties).items():
        today = clock.site_today(zone, now)
        start = clock.local_midnight(zone, today.replace(day=1) if month else today)
        total += takings(start, now + dt.timedelta(seconds=1), ids)
    return total


def daily_usage(
    today: dt.date, days: int = 30, properties: list[int] | None = None
) -> list[tuple[dt.date, int, int]]:
    first = today - dt.timedelta(days=days - 1)
    q = (
        SiteDailyUsage.select(
            SiteDailyUsage.day, SiteDailyUsage.utility, fn.SUM(SiteDailyUsage.units)
        )
        .where(SiteDailyUsage.day.between(first, today) & _in(SiteDailyUsage.property, properties))
        .group_by(SiteDailyUsage.day, SiteDailyUsage.utility)
    )
    sums: dict[tuple[dt.date, str], int] = {}
    for day, utility, units in q.tuples():
        if isinstance(day, str):
            day = dt.date.fromisoformat(day)
        sums[(day, utility)] = int(units or 0)
    out = []
    for i in range(days):
        d = first + dt.timedelta(days=i)
        out.append((d, sums.get((d, "electricity"), 0), sums.get((d, "water"), 0)))
    return out


def top_consumers(
    month: int, utility: str, limit: int = TOP, properties: list[int] | None = None
) -> list[dict]:
    """The meters that used most in a local month (YYYYMM), with who they serve."""
    where = (MonthlyUsage.month == month) & (MonthlyUsage.utility == utility)
    if properties is not None:
        where &= MonthlyUsage.meter.in_(
            Meter.select(Meter.id).where(Meter.property.in_(properties or [0]))
        )
    ranked = list(
        MonthlyUsage.select(MonthlyUsage.meter, MonthlyUsage.units)
        .where(where)
        .order_by(MonthlyUsage.units.desc(), MonthlyUsage.meter)
        .limit(limit)
        .tuples()
    )
    if not ranked:
        return []
    ids = [m for m, _ in ranked]
    info = {
        row["id"]: row
        for row in Meter.select(
            Meter.id,
            Meter.serial,
            Account.id.alias("account_id"),
            Account.number.alias("account_number"),
            Tenant.name.alias("tenant"),
            Room.number.alias("room"),
        )
        .join(Account, JOIN.LEFT_OUTER)
        .join(Tenant, JOIN.LEFT_OUTER)
        .switch(Meter)
        .join(Room, JOIN.LEFT_OUTER)
        .where(Meter.id.in_(ids))
        .dicts()
    }
    return [{**info[m], "units": int(units)} for m, units in ranked if m in info]


def _accounts_in(
    statuses: tuple[str, ...], limit: int = LIST_LIMIT, properties: list[int] | None = None
) -> tuple[list[dict], int]:
    where = Account.status.in_(statuses) & _in(Account.property, properties)
    base = Account.select().where(where)
    count = base.count()
    rows = list(
        Account.select(
            Account.id,
            Account.number,
            Account.status,
            Tenant.name.alias("tenant"),
            Room.number.alias("room"),
            LedgerAccount.balance_fen.alias("balance_fen"),
        )
        .join(Tenant)
        .switch(Account)
        .join(LedgerAccount)
        .switch(Account)
        .join(Room, JOIN.LEFT_OUTER)
        .where(where)
        .order_by(LedgerAccount.balance_fen, Account.number)
        .limit(limit)
        .dicts()
    )
    return rows, count


def _online_counts(model, where) -> tuple[int, int]:
    counts = dict(
        model.select(model.online, fn.COUNT(model.id)).where(where).group_by(model.online).tuples()
    )
    online = sum(n for k, n in counts.items() if k)
    offline = sum(n for k, n in counts.items() if not k)
    return online, offline


def build_overview(
    *,
    now: dt.datetime,
    money: bool,
    zone: ZoneInfo | str | None = None,
    properties: list[int] | None = None,
) -> Overview:
    """The overview as of ``now`` (naive UTC).  Takings are computed only when ``money``;
    ``properties`` limits every figure to those properties (``None``: all).  Each property's
    takings count by its own local day and month; ``zone`` is the one the page's "today"
    (and the usage chart's days) is shown in."""
    p = properties
    today = clock.site_today(zone, now)
    ov = Overview(today=today)
    if money:
        ov.takings_today = local_takings(now=now, month=False, properties=p)
        ov.takings_month = local_takings(now=now, month=True, properties=p)
        ov.takings_to_date = takings(None, now + dt.timedelta(seconds=1), p)
        ov.months = monthly_takings(now=now, properties=p)
    ov.usage = daily_usage(today, properties=p)
    ov.top_electricity = top_consumers(clock.month_of_day(today), "electricity", properties=p)
    ov.top_water = top_consumers(clock.month_of_day(today), "water", properties=p)
    ov.meters_online, ov.meters_offline = _online_counts(
        Meter, (Meter.status == "active") & _in(Meter.property, p)
    )
    ov.gateways_online, ov.gateways_offline = _online_counts(
        Gateway, (Gateway.enabled == True) & _in(Gateway.property, p)
    )
    ov.low_balance, ov.low_balance_count = _accounts_in(("alarm1", "alarm2"), properties=p)
    ov.arrears, ov.arrears_count = _accounts_in(("arrears",), properties=p)
    return ov
