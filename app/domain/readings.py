"""Reading ingestion and rating (``apply_readings``): the hot path from meters to money.

For each meter, readings are taken in time order against the meter's last accepted reading:

- the same meter and timestamp again: a duplicate; the first result is returned, nothing moves;
- older than the last accepted reading: stored as ``out_of_order``, not charged;
- first reading of a meter with no baseline: stored as ``baseline``, not charged;
- register lower than before: a rollover when it fell by more than half the register range
  (999999.99 -> 0.05 kWh), otherwise ``tamper`` (reset or replaced meter): stored, not
  charged, alert raised, and it becomes the new baseline so billing continues from it;
- more consumption than ``max_rate`` x interval allows: ``held`` for review, not charged,
  the baseline stays (a glitch is ignored; a real surge keeps being held until released);
- otherwise ``accepted``: consumption = register delta x multiplier, rated with the tariff
  version in force at the reading's time (per-rate register deltas when the meter reports
  T1..T4 in both readings, else a split of the interval by TOU segments), charged to the
  account's wallet.  The exact charge is an integer numerator; whole fen are charged and the
  remainder is carried on the meter, so the charges of any split of the same consumption
  add up to the same total.

Daily meters (``DAILY_KINDS``: water, whose balance the box deducts once a day) are rated the
same way, but their ``charge_fen`` is only *rated* here: the reading is stored with no ledger
entry, and ``app.domain.water.deduct_water_day`` later posts the day's rated charges in one
entry and links the readings to it.  Because the carry runs per meter, the day's total is
exactly what rating the day's consumption at once would give.

An active meter with no account (a master meter measuring for apportionment) has its
consumption recorded as accepted and is never charged.

A batch posts one ledger entry (one debit leg per wallet, one credit per revenue account)
and writes its rows set-based, so rating 10,000 meters costs a handful of statements.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from peewee import fn

from app.clock import local_date, zone
from app.db import bulk_update, db_time, is_sqlite, write_tx
from app.domain.actors import SYSTEM, Actor
from app.domain.audit import audit
from app.domain.errors import NotFound, ValidationError
from app.domain.ledger import post_entry, system_account
from app.domain.status import refresh_accounts
from app.domain.tariffs import RATES, TariffBook, denominator, rate_interval
from app.domain.usage import COUNTED, add_usage
from app.i18n import tr
from app.models import Account, Event, Meter, Property, Reading

STATE_COLUMNS = (
    "id",
    "account_id",
    "property_id",
    "kind",
    "status",
    "multiplier",
    "register_modulus",
    "max_rate",
    "tariff_id",
    "last_read_at",
    "last_total",
    "last_t1",
    "last_t2",
    "last_t3",
    "last_t4",
    "carry",
    "month_key",
    "month_units",
)

CHUNK = 400
# Meter kinds charged by the daily deduction instead of at reading time.
DAILY_KINDS = frozenset({"water"})
FUTURE_SLACK = dt.timedelta(minutes=10)
STATE_ASSIGNMENTS = [
    "last_read_at = {}",
    "last_total = {}",
    "last_t1 = {}",
    "last_t2 = {}",
    "last_t3 = {}",
    "last_t4 = {}",
    "carry = {}",
    "month_key = {}",
    "month_units = {}",
]


class MeterState:
    """The rating state of one meter, loaded without building full model objects."""

    __slots__ = STATE_COLUMNS

    def __init__(self, row: Sequence) -> None:
        for name, value in zip(STATE_COLUMNS, row, strict=True):
            setattr(self, name, value)
        if isinstance(self.last_read_at, str):
            self.last_read_at = dt.datetime.fromisoformat(self.last_read_at)

    def state_row(self) -> tuple:
        return (
            db_time(self.last_read_at),
            self.last_total,
            self.last_t1,
            self.last_t2,
            self.last_t3,
            self.last_t4,
            self.carry,
            self.month_key,
            self.month_units,
            self.id,
        )


@dataclass
class ReadingIn:
    """One reading as a meter reported it.  ``total``/``t1``..``t4`` are raw registers
    (0.01 kWh or litres) before the multiplier; ``read_at`` is UTC."""

    read_at: dt.datetime
    total: int
    meter_id: int | None = None
    serial: str | None = None
    t1: int | None = None
    t2: int | None = None
    t3: int | None = None
    t4: int | None = None
    source: str = ""


@dataclass
class ReadingResult:
    meter_id: int
    read_at: dt.datetime
    status: str
    consumption: int = 0
    charge_fen: int = 0
    note: str = ""
    duplicate: bool = False
    rate_units: dict[str, int] = field(default_factory=dict)


def _normalise_time(value: object, index: int) -> dt.datetime:
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError(
                tr("reading %(index)s: '%(value)s' is not an ISO time", index=index, value=value),
                f"readings.{index}.read_at",
            ) from None
    if not isinstance(value, dt.datetime):
        raise ValidationError(
            tr("reading %(index)s: a reading needs a time", index=index),
            f"readings.{index}.read_at",
        )
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.replace(microsecond=0)


def _register(value: object, index: int, name: str, *, optional: bool) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(
            tr(
                "reading %(index)s: %(name)s must be a whole, non-negative register value",
                index=index,
                name=name,
            ),
            f"readings.{index}.{name}",
        )
    return value


def validate(items: Sequence[ReadingIn], now: dt.datetime) -> list[ReadingIn]:
    """Check and normalise a batch (times to naive UTC seconds); raise on the first bad item."""
    clean = []
    limit = now + FUTURE_SLACK
    for i, item in enumerate(items):
        read_at = item.read_at
        if type(read_at) is not dt.datetime or read_at.tzinfo is not None or read_at.microsecond:
            read_at = _normalise_time(read_at, i)
        if read_at > limit:
            raise ValidationError(
                tr(
                    "reading %(index)s: the time %(time)s is in the future",
                    index=i,
                    time=read_at.strftime("%Y-%m-%d %H:%M:%S"),
                ),
                f"readings.{i}.read_at",
            )
        if item.meter_id is None and not item.serial:
            raise ValidationError(
                tr("reading %(index)s: name the meter", index=i), f"readings.{i}.meter"
            )
        _register(item.total, i, "total", optional=False)
        for name in ("t1", "t2", "t3", "t4"):
            _register(getattr(item, name), i, name, optional=True)
        clean.append(
            ReadingIn(
                read_at=read_at,
                total=item.total,
                meter_id=item.meter_id,
                serial=item.serial,
                t1=item.t1,
                t2=item.t2,
                t3=item.t3,
                t4=item.t4,
                source=(item.source or "")[:20],
            )
        )
    return clean


class _Rater:
    """Rates readings against in-memory meter state; no I/O."""

    def __init__(
        self,
        meters: dict[int, MeterState],
        accounts: dict[int, tuple[int | None, int | None]],
        zones: dict[int, ZoneInfo],
    ):
        self.meters = meters
        self.accounts = accounts  # account id -> (electricity tariff, water tariff)
        self.zones = zones
        tariff_ids = [m.tariff_id for m in meters.values()]
        for pair in accounts.values():
            tariff_ids += list(pair)
        self.book = TariffBook(tariff_ids)

    def tariff_id(self, m: MeterState) -> int | None:
        if m.tariff_id:
            return m.tariff_id
        pair = self.accounts.get(m.account_id)
        if pair is None:
            return None
        return pair[0] if m.kind == "electricity" else pair[1]

    def rate(self, m: MeterState, r: ReadingIn, *, trust_jump: bool = False) -> ReadingResult:
        res = ReadingResult(meter_id=m.id, read_at=r.read_at, status="accepted")
        if m.status != "active":
            res.status, res.note = "ignored", "meter not in service"
            return res
        if m.last_read_at is None or m.last_total is None:
            res.status = "baseline"
            self._advance(m, r)
            return res
        if r.read_at <= m.last_read_at:
            res.status, res.note = (
                "out_of_order",
                f"older than the reading of {m.last_read_at:%Y-%m-%d %H:%M:%S}",
            )
            return res
        delta = r.total - m.last_total
        if delta < 0:
            if m.last_total - r.total > m.register_modulus // 2:
                delta += m.register_modulus
                res.note = "register rollover"
            else:
                res.status = "tamper"
                res.note = f"register fell from {m.last_total} to {r.total}"
                self._advance(m, r)
                return res
        units = delta * m.multiplier
        seconds = int((r.read_at - m.last_read_at).total_seconds())
        per_hour_div = 36000 if m.kind == "electricity" else 3600  # W -> 0.01 kWh; L/h -> L
        allowed = m.max_rate * seconds // per_hour_div + m.multiplier
        if units > allowed and not trust_jump:
            res.status = "held"
            res.consumption = units
            res.note = f"{units} units in {seconds} s is above the plausible {allowed}"
            return res
        if m.account_id is None:
            # A measuring-only meter (an apportionment master): consumption, no charge.
            res.consumption = units
            if trust_jump:
                res.status = "released"
            self._advance(m, r)
            return res
        tariff_id = self.tariff_id(m)
        spec = self.book.spec_at(tariff_id, r.read_at) if tariff_id else None
        if spec is None:
            res.status = "held"
            res.consumption = units
            res.note = "no tariff in force for this meter at the reading's time"
            return res
        rate_units = None
        prev = (m.last_t1, m.last_t2, m.last_t3, m.last_t4)
        cur = (r.t1, r.t2, r.t3, r.t4)
        if all(v is not None for v in prev + cur):
            deltas = [c - p for c, p in zip(cur, prev, strict=True)]  # type: ignore[operator]
            if all(d >= 0 for d in deltas):
                rate_units = {rate: d * m.multiplier for rate, d in zip(RATES, deltas, strict=True)}
        num, per_rate, month_state = rate_interval(
            self.book.kinds[tariff_id],
            spec,
            self.book.utilities[tariff_id],
            units=units,
            start=m.last_read_at,
            end=r.read_at,
            tz=self.zones[m.property_id],
            rate_units=rate_units,
            month_state=(m.month_key, m.month_units),
        )
        total_num = m.carry + num
        den = denominator(m.kind)
        res.charge_fen, carry = divmod(total_num, den)
        res.consumption = units
        res.rate_units = per_rate
        if trust_jump:
            res.status = "released"
        self._advance(m, r)
        m.carry = carry
        m.month_key, m.month_units = month_state
        return res

    @staticmethod
    def _advance(m: MeterState, r: ReadingIn) -> None:
        m.last_read_at = r.read_at
        m.last_total = r.total
        m.last_t1, m.last_t2, m.last_t3, m.last_t4 = r.t1, r.t2, r.t3, r.t4


def _chunks(seq: Sequence, size: int = CHUNK) -> Iterable[Sequence]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


def _load(meter_ids: Sequence[int]):
    """Meter states (locked on MySQL), account tariffs and property time zones."""
    meters: dict[int, MeterState] = {}
    columns = [
        getattr(Meter, c if c not in ("account_id", "property_id", "tariff_id") else c[:-3])
        for c in STATE_COLUMNS
    ]
    for chunk in _chunks(meter_ids):
        q = Meter.select(*columns).where(Meter.id.in_(list(chunk)))
        if not is_sqlite():
            q = q.order_by(Meter.id).for_update()
        for row in q.tuples():
            meters[row[0]] = MeterState(row)
    acct_ids = sorted({m.account_id for m in meters.values() if m.account_id})
    accounts: dict[int, tuple[int | None, int | None]] = {}
    for chunk in _chunks(acct_ids):
        q = Account.select(Account.id, Account.tariff_electricity, Account.tariff_water).where(
            Account.id.in_(list(chunk))
        )
        accounts.update((a, (te, tw)) for a, te, tw in q.tuples())
    prop_ids = {m.property_id for m in meters.values()}
    zones = {
        p: zone(tz)
        for p, tz in Property.select(Property.id, Property.timezone)
        .where(Property.id.in_(list(prop_ids)))
        .tuples()
    }
    return meters, accounts, zones


def _resolve_serials(items: list[ReadingIn]) -> None:
    serials = sorted({i.serial for i in items if i.meter_id is None and i.serial})
    found: dict[str, int] = {}
    for chunk in _chunks(serials):
        found.update(
            Meter.select(Meter.serial, Meter.id).where(Meter.serial.in_(list(chunk))).tuples()
        )
    for idx, item in enumerate(items):
        if item.meter_id is None:
            if item.serial not in found:
                raise NotFound(
                    tr(
                        "reading %(index)s: no meter with serial '%(serial)s'",
                        index=idx,
                        serial=item.serial,
                    ),
                    f"readings.{idx}.serial",
                )
            item.meter_id = found[item.serial]


def _existing(items: list[ReadingIn]) -> dict[tuple[int, dt.datetime], Reading]:
    by_meter: dict[int, set[dt.datetime]] = defaultdict(set)
    for item in items:
        by_meter[item.meter_id].add(item.read_at)  # type: ignore[index]
    times = sorted({t for ts in by_meter.values() for t in ts})
    out: dict[tuple[int, dt.datetime], Reading] = {}
    ids = sorted(by_meter)
    for chunk in _chunks(ids):
        for tchunk in _chunks(times, 200):
            q = Reading.select().where(
                Reading.meter.in_(list(chunk)) & Reading.read_at.in_(list(tchunk))
            )
            for r in q:
                out[(r.meter_id, r.read_at)] = r
    return out


def _result_from_row(row: Reading) -> ReadingResult:
    return ReadingResult(
        meter_id=row.meter_id,
        read_at=row.read_at,
        status=row.status,
        consumption=row.consumption,
        charge_fen=row.charge_fen,
        note=row.note,
        duplicate=True,
        rate_units=json.loads(row.rate_units) if row.rate_units else {},
    )


def apply_readings(
    items: Sequence[ReadingIn], *, actor: Actor, now: dt.datetime
) -> list[ReadingResult]:
    """Store and rate a batch of readings; returns one result per input, in input order.

    Invalid input (a negative register, a time in the future, an unknown meter) refuses the
    whole batch with a message naming the reading; nothing is written.
    """
    if actor.role != "system":
        actor.require("reading.write")
    clean = validate(items, now)
    if not clean:
        return []
    # Serials are resolved before the transaction: on MariaDB the first plain read of a
    # transaction fixes its snapshot, which must come after _load has locked the meters, or a
    # concurrent batch of the same readings would be missed by _existing and inserted twice.
    _resolve_serials(clean)
    with write_tx():
        meter_ids = sorted({i.meter_id for i in clean})  # type: ignore[type-var]
        meters, accounts, zones = _load(meter_ids)  # type: ignore[arg-type]
        missing = [mid for mid in meter_ids if mid not in meters]
        if missing:
            raise NotFound(tr("no meter with id %(id)s", id=missing[0]), "meter_id")
        seen = _existing(clean)
        rater = _Rater(meters, accounts, zones)
        order = sorted(range(len(clean)), key=lambda i: (clean[i].meter_id, clean[i].read_at))
        results: list[ReadingResult | None] = [None] * len(clean)
        batch_first: dict[tuple[int, dt.datetime], int] = {}
        touched: set[int] = set()
        new_rows: list[tuple[ReadingIn, ReadingResult]] = []
        for i in order:
            item = clean[i]
            key = (item.meter_id, item.read_at)
            if key in seen:
                results[i] = _result_from_row(seen[key])
                continue
            if key in batch_first:
                first = results[batch_first[key]]
                results[i] = ReadingResult(**{**first.__dict__, "duplicate": True})  # type: ignore[union-attr]
                continue
            m = meters[item.meter_id]  # type: ignore[index]
            res = rater.rate(m, item)
            results[i] = res
            batch_first[key] = i
            new_rows.append((item, res))
            if res.status in ("accepted", "baseline", "tamper"):
                touched.add(m.id)
        _write(new_rows, meters, touched, zones, actor=actor, now=now)
    return results  # type: ignore[return-value]


def _post_charges(
    pairs: list[tuple[ReadingIn, ReadingResult]],
    meters: dict[int, MeterState],
    *,
    actor: Actor,
    now: dt.datetime,
    memo: str,
):
    """One entry for all charges of a batch.  Returns (entry or None, accounts charged).
    Readings of daily meters are left for the daily deduction."""
    wallets: dict[int, int] = defaultdict(int)
    revenue: dict[tuple[int, str], int] = defaultdict(int)
    for _, res in pairs:
        m = meters[res.meter_id]
        if res.charge_fen and m.kind not in DAILY_KINDS:
            wallets[m.account_id] += res.charge_fen
            revenue[(m.property_id, m.kind)] += res.charge_fen
    if not wallets:
        return None, set()
    wallet_of: dict[int, int] = {}
    for chunk in _chunks(sorted(wallets)):
        q = Account.select(Account.id, Account.wallet).where(Account.id.in_(list(chunk)))
        wallet_of.update(q.tuples())
    legs: list[tuple[int, int]] = [(wallet_of[a], fen) for a, fen in wallets.items()]
    for (prop_id, kind), fen in revenue.items():
        legs.append((system_account(prop_id, f"revenue:{kind}").id, -fen))
    entry = post_entry("charge", legs, actor=actor.name, now=now, memo=memo)
    return entry, set(wallets)


def _usage_items(
    pairs: list[tuple[ReadingIn, ReadingResult]],
    meters: dict[int, MeterState],
    zones: dict[int, ZoneInfo],
):
    for item, res in pairs:
        if res.status in COUNTED and (res.consumption or res.charge_fen):
            m = meters[res.meter_id]
            yield (
                m.id,
                m.property_id,
                m.kind,
                local_date(item.read_at, zones[m.property_id]),
                res.consumption,
                res.charge_fen,
            )


def _write(
    pairs: list[tuple[ReadingIn, ReadingResult]],
    meters: dict[int, MeterState],
    touched: set[int],
    zones: dict[int, ZoneInfo],
    *,
    actor: Actor,
    now: dt.datetime,
) -> None:
    if not pairs:
        return
    entry, charged_accounts = _post_charges(
        pairs, meters, actor=actor, now=now, memo=f"energy charges for {len(pairs)} readings"
    )
    rows = []
    events = []
    for item, res in pairs:
        rows.append(
            {
                "meter": res.meter_id,
                "read_at": item.read_at,
                "total": item.total,
                "t1": item.t1,
                "t2": item.t2,
                "t3": item.t3,
                "t4": item.t4,
                "status": res.status,
                "consumption": res.consumption,
                "charge_fen": res.charge_fen,
                "rate_units": json.dumps(res.rate_units, sort_keys=True) if res.rate_units else "",
                "entry": entry.id
                if (
                    entry is not None
                    and res.charge_fen
                    and meters[res.meter_id].kind not in DAILY_KINDS
                )
                else None,
                "source": item.source,
                "note": res.note[:200],
                "created_at": now,
            }
        )
        if res.status in ("tamper", "held"):
            m = meters[res.meter_id]
            events.append(
                {
                    "kind": f"reading.{res.status}",
                    "property": m.property_id,
                    "account": m.account_id,
                    "meter": m.id,
                    "created_at": now,
                    "data": json.dumps(
                        {"read_at": item.read_at.isoformat(), "total": item.total, "note": res.note}
                    ),
                }
            )
    for chunk in _chunks(rows, 200):
        Reading.insert_many(list(chunk)).execute()
    if events:
        Event.insert_many(events).execute()
    add_usage(_usage_items(pairs, meters, zones))
    bulk_update(
        "meter", "id", STATE_ASSIGNMENTS, [meters[mid].state_row() for mid in sorted(touched)]
    )
    if charged_accounts:
        refresh_accounts(charged_accounts, now=now)


def apply_reading(
    meter: Meter | int,
    *,
    read_at: dt.datetime,
    total: int,
    actor: Actor,
    now: dt.datetime,
    t1: int | None = None,
    t2: int | None = None,
    t3: int | None = None,
    t4: int | None = None,
    source: str = "",
) -> ReadingResult:
    meter_id = meter if isinstance(meter, int) else meter.id
    return apply_readings(
        [
            ReadingIn(
                meter_id=meter_id,
                read_at=read_at,
                total=total,
                t1=t1,
                t2=t2,
                t3=t3,
                t4=t4,
                source=source,
            )
        ],
        actor=actor,
        now=now,
    )[0]


def release_held_reading(
    reading: Reading, *, actor: Actor, now: dt.datetime, reason: str
) -> ReadingResult:
    """Accept a held reading after review and charge it (staff judged the consumption real)."""
    actor.require("reading.review")
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError(tr("say why the held reading is accepted"), "reason")
    with write_tx():
        row = Reading.get_by_id(reading.id)
        if row.status != "held":
            raise ValidationError(tr("only a held reading can be released"), "reading")
        meters, accounts, zones = _load([row.meter_id])
        m = meters[row.meter_id]
        if m.last_read_at is not None and row.read_at <= m.last_read_at:
            raise ValidationError(
                tr("a later reading was accepted since; this one can no longer be charged"),
                "reading",
            )
        item = ReadingIn(
            meter_id=m.id,
            read_at=row.read_at,
            total=row.total,
            t1=row.t1,
            t2=row.t2,
            t3=row.t3,
            t4=row.t4,
        )
        res = _Rater(meters, accounts, zones).rate(m, item, trust_jump=True)
        if res.status != "released":
            raise ValidationError(
                tr("the reading still cannot be charged: %(note)s", note=res.note), "reading"
            )
        entry, charged = _post_charges(
            [(item, res)], meters, actor=actor, now=now, memo=f"released reading {row.id}: {reason}"
        )
        Reading.update(
            status="released",
            consumption=res.consumption,
            charge_fen=res.charge_fen,
            rate_units=json.dumps(res.rate_units, sort_keys=True),
            entry=entry.id if entry else None,
            note=reason[:200],
        ).where(Reading.id == row.id).execute()
        bulk_update("meter", "id", STATE_ASSIGNMENTS, [m.state_row()])
        add_usage(_usage_items([(item, res)], meters, zones))
        refresh_accounts(charged, now=now)
        audit(actor, "reading.release", row, now=now, reason=reason, charge_fen=res.charge_fen)
    return res


# ---------------------------------------------------------------- review of held readings

# Readings waiting for a person: an implausible jump (held, not charged) or a register that
# went backwards (tamper: the baseline moved on, nothing to charge).
REVIEW_STATUSES = ("held", "tamper")


def review_queue(property_ids: Iterable[int] | None = None):
    """Readings waiting for review, oldest first, with their meters (``None``: every
    property)."""
    query = (
        Reading.select(Reading, Meter)
        .join(Meter)
        .where(Reading.status.in_(REVIEW_STATUSES))
        .order_by(Reading.read_at, Reading.id)
    )
    if property_ids is not None:
        query = query.where(Meter.property.in_(sorted(property_ids) or [0]))
    return query


def dismiss_reading(reading: Reading, *, actor: Actor, now: dt.datetime, reason: str) -> Reading:
    """Close a reading waiting for review without charging it: a held jump judged a glitch
    becomes ``rejected``; a register fall explained (a meter swap, a reset) becomes
    ``reviewed``.  Audited with the reason."""
    actor.require("reading.review")
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError(tr("say why the reading is not charged"), "reason")
    with write_tx():
        row = Reading.get_by_id(reading.id)
        if row.status not in REVIEW_STATUSES:
            raise ValidationError(tr("this reading is not waiting for review"), "reading")
        status = "rejected" if row.status == "held" else "reviewed"
        Reading.update(status=status, note=reason[:200]).where(
            (Reading.id == row.id) & (Reading.status == row.status)
        ).execute()
        audit(
            actor,
            "reading.reject" if status == "rejected" else "reading.review",
            row,
            now=now,
            reason=reason,
            was=row.status,
        )
    return Reading.get_by_id(row.id)


def alert_long_held(*, now: dt.datetime, days: int, actor: Actor = SYSTEM) -> int:
    """A staff alert (event ``reading.held_long``) for each meter whose oldest reading waiting
    for review has waited more than ``days`` days; once per meter while it keeps waiting.
    Returns the number of alerts raised."""
    cutoff = now - dt.timedelta(days=days)
    oldest = (
        Reading.select(Reading.meter, fn.MIN(Reading.created_at).alias("since"))
        .where(Reading.status.in_(REVIEW_STATUSES))
        .group_by(Reading.meter)
        .having(fn.MIN(Reading.created_at) <= cutoff)
        .tuples()
    )
    raised = 0
    with write_tx():
        for meter_id, since in oldest:
            if isinstance(since, str):
                since = dt.datetime.fromisoformat(since)
            already = Event.select().where(
                (Event.kind == "reading.held_long")
                & (Event.meter == meter_id)
                & (Event.created_at >= since)
            )
            if already.exists():
                continue
            m = Meter.get_by_id(meter_id)
            waiting = review_queue().where(Reading.meter == meter_id).count()
            Event.create(
                kind="reading.held_long",
                property=m.property_id,
                account=m.account_id,
                meter=m.id,
                created_at=now,
                data=json.dumps({"waiting": waiting, "since": since.isoformat(), "days": days}),
            )
            raised += 1
        if raised:
            audit(actor, "reading.held_alert", None, now=now, meters=raised, days=days)
    return raised
