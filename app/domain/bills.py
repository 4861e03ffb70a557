"""Monthly bills (月度账单): an account's month, computed from the ledger and the readings.

A bill covers one local calendar month of the property.  Money comes from the wallet's ledger
legs by posting time: the opening balance is everything posted before the month, each entry
posted in the month is a line, and the closing balance is the opening plus the lines, so a
bill always reconciles with the ledger::

    opening + sales - electricity - water - apportionment - rent/fees ± reversals ± other
        = closing

A line says what it covers in its memo (the water of 31 October is deducted, and billed, on
1 November; October's apportionment is posted on 1 November).  Usage per meter and per rate
comes from the accepted readings whose ``read_at`` falls in the month, with the charge each
reading was rated at.  The apportionment section lists the parts of the runs posted in the
month with their rule and weights.

Real-time electricity posts an entry per reading batch, so the bill sums those per local day
(one line per day, with the number of entries); every other entry is a line of its own.

Everything a bill is made of is append-only, so computing it again gives the same bill; a
bill's SHA-256 ``digest`` over its canonical JSON proves it.  ``issue_bills`` stores each bill
of a finished month once (``BillSnapshot``) and reports any later regeneration that differs
(only a held reading released after the month can change a past month's usage table).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import defaultdict
from dataclasses import asdict, dataclass

from peewee import fn

from app import clock
from app.db import write_tx
from app.domain.actors import Actor
from app.domain.apportionment import USED, month_label
from app.domain.audit import audit
from app.domain.errors import NotFound, ValidationError
from app.domain.rent import KINDS as FEE_KINDS
from app.i18n import tr
from app.models import Account, Entry, Leg, Meter, Property, Reading, Room, Tenant
from app.models.operations import (
    ApportionmentGroup,
    ApportionmentPart,
    ApportionmentRun,
    BillSnapshot,
)

CATEGORIES = ("sales", "electricity", "water", "apportionment", "fees", "reversals", "other")
DEBITS = ("electricity", "water", "apportionment", "fees")


@dataclass(frozen=True)
class Line:
    """A ledger entry posted to the wallet in the month, or for real-time electricity the
    day's charge entries summed (``entries`` of them, ``at`` is then the local date).
    ``amount_fen`` is the effect on the balance (a credit is positive)."""

    entry_id: int  # the entry, or the day's last one
    at: str  # local time YYYY-MM-DD HH:MM, or the local date of a day's electricity
    kind: str
    category: str
    memo: str
    amount_fen: int
    entries: int = 1


@dataclass(frozen=True)
class MeterUsage:
    meter_id: int
    serial: str
    kind: str
    readings: int
    consumption: int  # 0.01 kWh or litres
    rate_units: dict[str, int]
    rated_fen: int


@dataclass(frozen=True)
class SharedLine:
    """The account's part of an apportionment run posted in the month."""

    run_id: int
    group: str
    month: str
    mode: str
    rule: str
    utility: str
    weight: int
    weight_total: int
    units: int
    amount_fen: int


@dataclass(frozen=True)
class Bill:
    account_id: int
    number: str
    tenant: str
    room: str
    property_name: str
    timezone: str
    month: int
    period_start: str
    period_end: str  # last day, inclusive
    opening_fen: int
    closing_fen: int
    sales_fen: int
    electricity_fen: int
    water_fen: int
    apportionment_fen: int
    fees_fen: int
    reversals_fen: int
    other_fen: int
    lines: tuple[Line, ...]
    meters: tuple[MeterUsage, ...]
    shared: tuple[SharedLine, ...]

    @property
    def month_label(self) -> str:
        return month_label(self.month)

    @property
    def reconciles(self) -> bool:
        return self.closing_fen == (
            self.opening_fen
            + self.sales_fen
            - self.electricity_fen
            - self.water_fen
            - self.apportionment_fen
            - self.fees_fen
            + self.reversals_fen
            + self.other_fen
        )

    def as_dict(self) -> dict:
        return asdict(self)

    def canonical_json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @property
    def digest(self) -> str:
        return digest_of(self.canonical_json())


