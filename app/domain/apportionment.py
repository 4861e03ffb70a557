"""Common-area apportionment (公摊) and line loss (损耗).

A group has a master meter, a mode, a rule, a tariff and member accounts:

- mode ``master``: the shared use is the master meter's consumption in the month;
  mode ``loss``: the master's consumption minus the linked sub-meters' (the line loss); a
  negative loss (sub-meters read more than the master) is shared as zero and noted.
- The shared use is rated with the group's tariff (flat, or tiered with the blocks applied to
  the month's shared use), version in force at the end of the month, and rounded half up to the
  fen.  A time-of-use tariff is refused: the time profile of a loss is not measured.
- rule ``area``: weights are the members' room areas; ``consumption``: their own use of the
  same utility in the month (all their meters of that kind); ``fixed``: the weights set on the
  members.  Money and units are split with largest-remainder rounding
  (``split_largest_remainder``), so the parts add up to the whole exactly.

Consumption in a month is the sum of the accepted (and released) readings whose ``read_at``
falls in the local calendar month; a reading spanning the month boundary counts for the month
it was taken in.  The master meter belongs to no account: it is put in service as a measuring
meter (its readings record consumption and charge nothing).

``compute_split`` is the dry run: it reads and writes nothing.  ``post_apportionment`` posts one
entry for a group and month (wallet debits, ``revenue:apportionment`` credit, idempotency key
``apportionment:{group}:{YYYY-MM}``) and stores the run with each account's part for the bills;
posting the same month again returns the first run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from zoneinfo import ZoneInfo

from peewee import JOIN, fn

from app import clock
from app.clock import month_key, month_of
from app.db import write_tx
from app.domain.actors import Actor
from app.domain.audit import audit
from app.domain.errors import Conflict, NotFound, ValidationError
from app.domain.ledger import post_entry, system_account
from app.domain.rounding import split_largest_remainder
from app.domain.status import refresh_accounts
from app.domain.tariffs import UNITS_PER, TariffBook, block_numerator, denominator
from app.i18n import tr
from app.models import Account, Event, Meter, Property, Reading, Room, Tariff, Tenant
from app.models.operations import (
    ApportionmentGroup,
    ApportionmentMember,
    ApportionmentPart,
    ApportionmentRun,
    ApportionmentSubMeter,
)

MODES = ("master", "loss")
RULES = ("area", "consumption", "fixed")
USED = ("accepted", "released")  # reading statuses that count as consumption


# ---------------------------------------------------------------- months


def month_label(month: int) -> str:
    """202611 -> '2026-11'."""
    return f"{month // 100:04d}-{month % 100:02d}"


def parse_month(text: str, field_name: str = "month") -> int:
    """'2026-11' -> 202611; refuses anything else with a message."""
    try:
        year, month = (int(p) for p in str(text).strip().split("-"))
    except ValueError:
        raise ValidationError(
            tr("'%(text)s' is not a month (YYYY-MM)", text=text), field_name
        ) from None
    if not (2000 <= year <= 2999 and 1 <= month <= 12):
        raise ValidationError(tr("'%(text)s' is not a month (YYYY-MM)", text=text), field_name)
    return month_key(year, month)


def consumption_by_meter(
    meter_ids: Sequence[int], start: dt.datetime, end: dt.datetime
) -> dict[int, int]:
    """Units used per meter in [start, end) by the readings' times."""
    ids = sorted(set(meter_ids))
    out: dict[int, int] = dict.fromkeys(ids, 0)
    for i in range(0, len(ids), 400):
        q = (
            Reading.select(Reading.meter, fn.SUM(Reading.consumption))
            .where(
                Reading.meter.in_(ids[i : i + 400])
                & Reading.status.in_(USED)
                & (Reading.read_at >= start)
                & (Reading.read_at < end)
            )
            .group_by(Reading.meter)
        )
        for meter_id, units in q.tuples():
            out[meter_id] = int(units or 0)
    return out


# ---------------------------------------------------------------- set-up


