"""Tariffs: their specs, the compliance cap, effective-dated versions and rating.

Prices are integers in 1/10000 yuan per kWh (electricity) or per m3 (water).  Consumption
is in the meter's unit after the multiplier: 0.01 kWh for electricity, litres for water.
A charge is therefore first an exact integer *numerator* over ``denominator(utility)``
(10000 for electricity, 100000 for water) fen; the reading code turns numerators into fen,
carrying the remainder per meter so that no sub-fen is lost or invented.

Spec JSON by kind:
  flat:   {"price": 6500}
  tou:    {"prices": {"sharp": 12000, "peak": 9800, "flat": 6500, "valley": 3200},
           "segments": [{"start": "00:00", "rate": "valley"}, {"start": "08:00", "rate": "flat"},
                        ...]}   each segment runs until the next one's start (the last to 24:00)
  tiered: {"blocks": [{"upto": 200, "price": 5600}, {"upto": 400, "price": 6100},
                      {"upto": null, "price": 8600}]}   upto: kWh or m3 per calendar month
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from app.clock import local_naive
from app.db import write_tx
from app.domain.actors import Actor
from app.domain.audit import audit
from app.domain.errors import ValidationError
from app.domain.money import format_price
from app.domain.rounding import split_largest_remainder
from app.i18n import tr
from app.models import Account, Meter, Property, Tariff, TariffVersion

RATES = ("sharp", "peak", "flat", "valley")  # meter registers T1..T4 in this order
KINDS = ("flat", "tou", "tiered")
UTILITIES = ("electricity", "water")
UNITS_PER = {"electricity": 100, "water": 1000}  # meter units per kWh / per m3
CAP_PERCENT = 115  # catalog price + 15 % (2022 resale rule)


def denominator(utility: str) -> int:
    """units x price / denominator = fen."""
    return UNITS_PER[utility] * 100


# ---------------------------------------------------------------- spec validation


def _minute(text: Any, field: str) -> int:
    try:
        hh, mm = str(text).split(":")
        h, m = int(hh), int(mm)
    except ValueError:
        raise ValidationError(
            tr("'%(text)s' is not a time of day HH:MM", text=text), field
        ) from None
    if not (0 <= h < 24 and 0 <= m < 60):
        raise ValidationError(tr("'%(text)s' is not a time of day HH:MM", text=text), field)
    return h * 60 + m


def _price(value: Any, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValidationError(tr("a price is a positive integer in 1/10000 yuan"), field)
    if value > 100_000:
        raise ValidationError(tr("a price above 10 yuan per unit is not plausible"), field)
    return value


def validate_spec(kind: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """Return a normalised copy of ``spec`` or raise ValidationError."""
    if kind not in KINDS:
        raise ValidationError(tr("unknown tariff kind '%(kind)s'", kind=kind), "kind")
    if not isinstance(spec, Mapping):
        raise ValidationError(tr("the tariff specification must be an object"), "spec")
    if kind == "flat":
        return {"price": _price(spec.get("price"), "price")}
    if kind == "tou":
        prices = spec.get("prices")
        if not isinstance(prices, Mapping) or not prices:
            raise ValidationError(tr("a time-of-use tariff needs prices per rate"), "prices")
        clean_prices = {}
        for rate, value in prices.items():
            if rate not in RATES:
                raise ValidationError(
                    tr("unknown rate '%(rate)s' (sharp, peak, flat, valley)", rate=rate), "prices"
                )
            clean_prices[rate] = _price(value, f"prices.{rate}")
        segs = spec.get("segments")
        if not isinstance(segs, list) or not segs:
            raise ValidationError(tr("a time-of-use tariff needs day segments"), "segments")
        clean_segs = []
        for i, seg in enumerate(segs):
            if not isinstance(seg, Mapping):
                raise ValidationError(tr("each segment has a start and a rate"), f"segments.{i}")
            start = _minute(seg.get("start"), f"segments.{i}.start")
            rate = seg.get("rate")
            if rate not in clean_prices:
                raise ValidationError(
                    tr("segment rate '%(rate)s' has no price", rate=rate), f"segments.{i}.rate"
                )
            clean_segs.append((start, rate))
        clean_segs.sort()
        if clean_segs[0][0] != 0:
            raise ValidationError(tr("the first segment must start at 00:00"), "segments")
        if len({s for s, _ in clean_segs}) != len(clean_segs):
            raise ValidationError(tr("two segments start at the same time"), "segments")
        return {
            "prices": clean_prices,
            "segments": [
                {"start": f"{s // 60:02d}:{s % 60:02d}", "rate": r} for s, r in clean_segs
            ],
        }
    blocks = spec.get("blocks")
    if not isinstance(blocks, list) or not blocks:
        raise ValidationError(tr("a tiered tariff needs blocks"), "blocks")
    clean_blocks = []
    last = 0
    for i, block in enumerate(blocks):
        if not isinstance(block, Mapping):
            raise ValidationError(tr("each block has an upper bound and a price"), f"blocks.{i}")
        upto = block.get("upto")
        price = _price(block.get("price"), f"blocks.{i}.price")
        if upto is None:
            if i != len(blocks) - 1:
                raise ValidationError(
                    tr("only the last block may be open-ended"), f"blocks.{i}.upto"
                )
        elif not isinstance(upto, int) or isinstance(upto, bool) or upto <= last:
            raise ValidationError(tr("block bounds are increasing whole units"), f"blocks.{i}.upto")
        else:
            last = upto
        clean_blocks.append({"upto": upto, "price": price})
    if clean_blocks[-1]["upto"] is not None:
        raise ValidationError(tr("the last block must be open-ended (upto: null)"), "blocks")
    return {"blocks": clean_blocks}


def compliance_problems(
    prop: Property, utility: str, kind: str, spec: Mapping[str, Any]
) -> list[str]:
    """Prices above the catalog price x 1.15 for the property's voltage class.

    Checked: a flat price, every tiered block, and a TOU tariff's flat-period price (sharp and
    peak prices legitimately sit above the flat catalog price by the grid's own TOU ratios).
    Water is checked only where the property has a water catalog price.
    """
    catalog = prop.catalog_price if utility == "electricity" else prop.water_catalog_price
    if not catalog:
        if utility == "electricity":
            return [tr("the property has no catalog price for its voltage class; set it first")]
        return []
    if kind == "flat":
        checked = [(tr("price"), spec["price"])]
    elif kind == "tiered":
        checked = [(tr("block %(n)s", n=i + 1), b["price"]) for i, b in enumerate(spec["blocks"])]
    else:
        checked = [(tr("flat period"), spec["prices"]["flat"])] if "flat" in spec["prices"] else []
    cap = catalog * CAP_PERCENT  # compare price * 100 <= catalog * 115
    # The cap is shown as the highest price (1/10000 yuan) it allows: cap // 100.
    return [
        tr(
            "%(label)s price %(price)s yuan exceeds the cap %(cap)s (catalog %(catalog)s + 15 %%)",
            label=label,
            price=format_price(price),
            cap=format_price(cap // 100),
            catalog=format_price(catalog),
        )
        for label, price in checked
        if price * 100 > cap
    ]


# ---------------------------------------------------------------- writes


def create_tariff(
    prop: Property,
    *,
    name: str,
    utility: str,
    kind: str,
    spec: Mapping[str, Any],
    effective_from: dt.datetime,
    actor: Actor,
    now: dt.datetime,
    override_reason: str = "",
) -> Tariff:
    actor.require("tariff.edit")
    name = (name or "").strip()
    if not name:
        raise ValidationError(tr("a tariff needs a name"), "name")
    if utility not in UTILITIES:
        raise ValidationError(tr("unknown utility '%(utility)s'", utility=utility), "utility")
    clean = validate_spec(kind, spec)
    with write_tx():
        if Tariff.select().where((Tariff.property == prop) & (Tariff.name == name)).exists():
            raise ValidationError(tr("a tariff named '%(name)s' exists already", name=name), "name")
        tariff = Tariff.create(property=prop, name=name, utility=utility, kind=kind, created_at=now)
        _add_version(tariff, prop, clean, effective_from, actor, now, override_reason)
        audit(actor, "tariff.create", tariff, now=now, name=name, kind=kind, utility=utility)
    return tariff


def add_tariff_version(
    tariff: Tariff,
    *,
    spec: Mapping[str, Any],
    effective_from: dt.datetime,
    actor: Actor,
    now: dt.datetime,
    override_reason: str = "",
) -> TariffVersion:
    actor.require("tariff.edit")
    clean = validate_spec(tariff.kind, spec)
    with write_tx():
        exists = TariffVersion.select().where(
            (TariffVersion.tariff == tariff) & (TariffVersion.effective_from == effective_from)
        )
        if exists.exists():
            raise ValidationError(tr("a version with this effective time exists"), "effective_from")
        version = _add_version(
            tariff, tariff.property, clean, effective_from, actor, now, override_reason
        )
    return version


def _add_version(tariff, prop, clean, effective_from, actor, now, override_reason) -> TariffVersion:
    problems = compliance_problems(prop, tariff.utility, tariff.kind, clean)
    override_reason = (override_reason or "").strip()
    if problems:
        if not override_reason:
            raise ValidationError("; ".join(problems), "spec")
        if not actor.can("tariff.override"):
            raise ValidationError(
                tr(
                    "%(problems)s — only an admin may override the cap",
                    problems="; ".join(problems),
                ),
                "override_reason",
            )
    else:
        override_reason = ""
    version = TariffVersion.create(
        tariff=tariff,
        effective_from=effective_from,
        spec=json.dumps(clean, sort_keys=True),
        override_reason=override_reason,
        created_by=actor.name,
        created_at=now,
    )
    audit(
        actor,
        "tariff.version",
        tariff,
        now=now,
        effective_from=effective_from.isoformat(),
        spec=clean,
        override_reason=override_reason,
        problems=problems,
    )
    return version


def assign_tariff(
    tariff: Tariff,
    account_ids: Sequence[int] = (),
    *,
    meter_ids: Sequence[int] = (),
    actor: Actor,
    now: dt.datetime,
) -> dict[str, int]:
    """Put accounts (their electricity or water tariff, by the tariff's utility) and meters
    (their own tariff, which wins over the account's) on ``tariff``.

    Every id must name an open account / a meter in service of the tariff's property, and a
    meter must measure the tariff's utility; otherwise nothing changes.  Returns how many
    accounts and meters changed tariff (those already on it are counted as unchanged).
    """
    actor.require("tariff.edit")
    account_ids = sorted({int(i) for i in account_ids})
    meter_ids = sorted({int(i) for i in meter_ids})
    if not account_ids and not meter_ids:
        raise ValidationError(tr("nothing is selected"), "selection")
    if not tariff.active:
        raise ValidationError(tr("tariff '%(name)s' is not active", name=tariff.name), "tariff")
    column = Account.tariff_electricity if tariff.utility == "electricity" else Account.tariff_water
    with write_tx():
        accounts: list[Account] = []
        for chunk in _chunks(account_ids):
            accounts.extend(Account.select().where(Account.id.in_(chunk)))
        if len(accounts) != len(account_ids):
            raise ValidationError(tr("some selected accounts no longer exist"), "selection")
        for acct in accounts:
            if acct.property_id != tariff.property_id:
                raise ValidationError(
                    tr("account %(number)s belongs to another property", number=acct.number),
                    "selection",
                )
            if acct.status == "closed":
                raise ValidationError(
                    tr("account %(number)s is closed", number=acct.number), "selection"
                )
        meters: list[Meter] = []
        for chunk in _chunks(meter_ids):
            meters.extend(Meter.select().where(Meter.id.in_(chunk)))
        if len(meters) != len(meter_ids):
            raise ValidationError(tr("some selected meters no longer exist"), "selection")
        for meter in meters:
            if meter.property_id != tariff.property_id:
                raise ValidationError(
                    tr("meter %(serial)s belongs to another property", serial=meter.serial),
                    "selection",
                )
            if meter.kind != tariff.utility:
                if tariff.utility == "electricity":
                    raise ValidationError(
                        tr("meter %(serial)s is not an electricity meter", serial=meter.serial),
                        "selection",
                    )
                raise ValidationError(
                    tr("meter %(serial)s is not a water meter", serial=meter.serial), "selection"
                )
            if meter.status == "removed":
                raise ValidationError(
                    tr("meter %(serial)s is removed", serial=meter.serial), "selection"
                )
        accounts_changed = [a for a in accounts if getattr(a, column.name + "_id") != tariff.id]
        meters_changed = [m for m in meters if m.tariff_id != tariff.id]
        for chunk in _chunks([a.id for a in accounts_changed]):
            Account.update({column: tariff.id}).where(Account.id.in_(chunk)).execute()
        for chunk in _chunks([m.id for m in meters_changed]):
            Meter.update(tariff=tariff.id).where(Meter.id.in_(chunk)).execute()
        audit(
            actor,
            "tariff.assign",
            tariff,
            now=now,
            accounts={a.number: getattr(a, column.name + "_id") for a in accounts_changed},
            meters={m.serial: m.tariff_id for m in meters_changed},
            unchanged=len(accounts) - len(accounts_changed) + len(meters) - len(meters_changed),
        )
    return {
        "accounts": len(accounts_changed),
        "meters": len(meters_changed),
        "unchanged": len(accounts) - len(accounts_changed) + len(meters) - len(meters_changed),
    }


def _chunks(ids: Sequence[int], size: int = 500):
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


# ---------------------------------------------------------------- rating


class TariffBook:
    """Every version of the tariffs a rating run needs, loaded once."""

    def __init__(self, tariff_ids):
        self.versions: dict[int, list[tuple[dt.datetime, dict[str, Any]]]] = {}
        self.kinds: dict[int, str] = {}
        self.utilities: dict[int, str] = {}
        ids = [t for t in set(tariff_ids) if t]
        if not ids:
            return
        for t in Tariff.select().where(Tariff.id.in_(ids)):
            self.kinds[t.id] = t.kind
            self.utilities[t.id] = t.utility
            self.versions[t.id] = []
        rows = (
            TariffVersion.select()
            .where(TariffVersion.tariff.in_(ids))
            .order_by(TariffVersion.effective_from)
        )
        for v in rows:
            spec = json.loads(v.spec)
            if "segments" in spec:
                spec["_segs"] = day_segments(spec)
            self.versions[v.tariff_id].append((v.effective_from, spec))

    def spec_at(self, tariff_id: int, when: dt.datetime) -> dict[str, Any] | None:
        """The version in force at ``when`` (the last one effective at or before it)."""
        found = None
        for start, spec in self.versions.get(tariff_id, ()):
            if start <= when:
                found = spec
            else:
                break
        return found


# Rating converts the same reading times again and again: cache the conversion.
_local = functools.lru_cache(maxsize=8192)(local_naive)


def day_segments(spec: Mapping[str, Any]) -> tuple[tuple[int, str], ...]:
    """A TOU spec's segments as ((start minute, rate), ...)."""
    return tuple((_minute(seg["start"], "start"), seg["rate"]) for seg in spec["segments"])


@functools.lru_cache(maxsize=8192)
def tou_seconds(
    start: dt.datetime, end: dt.datetime, segs: tuple[tuple[int, str], ...], tz: ZoneInfo
) -> dict[str, int]:
    """Seconds of [start, end) (naive UTC) spent in each TOU rate, by local wall time.
    (Cached: polling rounds share their timestamps.  Callers must not mutate the result.)"""
    out: dict[str, int] = {}
    cur = _local(start, tz)
    stop = _local(end, tz)
    while cur < stop:
        midnight = dt.datetime(cur.year, cur.month, cur.day)
        minute_of_day = (cur - midnight).seconds // 60
        idx = 0
        for i, (s, _) in enumerate(segs):
            if s <= minute_of_day:
                idx = i
        rate = segs[idx][1]
        next_start = segs[idx + 1][0] if idx + 1 < len(segs) else 24 * 60
        boundary = midnight + dt.timedelta(minutes=next_start)
        piece_end = min(boundary, stop)
        out[rate] = out.get(rate, 0) + int((piece_end - cur).total_seconds())
        cur = piece_end
    return out


def split_by_time(units: int, seconds: Mapping[str, int]) -> dict[str, int]:
    keys = sorted(seconds)
    parts = split_largest_remainder(units, [seconds[k] for k in keys])
    return {k: p for k, p in zip(keys, parts, strict=True) if p}


def month_key(when: dt.datetime, tz: ZoneInfo) -> int:
    local = _local(when, tz)
    return local.year * 100 + local.month


def month_pieces(
    start: dt.datetime, end: dt.datetime, units: int, tz: ZoneInfo
) -> list[tuple[int, int]]:
    """Split ``units`` consumed over [start, end) across local calendar months by time."""
    ls, le = _local(start, tz), _local(end, tz)
    if (ls.year, ls.month) == (le.year, le.month) or le == dt.datetime(le.year, le.month, 1):
        return [(ls.year * 100 + ls.month, units)]
    bounds = []
    cur = ls
    while True:
        nxt = dt.datetime(cur.year + (cur.month == 12), cur.month % 12 + 1, 1)
        piece_end = min(nxt, le)
        bounds.append((cur.year * 100 + cur.month, int((piece_end - cur).total_seconds())))
        if piece_end >= le:
            break
        cur = piece_end
    if len(bounds) == 1:
        return [(bounds[0][0], units)]
    parts = split_largest_remainder(units, [s for _, s in bounds])
    return [(k, p) for (k, _), p in zip(bounds, parts, strict=True)]


def block_numerator(blocks, units_per: int, used_before: int, units: int) -> int:
    """Price ``units`` consumed after ``used_before`` units this month, block by block."""
    num = 0
    pos = used_before
    left = units
    for block in blocks:
        upper = None if block["upto"] is None else block["upto"] * units_per
        if upper is not None and pos >= upper:
            continue
        take = left if upper is None else min(left, upper - pos)
        num += take * block["price"]
        pos += take
        left -= take
        if left == 0:
            break
    return num


def rate_interval(
    kind: str,
    spec: Mapping[str, Any],
    utility: str,
    *,
    units: int,
    start: dt.datetime,
    end: dt.datetime,
    tz: ZoneInfo,
    rate_units: Mapping[str, int] | None,
    month_state: tuple[int, int],
) -> tuple[int, dict[str, int], tuple[int, int]]:
    """Price ``units`` consumed over [start, end).

    Returns (numerator over ``denominator(utility)``, units per rate, new month state).
    ``rate_units`` are per-rate register deltas when the meter has them; otherwise TOU
    consumption is split by time across the day segments.  ``month_state`` is
    (month key YYYYMM, units used so far that month) for tiered pricing.
    """
    pieces = month_pieces(start, end, units, tz)
    mkey, mused = month_state
    tier_num = 0
    for key, piece in pieces:
        if key != mkey:
            mkey, mused = key, 0
        if kind == "tiered":
            tier_num += block_numerator(spec["blocks"], UNITS_PER[utility], mused, piece)
        mused += piece
    if kind == "tiered":
        return tier_num, {"tiered": units}, (mkey, mused)
    if kind == "flat":
        return units * spec["price"], {"flat": units}, (mkey, mused)
    prices = spec["prices"]
    if rate_units is None:
        segs = spec.get("_segs") or day_segments(spec)
        per_rate = split_by_time(units, tou_seconds(start, end, segs, tz))
    else:
        per_rate = {r: u for r, u in rate_units.items() if u}
    # A register rate without a price of its own (e.g. T1 sharp on a three-rate tariff) is
    # charged at the flat price.
    num = sum(
        u * prices.get(rate, prices.get("flat", max(prices.values())))
        for rate, u in per_rate.items()
    )
    return num, per_rate, (mkey, mused)