def digest_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def category(kind: str, key: str | None) -> str:
    """The bill section of a ledger entry."""
    if kind == "sale":
        return "sales"
    if kind == "charge":
        return "water" if (key or "").startswith("water:") else "electricity"
    if kind == "apportionment":
        return "apportionment"
    if kind in FEE_KINDS:
        return "fees"
    if kind == "reversal":
        return "reversals"
    return "other"


def _wallet_sum(wallet_id: int, before: dt.datetime) -> int:
    """The wallet balance from the legs posted before ``before``."""
    total = (
        Leg.select(fn.SUM(Leg.amount_fen))
        .join(Entry)
        .where((Leg.ledger_account == wallet_id) & (Entry.created_at < before))
        .scalar()
    )
    return -int(total or 0)  # a wallet is credit-normal


def compute_bill(account: Account, month: int) -> Bill:
    """The bill of ``account`` for local ``month`` (YYYYMM).  Reads only; deterministic."""
    acct = Account.select(Account, Tenant).join(Tenant).where(Account.id == account.id).first()
    if acct is None:
        raise NotFound(tr("no such account"), "account")
    prop = Property.get_by_id(acct.property_id)
    tz = clock.zone(prop)
    start, end = clock.month_bounds(tz, month)
    room = Room.get_by_id(acct.room_id).number if acct.room_id else ""
    opening = _wallet_sum(acct.wallet_id, start)
    rows = (
        Leg.select(
            Leg.amount_fen,
            Entry.id,
            Entry.created_at,
            Entry.kind,
            Entry.memo,
            Entry.idempotency_key,
        )
        .join(Entry)
        .where(
            (Leg.ledger_account == acct.wallet_id)
            & (Entry.created_at >= start)
            & (Entry.created_at < end)
        )
        .order_by(Entry.created_at, Entry.id)
        .tuples()
    )
    lines: list[Line] = []
    totals: dict[str, int] = dict.fromkeys(CATEGORIES, 0)
    days: dict[str, list[int]] = {}  # local date -> [fen, entries, last entry id]
    for amount, entry_id, created_at, kind, memo, key in rows:
        cat = category(kind, key)
        effect = -int(amount)
        totals[cat] += effect
        at = clock.local(created_at, tz).strftime("%Y-%m-%d %H:%M")
        if cat == "electricity":
            day = days.setdefault(at[:10], [0, 0, 0])
            day[0] += effect
            day[1] += 1
            day[2] = entry_id
            continue
        lines.append(
            Line(entry_id=entry_id, at=at, kind=kind, category=cat, memo=memo, amount_fen=effect)
        )
    for date, (fen, count, last_id) in days.items():
        lines.append(
            Line(
                entry_id=last_id,
                at=date,
                kind="charge",
                category="electricity",
                memo=f"electricity {date}",
                amount_fen=fen,
                entries=count,
            )
        )
    lines.sort(key=lambda line: (line.at, line.entry_id))
    closing = opening + sum(totals.values())
    return Bill(
        account_id=acct.id,
        number=acct.number,
        tenant=acct.tenant.name,
        room=room,
        property_name=prop.name,
        timezone=prop.timezone,
        month=month,
        period_start=clock.first_day(month).isoformat(),
        period_end=(clock.first_day(clock.next_month(month)) - dt.timedelta(days=1)).isoformat(),
        opening_fen=opening,
        closing_fen=closing,
        sales_fen=totals["sales"],
        **{f"{c}_fen": -totals[c] for c in DEBITS},
        reversals_fen=totals["reversals"],
        other_fen=totals["other"],
        lines=tuple(lines),
        meters=_usage(acct.id, start, end),
        shared=_shared(acct.id, start, end),
    )