def create_group(
    prop: Property,
    *,
    name: str,
    master_meter: Meter,
    mode: str,
    rule: str,
    tariff: Tariff,
    members: Sequence[Account | tuple[Account, int]],
    actor: Actor,
    now: dt.datetime,
    sub_meters: Sequence[Meter] = (),
    start_month: int | None = None,
    master_initial_total: int | None = None,
) -> ApportionmentGroup:
    """Set up a group.  ``members`` are accounts, or (account, weight) pairs for the fixed rule.

    The master meter must belong to no account; it is put in service as a measuring meter
    (from ``master_initial_total`` when given, else its first reading is the baseline).
    ``start_month`` (default: this month) is the first month the scheduled job apportions.
    """
    actor.require("charges.edit")
    name = (name or "").strip()
    if not name:
        raise ValidationError(tr("a group needs a name"), "name")
    if mode not in MODES:
        raise ValidationError(tr("unknown mode '%(mode)s' (master, loss)", mode=mode), "mode")
    if rule not in RULES:
        raise ValidationError(
            tr("unknown rule '%(rule)s' (area, consumption, fixed)", rule=rule), "rule"
        )
    tz = ZoneInfo(prop.timezone)
    with write_tx():
        master = Meter.get_by_id(master_meter.id)
        if master.property_id != prop.id:
            raise ValidationError(
                tr("meter %(serial)s belongs to another property", serial=master.serial),
                "master_meter",
            )
        if master.account_id is not None:
            raise ValidationError(
                tr(
                    "the master meter %(serial)s belongs to an account; choose a meter of its own",
                    serial=master.serial,
                ),
                "master_meter",
            )
        if master.status == "removed":
            raise ValidationError(
                tr("meter %(serial)s is not in service", serial=master.serial), "master_meter"
            )
        tariff = Tariff.get_by_id(tariff.id)
        if tariff.property_id != prop.id or tariff.utility != master.kind:
            raise ValidationError(
                tr("the tariff must be a %(utility)s tariff of this property", utility=master.kind),
                "tariff",
            )
        if tariff.kind not in ("flat", "tiered"):
            raise ValidationError(tr("shared use is rated with a flat or tiered tariff"), "tariff")
        pairs = [(m, 0) if isinstance(m, Account) else m for m in members]
        if not pairs:
            raise ValidationError(tr("choose the accounts that share the cost"), "members")
        seen: set[int] = set()
        for acct, weight in pairs:
            if acct.id in seen:
                raise ValidationError(
                    tr("account %(number)s is listed twice", number=acct.number), "members"
                )
            seen.add(acct.id)
            if acct.property_id != prop.id:
                raise ValidationError(
                    tr("account %(number)s belongs to another property", number=acct.number),
                    "members",
                )
            if not isinstance(weight, int) or isinstance(weight, bool) or weight < 0:
                raise ValidationError(
                    tr("a fixed ratio is a whole, non-negative number"), "members"
                )
        if rule == "fixed" and not any(w for _, w in pairs):
            raise ValidationError(tr("give the members their fixed ratios"), "members")
        if mode == "loss" and not sub_meters:
            raise ValidationError(
                tr("line loss needs the sub-meters under the master meter"), "sub_meters"
            )
        for sub in sub_meters:
            if sub.id == master.id or sub.property_id != prop.id or sub.kind != master.kind:
                raise ValidationError(
                    tr("meter %(serial)s cannot be a sub-meter of this group", serial=sub.serial),
                    "sub_meters",
                )
        if (
            ApportionmentGroup.select()
            .where((ApportionmentGroup.property == prop.id) & (ApportionmentGroup.name == name))
            .exists()
        ):
            raise ValidationError(tr("a group named '%(name)s' exists already", name=name), "name")
        group = ApportionmentGroup.create(
            property=prop.id,
            name=name,
            master_meter=master.id,
            mode=mode,
            rule=rule,
            tariff=tariff.id,
            start_month=start_month or month_of(now, tz),
            created_by=actor.name,
            created_at=now,
        )
        ApportionmentMember.insert_many(
            [
                {"group": group.id, "account": a.id, "weight": w if rule == "fixed" else 0}
                for a, w in pairs
            ]
        ).execute()
        if sub_meters:
            ApportionmentSubMeter.insert_many(
                [{"group": group.id, "meter": s.id} for s in sub_meters]
            ).execute()
        if master.status == "stock":
            _start_measuring(master, master_initial_total, now)
        audit(
            actor,
            "apportionment.group",
            group,
            now=now,
            name=name,
            mode=mode,
            rule=rule,
            master=master.serial,
            members=[a.number for a, _ in pairs],
            sub_meters=[s.serial for s in sub_meters],
        )
    return group


def _start_measuring(meter: Meter, initial_total: int | None, now: dt.datetime) -> None:
    """Put a stock meter in service with no account: it is read, and charges nothing."""
    if initial_total is not None and initial_total < 0:
        raise ValidationError(
            tr("an initial register reading cannot be negative"), "master_initial_total"
        )
    changes = {
        "status": "active",
        "installed_at": now,
        "poll_class": "public",
        "carry": 0,
        "month_key": 0,
        "month_units": 0,
    }
    if initial_total is not None:
        changes.update(
            last_read_at=now,
            last_total=initial_total,
            last_t1=None,
            last_t2=None,
            last_t3=None,
            last_t4=None,
        )
        Reading.create(
            meter=meter.id,
            read_at=now,
            total=initial_total,
            status="baseline",
            source="install",
            created_at=now,
        )
    Meter.update(**changes).where(Meter.id == meter.id).execute()


