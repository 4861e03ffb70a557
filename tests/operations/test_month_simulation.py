"""A simulated month on the demo mall: readings every two hours with supply cut when a tenant
owes, top-ups, a reversal, rent and property fees, the daily water deduction, three
apportionment groups (common area by area, line loss by consumption, water loss by fixed
ratios) and the monthly bills, all driven by the scheduled runners with a controlled clock.

At the end the ledger verifies, the wallets equal net sales minus everything charged, each
revenue account equals what its source says, and every bill reconciles with the ledger."""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict

from peewee import fn

from app.cli import ledger_cli
from app.demo import CODE, load_demo
from app.domain.actors import SYSTEM
from app.domain.apportionment import create_group
from app.domain.bills import bills_for, compute_bill
from app.domain.jobs import run_apportionment, run_bills, run_rent, run_water_daily
from app.domain.ledger import verify_ledger
from app.domain.readings import ReadingIn, apply_readings
from app.domain.rent import create_recurring_charge
from app.domain.sales import reverse_sale, sell
from app.domain.site import create_meter
from app.models import (
    Account,
    Entry,
    Event,
    LedgerAccount,
    Leg,
    Meter,
    Property,
    Reading,
    Sale,
    Tariff,
)
from app.models.operations import ApportionmentRun, BillSnapshot, Job
from tests.operations.helpers import local

START = local("2026-11-01 00:00")
END = local("2026-12-01 12:00")
STEP = dt.timedelta(hours=2)
NOV = 202611
DEBIT_KINDS = ("charge", "apportionment", "rent", "property_fee")


def wallet_effects(wallet_ids, kinds):
    """Σ over the wallets of the legs of entries of ``kinds``, as the change of balance."""
    total = (
        Leg.select(fn.SUM(Leg.amount_fen))
        .join(Entry)
        .where(Leg.ledger_account.in_(wallet_ids) & Entry.kind.in_(kinds))
        .scalar()
    )
    return -int(total or 0)


def revenue(prop, code):
    return LedgerAccount.get(
        (LedgerAccount.property == prop) & (LedgerAccount.code == code)
    ).balance_fen


