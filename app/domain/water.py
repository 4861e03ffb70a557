"""Water daily deduction (用水按日扣费): the box holds water balances and deducts each day once.

Readings of water meters are rated as they arrive (consumption, rate units and the charge
with the meter's sub-fen carry, see ``app.domain.readings``) but posted nothing.  The daily
deduction for local day D (property time zone) posts one ledger entry with one debit leg per
wallet and one credit to ``revenue:water``, idempotency key ``water:{property id}:{D}``, and
links every reading it charged to that entry.

Day attribution: a reading belongs to the local day of its ``read_at``, whole — a reading at
00:20 covering 23:50-00:20 counts for the new day.  The deduction for D takes every water
reading rated but not yet deducted whose ``read_at`` is before the end of D, so a reading that
arrives late (a gateway came back, an MQTT backlog) is deducted with the next day instead of
being lost; running D again finds its key and changes nothing.

After posting, ``refresh_accounts`` moves the accounts' tiers; an account in arrears has its
supply (valve and relay) cut through the command queue like any other arrears.

The daily search for waiting readings looks back ``LOOKBACK_DAYS``: readings of one meter are
accepted only in time order, so a reading still waiting after that long cannot occur while the
job runs daily; closing an account settles all of its waiting water whatever its age.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

from app import clock
from app.db import write_tx
from app.domain.actors import Actor
from app.domain.audit import audit
from app.domain.errors import ValidationError
from app.domain.ledger import post_entry, system_account
from app.domain.readings import DAILY_KINDS
from app.domain.status import refresh_accounts
from app.i18n import tr
from app.models import Account, Entry, Meter, Property, Reading

CHUNK = 400
LOOKBACK_DAYS = 92


@dataclass(frozen=True)
class WaterDay:
    """What the deduction of one local day did (``created`` False: it had run before)."""

    property_id: int
    day: dt.date
    created: bool
    entry_id: int | None
    accounts: int
    readings: int
    amount_fen: int


def day_key(prop_id: int, day: dt.date) -> str:
    return f"water:{prop_id}:{day.isoformat()}"


def _pending(prop_id: int, before: dt.datetime):
    """Rated, not yet deducted readings of the property's daily meters in the look-back
    window before ``before``."""
    since = before - dt.timedelta(days=LOOKBACK_DAYS)
    return (
        Reading.select(Reading.id, Reading.charge_fen, Meter.account)
        .join(Meter)
        .where(
            (Meter.property == prop_id)
            & Meter.kind.in_(sorted(DAILY_KINDS))
            & (Reading.read_at >= since)
            & (Reading.read_at < before)
            & Reading.entry.is_null()
            & (Reading.charge_fen > 0)
        )
        .order_by(Reading.id)
    )


def _post(
    prop_id: int,
    rows: list[tuple[int, int, int | None]],
    *,
    key: str | None,
    memo: str,
    actor: Actor,
    now: dt.datetime,
) -> tuple[Entry | None, set[int], int, int]:
    """Post the charges of ``rows`` (reading id, fen, account id).  Returns (entry, accounts,
    readings charged, fen).  Rows whose meter has no account are left alone."""
    per_account: dict[int, int] = defaultdict(int)
    reading_ids: list[int] = []
    for reading_id, fen, account_id in rows:
        if account_id is None:
            continue
        per_account[account_id] += fen
        reading_ids.append(reading_id)
    if not per_account:
        return None, set(), 0, 0
    wallet_of: dict[int, int] = {}
    ids = sorted(per_account)
    for i in range(0, len(ids), CHUNK):
        q = Account.select(Account.id, Account.wallet).where(Account.id.in_(ids[i : i + CHUNK]))
        wallet_of.update(q.tuples())
    total = sum(per_account.values())
    legs: list[tuple[int, int]] = [(wallet_of[a], fen) for a, fen in sorted(per_account.items())]
    legs.append((system_account(prop_id, "revenue:water").id, -total))
    entry = post_entry("charge", legs, actor=actor.name, now=now, memo=memo, idempotency_key=key)
    for i in range(0, len(reading_ids), CHUNK):
        Reading.update(entry=entry.id).where(Reading.id.in_(reading_ids[i : i + CHUNK])).execute()
    refresh_accounts(list(per_account), now=now)
    return entry, set(per_account), len(reading_ids), total


def deduct_water_day(prop: Property, day: dt.date, *, actor: Actor, now: dt.datetime) -> WaterDay:
    """Deduct the water rated for local ``day`` (and any earlier reading not yet deducted).

    Idempotent per property and day; refuses a day that has not ended yet.
    """
    actor.require("operations.run")
    _, end = clock.day_bounds(prop, day)
    if end > now:
        raise ValidationError(tr("the day %(day)s is not over yet", day=day.isoformat()), "day")
    key = day_key(prop.id, day)
    with write_tx():
        first = Entry.get_or_none(Entry.idempotency_key == key)
        if first is not None:
            return _summary(prop.id, day, first)
        rows = list(_pending(prop.id, end).tuples())
        entry, accounts, n, total = _post(
            prop.id, rows, key=key, memo=f"water {day.isoformat()}", actor=actor, now=now
        )
        if entry is not None:
            audit(
                actor,
                "water.deduct",
                prop,
                now=now,
                day=day.isoformat(),
                entry=entry.id,
                accounts=len(accounts),
                readings=n,
                amount_fen=total,
            )
    return WaterDay(
        property_id=prop.id,
        day=day,
        created=entry is not None,
        entry_id=entry.id if entry else None,
        accounts=len(accounts),
        readings=n,
        amount_fen=total,
    )


def _summary(prop_id: int, day: dt.date, entry: Entry) -> WaterDay:
    """The first result of a day deducted before."""
    charged = (
        Reading.select(Reading.charge_fen, Meter.account)
        .join(Meter)
        .where(Reading.entry == entry.id)
    )
    rows = list(charged.tuples())
    return WaterDay(
        property_id=prop_id,
        day=day,
        created=False,
        entry_id=entry.id,
        accounts=len({a for _, a in rows}),
        readings=len(rows),
        amount_fen=sum(fen for fen, _ in rows),
    )


def settle_account_water(account: Account, *, actor: Actor, now: dt.datetime) -> int:
    """Deduct an account's rated, not yet deducted water now (before closing it).  Returns the
    fen deducted.  Caller may hold write_tx()."""
    with write_tx():
        rows = list(
            Reading.select(Reading.id, Reading.charge_fen, Meter.account)
            .join(Meter)
            .where(
                (Meter.account == account.id)
                & Meter.kind.in_(sorted(DAILY_KINDS))
                & Reading.entry.is_null()
                & (Reading.charge_fen > 0)
            )
            .order_by(Reading.id)
            .tuples()
        )
        _, _, _, total = _post(
            account.property_id,
            rows,
            key=None,
            memo=f"water up to {now:%Y-%m-%d %H:%M} (account {account.number})",
            actor=actor,
            now=now,
        )
        if total:
            audit(
                actor,
                "water.settle",
                account,
                now=now,
                account=account.number,
                amount_fen=total,
                readings=len(rows),
            )
    return total


def pending_water_fen(account: Account) -> int:
    """Water rated for the account and not deducted yet (shown next to the balance)."""
    total = (
        Reading.select(Reading.charge_fen)
        .join(Meter)
        .where(
            (Meter.account == account.id)
            & Meter.kind.in_(sorted(DAILY_KINDS))
            & Reading.entry.is_null()
            & (Reading.charge_fen > 0)
        )
    )
    return int(sum(fen for (fen,) in total.tuples()))


def days_due(prop: Property, *, now: dt.datetime) -> list[dt.date]:
    """The local days to deduct, oldest first: yesterday, and each earlier day back to the
    oldest reading still waiting in the look-back window (a box that was off catches up day by
    day)."""
    yesterday = clock.site_today(prop, now) - dt.timedelta(days=1)
    start = clock.local_midnight(prop, yesterday)
    oldest = _pending(prop.id, start).select(Reading.read_at).order_by(Reading.read_at).first()
    first_day = yesterday
    if oldest is not None:
        first_day = clock.local_date(oldest.read_at, prop)
    return [first_day + dt.timedelta(days=i) for i in range((yesterday - first_day).days + 1)]