# ---------------------------------------------------------------- the split


@dataclass(frozen=True)
class Part:
    account_id: int
    number: str
    tenant: str
    weight: int
    units: int
    amount_fen: int


@dataclass(frozen=True)
class Split:
    """A dry run: what posting ``month`` of ``group_id`` would charge."""

    group_id: int
    group_name: str
    month: int
    mode: str
    rule: str
    utility: str
    master_units: int
    sub_units: int
    units: int
    amount_fen: int
    weight_total: int
    parts: tuple[Part, ...]
    detail: dict = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def digest(self) -> str:
        """SHA-256 of the figures: the post form sends it back so that what was shown is
        what gets posted."""
        data = asdict(self)
        data.pop("notes")
        text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()


def split_amount(
    amount_fen: int, units: int, weights: Sequence[int]
) -> tuple[list[int], list[int]]:
    """Split money and units in proportion to ``weights``; each list sums to its whole."""
    return split_largest_remainder(amount_fen, weights), split_largest_remainder(units, weights)


def price_shared(tariff_id: int, units: int, at: dt.datetime) -> tuple[int, dict]:
    """Fen for ``units`` of shared use at the tariff version in force at ``at`` (half up)."""
    book = TariffBook([tariff_id])
    spec = book.spec_at(tariff_id, at)
    if spec is None:
        raise ValidationError(
            tr("the group's tariff has no version in force for the month"), "tariff"
        )
    kind, utility = book.kinds[tariff_id], book.utilities[tariff_id]
    if kind == "flat":
        numerator = units * spec["price"]
    elif kind == "tiered":
        numerator = block_numerator(spec["blocks"], UNITS_PER[utility], 0, units)
    else:
        raise ValidationError(tr("shared use is rated with a flat or tiered tariff"), "tariff")
    den = denominator(utility)
    fen = (2 * numerator + den) // (2 * den)
    clean = {k: v for k, v in spec.items() if not k.startswith("_")}
    return fen, {
        "tariff": tariff_id,
        "kind": kind,
        "spec": clean,
        "numerator": numerator,
        "denominator": den,
    }


def _members(group: ApportionmentGroup) -> list[tuple[Account, int, int]]:
    """(account, fixed weight, room area) of the open member accounts, by account number."""
    rows = (
        ApportionmentMember.select(ApportionmentMember, Account, Tenant, Room)
        .join(Account)
        .join(Tenant)
        .switch(Account)
        .join(Room, JOIN.LEFT_OUTER)
        .where(
            (ApportionmentMember.group == group.id)
            & Account.status.not_in(("closed", "not_opened"))
        )
        .order_by(Account.number)
    )
    return [
        (m.account, m.weight, m.account.room.area_cm2 if m.account.room_id else 0) for m in rows
    ]


def compute_split(group: ApportionmentGroup, month: int) -> Split:
    """The dry run for ``month``: measure, rate and split.  Reads only."""
    group = ApportionmentGroup.get_by_id(group.id)
    prop = Property.get_by_id(group.property_id)
    tz = ZoneInfo(prop.timezone)
    start, end = clock.month_bounds(tz, month)
    master = Meter.get_by_id(group.master_meter_id)
    notes: list[str] = []
    master_units = consumption_by_meter([master.id], start, end)[master.id]
    sub_units = 0
    if group.mode == "loss":
        sub_ids = [
            s.meter_id
            for s in ApportionmentSubMeter.select().where(ApportionmentSubMeter.group == group.id)
        ]
        sub_units = sum(consumption_by_meter(sub_ids, start, end).values())
    units = master_units - sub_units
    if units < 0:
        notes.append(
            tr(
                "the sub-meters read %(units)s units more than the master meter; nothing is shared",
                units=-units,
            )
        )
        units = 0
    amount, detail = price_shared(group.tariff_id, units, end - dt.timedelta(seconds=1))
    members = _members(group)
    if not members:
        raise ValidationError(tr("the group has no open member accounts"), "members")
    if group.rule == "area":
        weights = [area for _, _, area in members]
    elif group.rule == "fixed":
        weights = [w for _, w, _ in members]
    else:
        ids = [a.id for a, _, _ in members]
        meters = list(
            Meter.select(Meter.id, Meter.account)
            .where(Meter.account.in_(ids) & (Meter.kind == master.kind))
            .tuples()
        )
        used = consumption_by_meter([m for m, _ in meters], start, end)
        per_account = dict.fromkeys(ids, 0)
        for meter_id, account_id in meters:
            per_account[account_id] += used[meter_id]
        weights = [per_account[a.id] for a, _, _ in members]
    weight_total = sum(weights)
    if weight_total == 0 and (amount or units):
        message = {
            "area": tr("the member rooms have no area; set the room areas or choose another rule"),
            "consumption": tr(
                "no member used any %(utility)s in the month; choose another rule",
                utility=master.kind,
            ),
            "fixed": tr("give the members their fixed ratios"),
        }[group.rule]
        raise ValidationError(message, "rule")
    amounts, unit_parts = split_amount(amount, units, weights)
    parts = tuple(
        Part(
            account_id=a.id, number=a.number, tenant=a.tenant.name, weight=w, units=u, amount_fen=f
        )
        for (a, _, _), w, u, f in zip(members, weights, unit_parts, amounts, strict=True)
    )
    return Split(
        group_id=group.id,
        group_name=group.name,
        month=month,
        mode=group.mode,
        rule=group.rule,
        utility=master.kind,
        master_units=master_units,
        sub_units=sub_units,
        units=units,
        amount_fen=amount,
        weight_total=weight_total,
        parts=parts,
        detail=detail,
        notes=tuple(notes),
    )


