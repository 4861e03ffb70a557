"""Bulk fixture generation for benchmarks: a property with many metered accounts, written
set-based (setup is not what is measured)."""

from __future__ import annotations

import datetime as dt
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from app.db import db, init_db  # noqa: E402
from app.domain.actors import SYSTEM  # noqa: E402
from app.domain.site import create_property  # noqa: E402
from app.domain.tariffs import create_tariff  # noqa: E402
from app.models import MODELS, Account, LedgerAccount, Meter, Tenant  # noqa: E402
from app.schema import upgrade  # noqa: E402

TOU = {
    "prices": {"sharp": 12000, "peak": 9800, "flat": 7000, "valley": 3200},
    "segments": [
        {"start": "00:00", "rate": "valley"},
        {"start": "08:00", "rate": "flat"},
        {"start": "10:00", "rate": "peak"},
        {"start": "19:00", "rate": "sharp"},
        {"start": "21:00", "rate": "flat"},
        {"start": "23:00", "rate": "valley"},
    ],
}
MYSQL_URL = os.environ.get("MD_BENCH_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")


def fresh_database(kind: str) -> str:
    """A migrated, empty database; returns its URL."""
    if kind == "sqlite":
        url = f"sqlite:///{tempfile.mkdtemp(prefix='md-bench-')}/bench.db"
        init_db(url)
    else:
        url = MYSQL_URL
        database = init_db(url)
        database.execute_sql("SET FOREIGN_KEY_CHECKS=0")
        for table in database.get_tables():
            database.execute_sql(f"DROP TABLE `{table}`")
        database.execute_sql("SET FOREIGN_KEY_CHECKS=1")
    upgrade()
    return url


def make_accounts(
    n_meters: int,
    start: dt.datetime,
    *,
    tou_share: float = 0.7,
    prop=None,
    balance_of=lambda j: 10_000_000,
    gateway_of=lambda j: None,
    address_of=lambda j: f"{j:012d}",
    total_of=lambda j: 100_000 + j,
):
    """One property, n accounts each with one electricity meter, baseline at ``start``."""
    prop = prop or create_property(
        code="BENCH", name="Bench", catalog_price=6500, service_fee_bp=300, actor=SYSTEM, now=start
    )
    flat = create_tariff(
        prop,
        name="flat",
        utility="electricity",
        kind="flat",
        spec={"price": 7000},
        effective_from=start - dt.timedelta(days=30),
        actor=SYSTEM,
        now=start,
    )
    tou = create_tariff(
        prop,
        name="tou",
        utility="electricity",
        kind="tou",
        spec=TOU,
        effective_from=start - dt.timedelta(days=30),
        actor=SYSTEM,
        now=start,
    )
    tou_cut = int(n_meters * tou_share)
    with db.atomic():
        Tenant.insert_many(
            [{"property": prop.id, "name": f"T{i}", "created_at": start} for i in range(n_meters)]
        ).execute()
        tenant_ids = [t for (t,) in Tenant.select(Tenant.id).order_by(Tenant.id).tuples()]
        for i in range(0, n_meters, 1000):
            LedgerAccount.insert_many(
                [
                    {
                        "property": prop.id,
                        "code": f"wallet:B{j:06d}",
                        "kind": "liability",
                        "normal": -1,
                        "balance_fen": balance_of(j),
                    }
                    for j in range(i, min(i + 1000, n_meters))
                ]
            ).execute()
        wallets = dict(
            LedgerAccount.select(LedgerAccount.code, LedgerAccount.id)
            .where(LedgerAccount.code.startswith("wallet:"))
            .tuples()
        )
        for i in range(0, n_meters, 1000):
            Account.insert_many(
                [
                    {
                        "property": prop.id,
                        "tenant": tenant_ids[j],
                        "number": f"B{j:06d}",
                        "status": "opened",
                        "alarm1_fen": 5000,
                        "alarm2_fen": 2000,
                        "credit_limit_fen": 0,
                        "tariff_electricity": tou.id if j < tou_cut else flat.id,
                        "wallet": wallets[f"wallet:B{j:06d}"],
                        "opened_at": start,
                    }
                    for j in range(i, min(i + 1000, n_meters))
                ]
            ).execute()
        accounts = dict(Account.select(Account.number, Account.id).tuples())
        for i in range(0, n_meters, 1000):
            Meter.insert_many(
                [
                    {
                        "property": prop.id,
                        "account": accounts[f"B{j:06d}"],
                        "kind": "electricity",
                        "serial": f"M{j:06d}",
                        "address": address_of(j),
                        "status": "active",
                        "gateway": gateway_of(j),
                        "relay_confirmed": "on",
                        "last_read_at": start,
                        "last_total": total_of(j),
                    }
                    for j in range(i, min(i + 1000, n_meters))
                ]
            ).execute()
    # The opening balances above were written without legs; give them legs so verify is clean.
    from app.domain.ledger import system_account
    from app.models import Entry, Leg

    with db.atomic():
        cash = system_account(prop.id, "cash:cash")
        entry = Entry.create(
            kind="adjustment", created_at=start, actor="bench", memo="opening balances"
        )
        balances = {w: balance_of(int(code[len("wallet:B") :])) for code, w in wallets.items()}
        legs = [
            {"entry": entry.id, "ledger_account": w, "amount_fen": -b} for w, b in balances.items()
        ]
        legs.append(
            {"entry": entry.id, "ledger_account": cash.id, "amount_fen": sum(balances.values())}
        )
        for i in range(0, len(legs), 1000):
            Leg.insert_many(legs[i : i + 1000]).execute()
        LedgerAccount.update(balance_fen=LedgerAccount.balance_fen + sum(balances.values())).where(
            LedgerAccount.id == cash.id
        ).execute()
    return [m for (m,) in Meter.select(Meter.id).order_by(Meter.id).tuples()]


__all__ = ["MODELS", "fresh_database", "make_accounts"]