class Mall:
    """The demo mall plus what the month needs: master meters, groups, recurring charges."""

    def __init__(self, tmp_path):
        load_demo(str(tmp_path / "admin-password"), now=START - dt.timedelta(hours=6))
        self.prop = Property.get(Property.code == CODE)
        self.rng = random.Random(2611)
        self.accounts = list(
            Account.select().where(Account.property == self.prop).order_by(Account.number)
        )
        meters = list(
            Meter.select().where((Meter.property == self.prop) & (Meter.status == "active"))
        )
        self.totals = {m.id: m.last_total for m in meters}
        self.tenant_meters = meters
        self.load_w = {
            m.id: self.rng.choice([500, 1500, 3000, 6000])
            for m in meters
            if m.kind == "electricity"
        }
        public = Tariff.get((Tariff.property == self.prop) & (Tariff.name == "公共区域单一电价"))
        water = Tariff.get((Tariff.property == self.prop) & (Tariff.utility == "water"))
        at = START - dt.timedelta(hours=5)
        self.lobby = create_meter(
            self.prop,
            serial="PUB-LOBBY",
            kind="electricity",
            max_rate=1_000_000,
            actor=SYSTEM,
            now=at,
        )
        self.feeder = create_meter(
            self.prop, serial="FEED-A", kind="electricity", max_rate=1_000_000, actor=SYSTEM, now=at
        )
        self.water_main = create_meter(
            self.prop, serial="WMAIN", kind="water", max_rate=100_000, actor=SYSTEM, now=at
        )
        building_a = [
            m for m in meters if m.kind == "electricity" and m.room.floor.building.name == "A座"
        ]
        a_accounts = sorted({m.account_id for m in building_a})
        water_meters = [m for m in meters if m.kind == "water"]
        self.feeds = {
            self.feeder.id: [m.id for m in building_a],
            self.water_main.id: [m.id for m in water_meters],
        }
        create_group(
            self.prop,
            name="公共区域",
            master_meter=self.lobby,
            mode="master",
            rule="area",
            tariff=public,
            members=self.accounts,
            master_initial_total=0,
            start_month=NOV,
            actor=SYSTEM,
            now=at,
        )
        create_group(
            self.prop,
            name="A座线损",
            master_meter=self.feeder,
            mode="loss",
            rule="consumption",
            tariff=public,
            members=[a for a in self.accounts if a.id in a_accounts],
            sub_meters=building_a,
            master_initial_total=0,
            start_month=NOV,
            actor=SYSTEM,
            now=at,
        )
        create_group(
            self.prop,
            name="水损",
            master_meter=self.water_main,
            mode="loss",
            rule="fixed",
            tariff=water,
            members=[
                (Account.get_by_id(m.account_id), 1 + i % 3) for i, m in enumerate(water_meters)
            ],
            sub_meters=water_meters,
            master_initial_total=0,
            start_month=NOV,
            actor=SYSTEM,
            now=at,
        )
        for m in (self.lobby, self.feeder, self.water_main):
            self.totals[m.id] = 0
        for i, acct in enumerate(self.accounts[:12]):
            create_recurring_charge(
                acct,
                kind="rent",
                amount_fen=150000 + 10000 * i,
                schedule="monthly",
                day_of_month=1,
                start_date=dt.date(2026, 11, 1),
                name=f"{acct.number} 房租",
                actor=SYSTEM,
                now=at,
            )
        for acct in self.accounts[12:18]:
            create_recurring_charge(
                acct,
                kind="property_fee",
                amount_fen=5000,
                schedule="days",
                interval_days=7,
                start_date=dt.date(2026, 11, 1),
                actor=SYSTEM,
                now=at,
            )
        create_recurring_charge(
            self.accounts[20],
            kind="rent",
            amount_fen=90000,
            schedule="monthly",
            day_of_month=1,
            start_date=dt.date(2026, 11, 16),
            actor=SYSTEM,
            now=at,
        )
        self.sale_keys = 0

    def read_all(self, t: dt.datetime) -> None:
        """Every meter read at ``t``: tenants use power while supplied, masters measure them."""
        local_hour = (t.hour + 8) % 24
        open_hours = 9 <= local_hour < 22
        supplied = {
            m_id
            for m_id, state in Meter.select(Meter.id, Meter.relay_desired).tuples()
            if state == "on"
        }
        used: dict[int, int] = {}
        for m in self.tenant_meters:
            if m.id not in supplied:
                used[m.id] = 0
            elif m.kind == "electricity":
                used[m.id] = self.load_w[m.id] // 5 if open_hours else 10  # W over 2 h in 0.01 kWh
            else:
                used[m.id] = self.rng.randint(20, 150) if open_hours else 0
        used[self.lobby.id] = 1000 if open_hours else 300
        used[self.feeder.id] = sum(used[i] for i in self.feeds[self.feeder.id]) * 103 // 100
        used[self.water_main.id] = sum(used[i] for i in self.feeds[self.water_main.id]) * 105 // 100
        batch = []
        for m_id, units in used.items():
            self.totals[m_id] += units
            batch.append(ReadingIn(meter_id=m_id, read_at=t, total=self.totals[m_id], source="sim"))
        results = apply_readings(batch, actor=SYSTEM, now=t)
        assert {r.status for r in results} <= {"accepted", "baseline"}, {r.status for r in results}

    def top_ups(self, t: dt.datetime) -> None:
        """Tenants low on money pay at the counter (most of them)."""
        low = list(
            Account.select()
            .where((Account.property == self.prop) & Account.status.in_(("alarm2", "arrears")))
            .order_by(Account.id)
        )
        for acct in low:
            if self.rng.random() < 0.7:
                self.sale_keys += 1
                sell(
                    acct,
                    amount_fen=self.rng.choice([50000, 100000, 300000]),
                    method="wechat",
                    idempotency_key=f"sim-{self.sale_keys}",
                    actor=SYSTEM,
                    now=t,
                )