def dry_run(group: ApportionmentGroup, month: int, *, actor: Actor) -> Split:
    """Show the split of a month before posting it."""
    actor.require("operations.view")
    return compute_split(group, month)


def entry_key(group_id: int, month: int) -> str:
    return f"apportionment:{group_id}:{month_label(month)}"


def post_apportionment(
    group: ApportionmentGroup,
    month: int,
    *,
    actor: Actor,
    now: dt.datetime,
    expected_digest: str | None = None,
) -> tuple[ApportionmentRun, bool]:
    """Post ``month`` of ``group`` once; returns (run, created).

    The month must be over.  With ``expected_digest`` (from the dry run the person looked at)
    a split whose figures changed since is refused.
    """
    actor.require("apportionment.post")
    found = ApportionmentGroup.get_or_none(ApportionmentGroup.id == group.id)
    if found is None:
        raise NotFound(tr("no such apportionment group"), "group")
    group = found
    prop = Property.get_by_id(group.property_id)
    _, end = clock.month_bounds(prop, month)
    if end > now:
        raise ValidationError(
            tr("the month %(month)s is not over yet", month=month_label(month)), "month"
        )
    with write_tx():
        first = ApportionmentRun.get_or_none(
            (ApportionmentRun.group == group.id) & (ApportionmentRun.month == month)
        )
        if first is not None:
            return first, False
        split = compute_split(group, month)
        if expected_digest and expected_digest != split.digest:
            raise Conflict(
                tr("the figures changed since the preview; look at them again"), "digest"
            )
        charged = [p for p in split.parts if p.amount_fen]
        entry = None
        if charged:
            wallets = dict(
                Account.select(Account.id, Account.wallet)
                .where(Account.id.in_([p.account_id for p in charged]))
                .tuples()
            )
            legs = [(wallets[p.account_id], p.amount_fen) for p in charged]
            legs.append((system_account(prop.id, "revenue:apportionment").id, -split.amount_fen))
            entry = post_entry(
                "apportionment",
                legs,
                actor=actor.name,
                now=now,
                memo=f"{group.name} {month_label(month)} ({group.mode}, {group.rule})",
                idempotency_key=entry_key(group.id, month),
            )
        run = ApportionmentRun.create(
            group=group.id,
            month=month,
            mode=split.mode,
            rule=split.rule,
            master_units=split.master_units,
            sub_units=split.sub_units,
            units=split.units,
            amount_fen=split.amount_fen,
            weight_total=split.weight_total,
            detail=json.dumps(split.detail, sort_keys=True),
            digest=split.digest,
            entry=entry.id if entry else None,
            created_by=actor.name,
            created_at=now,
        )
        ApportionmentPart.insert_many(
            [
                {
                    "run": run.id,
                    "account": p.account_id,
                    "weight": p.weight,
                    "units": p.units,
                    "amount_fen": p.amount_fen,
                }
                for p in split.parts
            ]
        ).execute()
        if charged:
            Event.insert_many(
                [
                    {
                        "kind": "apportionment.charged",
                        "property": prop.id,
                        "account": p.account_id,
                        "created_at": now,
                        "data": json.dumps(
                            {
                                "group": group.name,
                                "month": month_label(month),
                                "rule": group.rule,
                                "amount_fen": p.amount_fen,
                                "units": p.units,
                            },
                            ensure_ascii=False,
                        ),
                    }
                    for p in charged
                ]
            ).execute()
            refresh_accounts([p.account_id for p in charged], now=now)
        audit(
            actor,
            "apportionment.post",
            run,
            now=now,
            group=group.name,
            month=month_label(month),
            amount_fen=split.amount_fen,
            units=split.units,
            rule=split.rule,
            mode=split.mode,
        )
    return run, True