def _usage(account_id: int, start: dt.datetime, end: dt.datetime) -> tuple[MeterUsage, ...]:
    meters = list(
        Meter.select(Meter.id, Meter.serial, Meter.kind)
        .where(Meter.account == account_id)
        .order_by(Meter.kind, Meter.serial)
        .tuples()
    )
    if not meters:
        return ()
    agg: dict[int, dict] = {
        m: {"readings": 0, "consumption": 0, "rated": 0, "rates": defaultdict(int)}
        for m, _, _ in meters
    }
    q = (
        Reading.select(
            Reading.meter,
            Reading.rate_units,
            fn.COUNT(Reading.id),
            fn.SUM(Reading.consumption),
            fn.SUM(Reading.charge_fen),
        )
        .where(
            Reading.meter.in_([m for m, _, _ in meters])
            & Reading.status.in_(USED)
            & (Reading.read_at >= start)
            & (Reading.read_at < end)
        )
        .group_by(Reading.meter, Reading.rate_units)
        .tuples()
    )
    for meter_id, rate_units, count, units, rated in q:
        a = agg[meter_id]
        a["readings"] += int(count)
        a["consumption"] += int(units or 0)
        a["rated"] += int(rated or 0)
        for rate, n in (json.loads(rate_units) if rate_units else {}).items():
            a["rates"][rate] += int(n)
    return tuple(
        MeterUsage(
            meter_id=m,
            serial=serial,
            kind=kind,
            readings=agg[m]["readings"],
            consumption=agg[m]["consumption"],
            rate_units=dict(sorted(agg[m]["rates"].items())),
            rated_fen=agg[m]["rated"],
        )
        for m, serial, kind in meters
        if agg[m]["readings"]
    )


def _shared(account_id: int, start: dt.datetime, end: dt.datetime) -> tuple[SharedLine, ...]:
    q = (
        ApportionmentPart.select(
            ApportionmentPart, ApportionmentRun, ApportionmentGroup, Meter, Entry
        )
        .join(ApportionmentRun)
        .join(ApportionmentGroup)
        .join(Meter)
        .switch(ApportionmentRun)
        .join(Entry)
        .where(
            (ApportionmentPart.account == account_id)
            & (Entry.created_at >= start)
            & (Entry.created_at < end)
        )
        .order_by(Entry.created_at, ApportionmentRun.id)
    )
    return tuple(
        SharedLine(
            run_id=p.run.id,
            group=p.run.group.name,
            month=month_label(p.run.month),
            mode=p.run.mode,
            rule=p.run.rule,
            utility=p.run.group.master_meter.kind,
            weight=p.weight,
            weight_total=p.run.weight_total,
            units=p.units,
            amount_fen=p.amount_fen,
        )
        for p in q
    )


def billed_accounts(prop: Property, month: int) -> list[Account]:
    """Accounts open at some time during the month, by number."""
    start, end = clock.month_bounds(prop, month)
    return list(
        Account.select(Account, Tenant)
        .join(Tenant)
        .where(
            (Account.property == prop.id)
            & Account.opened_at.is_null(False)
            & (Account.opened_at < end)
            & (Account.closed_at.is_null() | (Account.closed_at >= start))
        )
        .order_by(Account.number)
    )


def bills_for(prop: Property, month: int) -> list[Bill]:
    return [compute_bill(a, month) for a in billed_accounts(prop, month)]


def issue_bills(prop: Property, *, month: int, actor: Actor, now: dt.datetime) -> dict[str, int]:
    """Store the bills of a finished month (once per account) and check the ones stored
    before: counts of issued, unchanged and changed bills."""
    actor.require("operations.run")
    _, end = clock.month_bounds(prop, month)
    if end > now:
        raise ValidationError(
            tr("the month %(month)s is not over yet", month=month_label(month)), "month"
        )
    counts = {"issued": 0, "unchanged": 0, "changed": 0}
    accounts = billed_accounts(prop, month)
    for i in range(0, len(accounts), 200):
        with write_tx():
            for acct in accounts[i : i + 200]:
                text = compute_bill(acct, month).canonical_json()
                digest = digest_of(text)
                first = BillSnapshot.get_or_none(
                    (BillSnapshot.account == acct.id) & (BillSnapshot.month == month)
                )
                if first is None:
                    BillSnapshot.create(
                        account=acct.id, month=month, digest=digest, data=text, created_at=now
                    )
                    counts["issued"] += 1
                elif first.digest == digest:
                    counts["unchanged"] += 1
                else:
                    counts["changed"] += 1
    if counts["issued"] or counts["changed"]:
        with write_tx():
            audit(actor, "bills.issue", prop, now=now, month=month_label(month), **counts)
    return counts


def issued_bill(account: Account, month: int) -> BillSnapshot | None:
    return BillSnapshot.get_or_none(
        (BillSnapshot.account == account.id) & (BillSnapshot.month == month)
    )
