"""The one wall clock, and the property's local time.

Storage is naive UTC in whole seconds. Business time — days, months, TOU segments, quiet
hours, report ranges, schedules — is the property's local time (``Property.timezone``,
``Asia/Shanghai`` unless set otherwise). Every read of the wall clock in the product is
``utcnow()``; everything else here is a pure function of its arguments, so a caller captures
``now`` once and passes it down.

``where`` arguments take a Property (anything with a ``timezone`` attribute), a ``ZoneInfo``
or a zone name; ``None`` means the box's default zone (configuration ``TIMEZONE``).
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC = dt.UTC
DEFAULT_ZONE = "Asia/Shanghai"
_default_zone_name = DEFAULT_ZONE

Where = Any  # Property | ZoneInfo | str | None


def utcnow() -> dt.datetime:
    """Now as naive UTC, whole seconds: the same value on SQLite and MySQL."""
    return dt.datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def set_default_zone(name: str | None) -> None:
    """The zone used where no property is at hand (from configuration ``TIMEZONE``)."""
    global _default_zone_name
    _default_zone_name = name or DEFAULT_ZONE


def default_zone() -> ZoneInfo:
    return zone_named(_default_zone_name)


@functools.lru_cache(maxsize=64)
def zone_named(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def is_zone(name: str) -> bool:
    try:
        zone_named(str(name or ""))
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def zone(where: Where = None) -> ZoneInfo:
    """The time zone of a property, a zone name, or the box default."""
    if where is None:
        return default_zone()
    if isinstance(where, ZoneInfo):
        return where
    if isinstance(where, str):
        return zone_named(where) if where else default_zone()
    name = getattr(where, "timezone", None)
    return zone_named(name) if name else default_zone()


def local(when: dt.datetime, where: Where = None) -> dt.datetime:
    """A stored (naive UTC) or aware time as an aware local time of ``where``."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(zone(where))


def local_naive(when: dt.datetime, where: Where = None) -> dt.datetime:
    """The local wall-clock time of ``when``, without its offset (for arithmetic on the day)."""
    return local(when, where).replace(tzinfo=None)


def to_utc(when: dt.datetime, where: Where = None) -> dt.datetime:
    """A local time (naive = the wall clock of ``where``; aware = its own offset) as naive UTC."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone(where))
    return when.astimezone(UTC).replace(tzinfo=None)


def iso(when: dt.datetime | None, where: Where = None) -> str | None:
    """ISO 8601 with the local offset, e.g. ``2027-01-01T00:30:00+08:00``."""
    return None if when is None else local(when, where).isoformat()


def parse_iso(text: str, where: Where = None) -> dt.datetime:
    """An ISO 8601 time as naive UTC; without an offset it is read as ``where``'s local time.

    Raises ValueError for text that is not such a time."""
    return to_utc(dt.datetime.fromisoformat(str(text).strip()), where)


def site_today(where: Where, now: dt.datetime) -> dt.date:
    """The local calendar day at ``now`` (naive UTC)."""
    return local(now, where).date()


def local_date(when: dt.datetime, where: Where = None) -> dt.date:
    """The local calendar day of a stored time."""
    return local(when, where).date()


def local_midnight(where: Where, day: dt.date) -> dt.datetime:
    """The start of local ``day`` as naive UTC."""
    return at_local(where, day, dt.time(0, 0))


def at_local(where: Where, day: dt.date, time: dt.time) -> dt.datetime:
    """Local ``day`` at wall-clock ``time`` as naive UTC."""
    return to_utc(dt.datetime.combine(day, time), where)


def day_bounds(where: Where, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[local midnight of ``day``, local midnight of the next day) as naive UTC."""
    return local_midnight(where, day), local_midnight(where, day + dt.timedelta(days=1))


def month_key(year: int, month: int) -> int:
    return year * 100 + month


def month_of_day(day: dt.date) -> int:
    return month_key(day.year, day.month)


def month_of(when: dt.datetime, where: Where = None) -> int:
    """The local month (YYYYMM) of a stored time."""
    d = local(when, where)
    return month_key(d.year, d.month)


def next_month(month: int) -> int:
    y, m = divmod(month, 100)
    return month_key(y + 1, 1) if m == 12 else month_key(y, m + 1)


def previous_month(month: int) -> int:
    y, m = divmod(month, 100)
    return month_key(y - 1, 12) if m == 1 else month_key(y, m - 1)


def first_day(month: int) -> dt.date:
    return dt.date(month // 100, month % 100, 1)


def month_bounds(where: Where, month: int | dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[first local midnight of ``month``, first local midnight of the next) as naive UTC.

    ``month`` is YYYYMM or any day of the month."""
    if isinstance(month, dt.date):
        month = month_of_day(month)
    return (
        local_midnight(where, first_day(month)),
        local_midnight(where, first_day(next_month(month))),
    )


def next_local_time(where: Where, now: dt.datetime, time: dt.time) -> dt.datetime:
    """The first instant at or after ``now`` (naive UTC) when the local clock reads ``time``."""
    day = site_today(where, now)
    for offset in range(3):
        candidate = at_local(where, day + dt.timedelta(days=offset), time)
        if candidate >= now:
            return candidate
    raise AssertionError("unreachable: a local time recurs every day")
