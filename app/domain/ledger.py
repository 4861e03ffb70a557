"""Posting to the append-only double-entry ledger, and verifying it.

Legs are signed (debit +, credit -) and every entry sums to zero.  Cached balances on
``LedgerAccount`` change only here, in the same transaction as the legs.  Corrections are
new entries (``reverse_entry``); nothing is ever updated or deleted.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from peewee import fn

from app.db import bulk_update, db, lock_rows
from app.domain.errors import ValidationError
from app.i18n import tr
from app.models import Entry, LedgerAccount, Leg, Property

CHUNK = 400

# code -> (kind, name).  Cash/clearing accounts exist per payment method.
PAYMENT_METHODS = ("cash", "card", "wechat", "alipay", "transfer")
SYSTEM_ACCOUNTS: dict[str, tuple[str, str]] = {
    **{f"cash:{m}": ("asset", f"Cash/clearing: {m}") for m in PAYMENT_METHODS},
    "revenue:electricity": ("revenue", "Electricity revenue"),
    "revenue:water": ("revenue", "Water revenue"),
    "revenue:service_fee": ("revenue", "Service-fee revenue"),
    "revenue:rent": ("revenue", "Rent / property-fee revenue"),
    "revenue:apportionment": ("revenue", "Apportionment revenue"),
    "liability:refunds_payable": ("liability", "Refunds payable"),
}
NORMAL = {"asset": 1, "expense": 1, "liability": -1, "revenue": -1}


def ensure_system_accounts(prop: Property) -> dict[str, LedgerAccount]:
    """Create the property's chart of accounts where missing; return code -> account."""
    existing = {a.code: a for a in LedgerAccount.select().where(LedgerAccount.property == prop)}
    for code, (kind, name) in SYSTEM_ACCOUNTS.items():
        if code not in existing:
            existing[code] = LedgerAccount.create(
                property=prop, code=code, name=name, kind=kind, normal=NORMAL[kind]
            )
    return existing


def system_account(prop_id: int, code: str) -> LedgerAccount:
    try:
        return LedgerAccount.get((LedgerAccount.property == prop_id) & (LedgerAccount.code == code))
    except LedgerAccount.DoesNotExist:
        ensure_system_accounts(Property.get_by_id(prop_id))
        return LedgerAccount.get((LedgerAccount.property == prop_id) & (LedgerAccount.code == code))


def create_wallet(prop: Property, number: str) -> LedgerAccount:
    return LedgerAccount.create(
        property=prop,
        code=f"wallet:{number}",
        name=f"Wallet {number}",
        kind="liability",
        normal=-1,
    )


def post_entry(
    kind: str,
    legs: Iterable[tuple[LedgerAccount | int, int]],
    *,
    actor: str,
    now: dt.datetime,
    memo: str = "",
    idempotency_key: str | None = None,
    reverses: Entry | None = None,
) -> Entry:
    """Write an entry with its legs and move the cached balances.  Caller holds write_tx()."""
    merged: dict[int, int] = defaultdict(int)
    for acct, amount in legs:
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise TypeError("leg amounts are integer fen")
        merged[acct if isinstance(acct, int) else acct.id] += amount
    merged = {k: v for k, v in merged.items() if v != 0}
    if sum(merged.values()) != 0:
        raise ValidationError(tr("an entry's legs must sum to zero"))
    if not merged:
        raise ValidationError(tr("an entry needs at least one non-zero leg"))
    # The balances this entry moves are locked before its legs reference them (see lock_rows).
    lock_rows("ledger_account", merged)
    entry = Entry.create(
        kind=kind,
        created_at=now,
        actor=actor,
        memo=memo,
        idempotency_key=idempotency_key,
        reverses=reverses,
    )
    legs_rows = [(entry.id, a, v) for a, v in merged.items()]
    for i in range(0, len(legs_rows), 2000):
        Leg.insert_many(
            legs_rows[i : i + 2000], fields=[Leg.entry, Leg.ledger_account, Leg.amount_fen]
        ).execute()
    apply_balance_deltas(merged)
    return entry


def apply_balance_deltas(deltas: Mapping[int, int]) -> None:
    """balance_fen += normal * delta for each ledger account, set-based."""
    rows = [(v, k) for k, v in deltas.items() if v]
    if len(rows) == 1:
        ((delta, acct_id),) = rows
        LedgerAccount.update(
            balance_fen=LedgerAccount.balance_fen + LedgerAccount.normal * delta
        ).where(LedgerAccount.id == acct_id).execute()
    else:
        bulk_update("ledger_account", "id", ["balance_fen = balance_fen + normal * {}"], rows)


def reverse_entry(entry: Entry, *, actor: str, now: dt.datetime, memo: str) -> Entry:
    """Post the mirror image of ``entry``."""
    legs = [(leg.ledger_account_id, -leg.amount_fen) for leg in entry.legs]
    return post_entry("reversal", legs, actor=actor, now=now, memo=memo, reverses=entry)


@dataclass
class VerifyReport:
    accounts: int
    entries: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_ledger() -> VerifyReport:
    """Re-derive every balance from the legs; report any difference and unbalanced entries."""
    problems: list[str] = []
    sums = dict(
        Leg.select(Leg.ledger_account, fn.SUM(Leg.amount_fen)).group_by(Leg.ledger_account).tuples()
    )
    count = 0
    for acct in LedgerAccount.select().iterator():
        count += 1
        derived = acct.normal * int(sums.get(acct.id, 0) or 0)
        if derived != acct.balance_fen:
            problems.append(
                f"ledger account {acct.id} ({acct.code}): cached {acct.balance_fen} fen, "
                f"legs give {derived} fen"
            )
    unbalanced = (
        Leg.select(Leg.entry, fn.SUM(Leg.amount_fen).alias("total"))
        .group_by(Leg.entry)
        .having(fn.SUM(Leg.amount_fen) != 0)
        .tuples()
    )
    for entry_id, total in unbalanced:
        problems.append(f"entry {entry_id}: legs sum to {total} fen, not zero")
    grand = Leg.select(fn.SUM(Leg.amount_fen)).scalar() or 0
    if int(grand) != 0:
        problems.append(f"all legs sum to {grand} fen, not zero")
    entries = Entry.select().count()
    empty = Entry.select().where(~fn.EXISTS(Leg.select().where(Leg.entry == Entry.id))).count()
    if empty:
        problems.append(f"{empty} entries have no legs")
    return VerifyReport(accounts=count, entries=entries, problems=problems)


def wallet_entries(wallet_id: int, limit: int = 100, offset: int = 0) -> list[dict]:
    """An account's ledger history: each entry touching its wallet, newest first."""
    rows = (
        Leg.select(Leg, Entry)
        .join(Entry)
        .where(Leg.ledger_account == wallet_id)
        .order_by(Entry.created_at.desc(), Entry.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [
        {
            "entry_id": leg.entry.id,
            "kind": leg.entry.kind,
            "created_at": leg.entry.created_at,
            "actor": leg.entry.actor,
            "memo": leg.entry.memo,
            # Wallet is credit-normal: a credit (negative leg) raises the balance.
            "amount_fen": -leg.amount_fen,
        }
        for leg in rows
    ]


def in_transaction() -> bool:
    return db.transaction_depth() > 0
