"""Monthly bills: figures reconcile with the ledger, regeneration is identical, Excel export."""

import datetime as dt
import io
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from app.domain.actors import SYSTEM
from app.domain.apportionment import create_group, post_apportionment
from app.domain.bills import bills_for, compute_bill, issue_bills
from app.domain.jobs import run_bills
from app.domain.ledger import verify_ledger
from app.domain.rent import charge_due, create_recurring_charge
from app.domain.sales import reverse_sale, sell
from app.domain.site import create_meter
from app.domain.water import deduct_water_day
from app.models import Entry, Leg
from app.models.operations import BillSnapshot, Job
from app.operations.excel import bill_workbook, bills_workbook
from tests.operations.helpers import balance, local, read

NOV, OCT = 202611, 202610


def ledger_balance(acct, before):
    total = (
        Leg.select(Leg.amount_fen)
        .join(Entry)
        .where((Leg.ledger_account == acct.wallet_id) & (Entry.created_at < before))
        .tuples()
    )
    return -sum(a for (a,) in total)


@pytest.fixture
def month(site):
    """One tenant's October and November: sales, electricity, water, rent, apportionment, a reversal."""
    oct20 = local("2026-10-20 10:00")
    acct, (e, w) = site.account(kinds=("electricity", "water"), at=oct20)
    other, _ = site.account(at=oct20)
    sell(
        acct, amount_fen=50000, method="cash", idempotency_key="oct", actor=SYSTEM, now=oct20
    )  # 485.00
    read(e, local("2026-10-31 20:00"), 1000)  # 10 kWh = 7.00, October
    master = create_meter(site.prop, serial="M1", kind="electricity", actor=SYSTEM, now=oct20)
    group = create_group(
        site.prop,
        name="Common area",
        master_meter=master,
        mode="master",
        rule="area",
        tariff=site.flat,
        members=[acct, other],
        master_initial_total=0,
        start_month=OCT,
        actor=SYSTEM,
        now=oct20,
    )
    read(master, local("2026-10-30 12:00"), 2000)  # 20 kWh = 14.00, split 7.00 / 7.00
    create_recurring_charge(
        acct,
        kind="rent",
        amount_fen=20000,
        schedule="monthly",
        day_of_month=1,
        start_date=dt.date(2026, 11, 1),
        name="Shop 1 rent",
        actor=SYSTEM,
        now=oct20,
    )
    read(w, local("2026-10-31 22:00"), 400)  # 0.4 m3 = 2.00, deducted on Nov 1 for Oct 31
    deduct_water_day(site.prop, dt.date(2026, 10, 31), actor=SYSTEM, now=local("2026-11-01 00:10"))
    charge_due(site.prop, today=dt.date(2026, 11, 1), actor=SYSTEM, now=local("2026-11-01 00:15"))
    post_apportionment(group, OCT, actor=SYSTEM, now=local("2026-11-01 01:00"))
    sale = sell(
        acct,
        amount_fen=10000,
        method="wechat",
        idempotency_key="nov",
        actor=SYSTEM,
        now=local("2026-11-03 09:00"),
    ).sale  # 97.00
    reverse_sale(sale, reason="wrong account", actor=SYSTEM, now=local("2026-11-03 09:05"))
    sell(
        acct,
        amount_fen=20000,
        method="cash",
        idempotency_key="nov2",
        actor=SYSTEM,
        now=local("2026-11-04 09:00"),
    )  # 194.00
    read(e, local("2026-11-10 20:00"), 3000)  # 20 kWh = 14.00
    read(w, local("2026-11-10 20:00"), 1400)  # 1 m3 = 5.00
    deduct_water_day(site.prop, dt.date(2026, 11, 10), actor=SYSTEM, now=local("2026-11-11 00:10"))
    read(w, local("2026-11-30 23:30"), 1600)  # 0.2 m3 = 1.00: deducted on Dec 1, in December's bill
    deduct_water_day(site.prop, dt.date(2026, 11, 30), actor=SYSTEM, now=local("2026-12-01 00:10"))
    return acct, other, e, w