def test_a_simulated_month_balances_to_the_fen(app, tmp_path):
    mall = Mall(tmp_path)
    t = START
    reversed_one = False
    while t <= END:
        mall.read_all(t)
        local_hour = (t.hour + 8) % 24
        if local_hour == 0:  # just after local midnight: the scheduled jobs of the day
            run_water_daily(now=t + dt.timedelta(minutes=10))
            run_rent(now=t + dt.timedelta(minutes=15))
            run_apportionment(now=t + dt.timedelta(minutes=25))
            run_bills(now=t + dt.timedelta(minutes=40))
        if local_hour == 10:
            mall.top_ups(t)
        if not reversed_one and t >= local("2026-11-15 10:00"):
            sale = Sale.select().where(Sale.property == mall.prop).order_by(Sale.id.desc()).first()
            reverse_sale(sale, reason="paid twice", actor=SYSTEM, now=t + dt.timedelta(minutes=5))
            reversed_one = True
        t += STEP

    # the scheduled work all ran, once, without failures
    assert not Job.select().where(Job.status != "ok").exists()
    assert Job.select().where(Job.kind == "water.daily").count() >= 30
    assert ApportionmentRun.select().where(ApportionmentRun.month == NOV).count() == 3
    assert ApportionmentRun.select().where(ApportionmentRun.month < NOV).count() == 0
    assert BillSnapshot.select().where(BillSnapshot.month == NOV).count() == len(mall.accounts)
    # rent cut someone off and a payment brought the supply back
    assert Event.select().where(Event.kind == "rent.charged").count() >= 12 + 6 * 4 + 1
    cut = {
        e.account_id
        for e in Event.select().where((Event.kind == "relay.off") & (Event.created_at >= START))
    }
    back = {
        e.account_id
        for e in Event.select().where((Event.kind == "relay.on") & (Event.created_at >= START))
    }
    assert cut & back

    # the ledger verifies, from the domain and from the command line
    assert verify_ledger().ok
    result = app.test_cli_runner().invoke(ledger_cli, ["verify"])
    assert result.exit_code == 0 and "OK" in result.output

    # wallets = net sales - everything charged (energy, water, apportionment, rent and fees)
    wallet_ids = [a.wallet_id for a in mall.accounts]
    wallets = sum(LedgerAccount.get_by_id(w).balance_fen for w in wallet_ids)
    net_sales = sum(
        s.net_fen
        for s in Sale.select().where((Sale.property == mall.prop) & Sale.reversal_entry.is_null())
    )
    charges = -wallet_effects(wallet_ids, DEBIT_KINDS)
    assert charges > 0 and wallets == net_sales - charges

    # each revenue account is what its source says
    deducted = defaultdict(int)
    for kind, fen in (
        Reading.select(Meter.kind, Reading.charge_fen)
        .join(Meter)
        .where((Meter.property == mall.prop) & Reading.entry.is_null(False))
        .tuples()
    ):
        deducted[kind] += fen
    assert revenue(mall.prop, "revenue:electricity") == deducted["electricity"]
    assert revenue(mall.prop, "revenue:water") == deducted["water"]
    assert revenue(mall.prop, "revenue:apportionment") == sum(
        r.amount_fen for r in ApportionmentRun.select()
    )
    assert revenue(mall.prop, "revenue:rent") == -wallet_effects(
        wallet_ids, ("rent", "property_fee")
    )
    assert deducted["electricity"] + deducted["water"] == -wallet_effects(wallet_ids, ("charge",))
    pending_water = (
        Reading.select(fn.SUM(Reading.charge_fen))
        .join(Meter)
        .where((Meter.kind == "water") & Reading.entry.is_null())
        .scalar()
        or 0
    )
    assert 0 < pending_water < 20000  # only today's water waits for tonight's deduction

    # November's bills reconcile with the ledger and with the issued copies
    bills = bills_for(mall.prop, NOV)
    assert len(bills) == len(mall.accounts)
    for bill in bills:
        assert bill.reconciles
        assert (
            BillSnapshot.get(
                (BillSnapshot.account == bill.account_id) & (BillSnapshot.month == NOV)
            ).digest
            == bill.digest
        )
    december = {a.id: compute_bill(a, 202612) for a in mall.accounts}
    assert all(december[b.account_id].opening_fen == b.closing_fen for b in bills)
    assert sum(december[a.id].closing_fen for a in mall.accounts) == wallets
    assert sum(b.fees_fen for b in bills) + sum(
        d.fees_fen for d in december.values()
    ) == -wallet_effects(wallet_ids, ("rent", "property_fee"))
    # November's apportionment, posted on December 1st, is on December's bills with its rule
    shared = [s for d in december.values() for s in d.shared]
    assert {s.group for s in shared} == {"公共区域", "A座线损", "水损"}
    assert {s.rule for s in shared} == {"area", "consumption", "fixed"}
    assert sum(s.amount_fen for s in shared) == revenue(mall.prop, "revenue:apportionment")