def test_the_monthly_bill_reconciles_with_the_ledger(site, month):
    acct, other, e, w = month
    bill = compute_bill(acct, NOV)
    assert bill.opening_fen == 48500 - 700 == ledger_balance(acct, local("2026-11-01 00:00"))
    assert bill.sales_fen == 9700 + 19400
    assert bill.reversals_fen == -9700
    assert bill.electricity_fen == 1400
    assert bill.water_fen == 200 + 500  # Oct 31's water (deducted Nov 1) and Nov 10's
    assert bill.apportionment_fen == 700
    assert bill.fees_fen == 20000
    assert bill.closing_fen == ledger_balance(acct, local("2026-12-01 00:00"))
    assert bill.closing_fen == (
        bill.opening_fen
        + bill.sales_fen
        - bill.electricity_fen
        - bill.water_fen
        - bill.apportionment_fen
        - bill.fees_fen
        + bill.reversals_fen
    )
    assert bill.reconciles
    assert compute_bill(acct, 202612).opening_fen == bill.closing_fen
    assert compute_bill(acct, 202612).water_fen == 100
    assert balance(acct) == compute_bill(acct, 202612).closing_fen
    # usage per meter and rate, from the readings taken in November
    usage = {m.serial: m for m in bill.meters}
    assert usage[e.serial].consumption == 2000 and usage[e.serial].rate_units == {"flat": 2000}
    assert usage[w.serial].consumption == 1200 and usage[w.serial].rated_fen == 600
    # the share and its rule are on the bill
    (shared,) = bill.shared
    assert (shared.group, shared.month, shared.rule, shared.amount_fen) == (
        "Common area",
        "2026-10",
        "area",
        700,
    )
    assert (shared.weight, shared.weight_total) == (500000, 1000000)
    fee_line = next(line for line in bill.lines if line.category == "fees")
    assert "Shop 1 rent 2026-11-01 - 2026-11-30" in fee_line.memo
    assert verify_ledger().ok


def test_regenerating_a_bill_gives_the_same_bill(site, month):
    acct, other, e, w = month
    first = compute_bill(acct, NOV)
    assert compute_bill(acct, NOV) == first
    # December's activity does not touch November's bill
    sell(
        acct,
        amount_fen=5000,
        method="cash",
        idempotency_key="dec",
        actor=SYSTEM,
        now=local("2026-12-02 10:00"),
    )
    read(e, local("2026-12-02 11:00"), 3500)
    assert compute_bill(acct, NOV).digest == first.digest


def test_issued_bills_are_stored_once_and_checked_on_regeneration(site, month):
    acct, other, e, w = month
    counts = issue_bills(site.prop, month=NOV, actor=SYSTEM, now=local("2026-12-01 00:40"))
    assert counts == {"issued": 2, "unchanged": 0, "changed": 0}
    snap = BillSnapshot.get((BillSnapshot.account == acct.id) & (BillSnapshot.month == NOV))
    assert snap.digest == compute_bill(acct, NOV).digest
    assert issue_bills(site.prop, month=NOV, actor=SYSTEM, now=local("2026-12-02 00:40")) == {
        "issued": 0,
        "unchanged": 2,
        "changed": 0,
    }
    summary = run_bills(now=local("2026-12-01 00:40"))
    assert summary.ran == 1
    assert Job.get(Job.key == f"bills:{site.prop.id}:2026-11").status == "ok"


def test_the_bill_workbook_has_exact_money_as_numbers(site, month):
    acct, *_ = month
    bill = compute_bill(acct, NOV)
    ws = load_workbook(io.BytesIO(bill_workbook(bill))).active
    rows = {r[0].value: r for r in ws.iter_rows() if r[0].value}
    assert rows["Opening balance"][1].value == Decimal("478.00")
    assert rows["Opening balance"][1].number_format == "0.00"
    assert rows["Closing balance"][1].value == Decimal(bill.closing_fen) / 100
    assert rows["Rent and fees"][1].value == Decimal("-200.00")
    everything = load_workbook(io.BytesIO(bills_workbook(bills_for(site.prop, NOV), "Nov")))
    summary = everything["Summary"]
    numbers = [r[0].value for r in summary.iter_rows(min_row=3)]
    assert numbers[:2] == [acct.number, month[1].number] and numbers[-1] == "Total"
    closing = [r[11].value for r in summary.iter_rows(min_row=3)]
    assert closing[-1] == sum(closing[:-1])
    assert {"Usage", "Ledger lines"} <= set(everything.sheetnames)
