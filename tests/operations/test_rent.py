"""Rent and property fee: periods, proration, idempotent posting, cut-off when short."""

import datetime as dt
import json

import pytest

from app.domain.actors import SYSTEM, Actor
from app.domain.errors import PermissionDenied, ValidationError
from app.domain.jobs import run_rent
from app.domain.ledger import verify_ledger
from app.domain.rent import (
    charge_due,
    create_recurring_charge,
    end_recurring_charge,
    prorate,
    schedule_periods,
)
from app.domain.sales import sell
from app.models import Account, Command, Entry, Event, Meter
from app.models.operations import Job, RecurringCharge
from tests.operations.helpers import balance, local, system_balance

D = dt.date


def spans(periods):
    return [(p.start.isoformat(), p.last_day.isoformat(), p.amount_fen) for p in periods]


def test_monthly_charge_prorates_the_first_month_by_days():
    periods = schedule_periods(
        schedule="monthly",
        amount_fen=300000,
        start=D(2026, 11, 15),
        day_of_month=1,
        until=D(2027, 1, 1),
    )
    # Nov 15-30 is 16 of November's 30 days: 3000.00 x 16/30 = 1600.00
    assert spans(periods) == [
        ("2026-11-15", "2026-11-30", 160000),
        ("2026-12-01", "2026-12-31", 300000),
        ("2027-01-01", "2027-01-31", 300000),
    ]


def test_partial_first_month_is_charged_in_full_without_proration():
    periods = schedule_periods(
        schedule="monthly",
        amount_fen=100000,
        start=D(2026, 11, 15),
        day_of_month=1,
        until=D(2026, 12, 1),
        prorate_partial=False,
    )
    assert [p.amount_fen for p in periods] == [100000, 100000]


def test_proration_rounds_half_up_to_the_fen():
    assert prorate(100, 1, 3) == 33  # 33.33
    assert prorate(100, 1, 8) == 13  # 12.5 -> 13
    assert prorate(100001, 15, 30) == 50001  # 50000.5 -> 50001


def test_day_31_falls_on_the_last_day_of_shorter_months():
    periods = schedule_periods(
        schedule="monthly",
        amount_fen=1000,
        start=D(2027, 1, 31),
        day_of_month=31,
        until=D(2027, 4, 30),
    )
    assert [p.start.isoformat() for p in periods] == [
        "2027-01-31",
        "2027-02-28",
        "2027-03-31",
        "2027-04-30",
    ]
    assert all(p.amount_fen == 1000 for p in periods)


def test_every_n_days_and_an_end_date_that_cuts_the_last_period():
    periods = schedule_periods(
        schedule="days",
        amount_fen=7000,
        start=D(2026, 11, 1),
        interval_days=7,
        until=D(2026, 12, 31),
        end=D(2026, 11, 17),
    )
    # Nov 15-17 is 3 of 7 days: 70.00 x 3/7 = 30.00
    assert spans(periods) == [
        ("2026-11-01", "2026-11-07", 7000),
        ("2026-11-08", "2026-11-14", 7000),
        ("2026-11-15", "2026-11-17", 3000),
    ]


def test_periods_already_charged_are_not_listed_again():
    periods = schedule_periods(
        schedule="monthly",
        amount_fen=1000,
        start=D(2026, 11, 1),
        day_of_month=1,
        until=D(2027, 2, 1),
        after=D(2026, 12, 1),
    )
    assert [p.start.isoformat() for p in periods] == ["2027-01-01", "2027-02-01"]


@pytest.fixture
def tenant(site, now):
    acct, meters = site.account(kinds=("electricity", "water"))
    sell(
        acct, amount_fen=100000, method="cash", idempotency_key="fund", actor=SYSTEM, now=now
    )  # 970.00
    Meter.update(relay_confirmed="on").where(Meter.account == acct.id).execute()
    return acct, meters


def test_rent_posts_each_period_once(site, tenant, now):
    acct, _ = tenant
    charge = create_recurring_charge(
        acct,
        kind="rent",
        amount_fen=30000,
        schedule="monthly",
        day_of_month=1,
        start_date=D(2026, 11, 1),
        name="Shop rent",
        actor=SYSTEM,
        now=now,
    )
    before = balance(acct)
    first = charge_due(site.prop, today=D(2026, 11, 2), actor=SYSTEM, now=now)
    assert (first.periods, first.amount_fen, first.accounts, first.short) == (1, 30000, 1, 0)
    again = charge_due(site.prop, today=D(2026, 11, 2), actor=SYSTEM, now=now)
    assert again.periods == 0
    assert balance(acct) == before - 30000
    entry = Entry.get(Entry.idempotency_key == f"rent:{charge.id}:2026-11-01")
    assert entry.kind == "rent" and "2026-11-01 - 2026-11-30" in entry.memo
    assert system_balance(site.prop, "revenue:rent") == 30000
    event = Event.get((Event.kind == "rent.charged") & (Event.account == acct.id))
    assert json.loads(event.data)["amount_fen"] == 30000 and not json.loads(event.data)["short"]
    # December is charged on December 1st, not before
    assert charge_due(site.prop, today=D(2026, 11, 30), actor=SYSTEM, now=now).periods == 0
    assert charge_due(site.prop, today=D(2026, 12, 1), actor=SYSTEM, now=now).periods == 1
    assert RecurringCharge.get_by_id(charge.id).last_period == D(2026, 12, 1)
    assert verify_ledger().ok


def test_rent_the_balance_cannot_cover_is_still_charged_and_the_supply_is_cut(site, tenant, now):
    acct, (e, w) = tenant
    create_recurring_charge(
        acct,
        kind="property_fee",
        amount_fen=120000,
        schedule="monthly",
        day_of_month=1,
        start_date=D(2026, 11, 1),
        actor=SYSTEM,
        now=now,
    )
    run = charge_due(site.prop, today=D(2026, 11, 2), actor=SYSTEM, now=now)
    assert run.short == 1
    assert balance(acct) == 97000 - 120000
    assert Account.get_by_id(acct.id).status == "arrears"
    for meter in (e, w):
        m = Meter.get_by_id(meter.id)
        assert (m.relay_desired, m.relay_reason) == ("off", "arrears")
    kinds = {c.kind for c in Command.select().where(Command.status == "pending")}
    assert kinds == {"relay_off", "valve_close"}
    event = json.loads(Event.get(Event.kind == "rent.charged").data)
    assert event["short"] and event["balance_fen"] == -23000 and event["kind"] == "property_fee"
    assert (
        Event.select()
        .where((Event.kind == "balance.arrears") & (Event.account == acct.id))
        .exists()
    )
    # paying restores the supply
    sell(acct, amount_fen=50000, method="cash", idempotency_key="pay", actor=SYSTEM, now=now)
    assert Meter.get_by_id(e.id).relay_desired == "on"


def test_a_missed_day_is_caught_up_and_the_daily_job_runs_once(site, tenant, now):
    acct, _ = tenant
    create_recurring_charge(
        acct,
        kind="rent",
        amount_fen=7000,
        schedule="days",
        interval_days=7,
        start_date=D(2026, 11, 1),
        actor=SYSTEM,
        now=now,
    )
    summary = run_rent(now=local("2026-11-16 00:15"))
    assert summary.ran == 1
    job = Job.get(Job.key == f"rent:{site.prop.id}:2026-11-16")
    assert job.status == "ok" and json.loads(job.counts)["periods"] == 3  # Nov 1, 8, 15
    assert run_rent(now=local("2026-11-16 05:15")).skipped == 1
    assert balance(acct) == 97000 - 21000


def test_closed_accounts_are_not_charged(site, now):
    from app.domain.accounts import close_account

    acct, _ = site.account()
    charge = create_recurring_charge(
        acct,
        kind="rent",
        amount_fen=1000,
        schedule="monthly",
        day_of_month=1,
        start_date=D(2026, 12, 1),
        actor=SYSTEM,
        now=now,
    )
    close_account(acct, actor=SYSTEM, now=now)
    run = charge_due(site.prop, today=D(2026, 12, 2), actor=SYSTEM, now=now)
    assert (run.periods, run.skipped) == (0, 1)
    assert RecurringCharge.get_by_id(charge.id).last_period is None


def test_ending_a_charge_prorates_its_last_period(site, tenant, now):
    acct, _ = tenant
    charge = create_recurring_charge(
        acct,
        kind="rent",
        amount_fen=31000,
        schedule="monthly",
        day_of_month=1,
        start_date=D(2026, 11, 1),
        actor=SYSTEM,
        now=now,
    )
    charge_due(site.prop, today=D(2026, 11, 2), actor=SYSTEM, now=now)
    with pytest.raises(ValidationError):
        end_recurring_charge(charge, end_date=D(2026, 10, 30), actor=SYSTEM, now=now)
    end_recurring_charge(charge, end_date=D(2026, 12, 10), actor=SYSTEM, now=now)
    run = charge_due(site.prop, today=D(2027, 2, 1), actor=SYSTEM, now=now)
    assert (run.periods, run.amount_fen) == (1, 10000)  # Dec 1-10: 310.00 x 10/31


def test_bad_recurring_charges_are_refused_with_a_message(site, now):
    acct, _ = site.account()
    good = {
        "kind": "rent",
        "amount_fen": 1000,
        "schedule": "monthly",
        "day_of_month": 1,
        "start_date": D(2026, 11, 1),
        "actor": SYSTEM,
        "now": now,
    }
    for field, bad in (
        ("kind", "parking"),
        ("amount_fen", 0),
        ("amount_fen", 12.5),
        ("schedule", "weekly"),
        ("day_of_month", 32),
        ("start_date", D(2020, 1, 1)),
        ("end_date", D(2026, 10, 1)),
    ):
        with pytest.raises(ValidationError):
            create_recurring_charge(acct, **{**good, field: bad})
    with pytest.raises(ValidationError):
        create_recurring_charge(acct, **{**good, "schedule": "days", "day_of_month": None})
    with pytest.raises(PermissionDenied):
        create_recurring_charge(acct, **{**good, "actor": Actor("c", "cashier")})
    assert RecurringCharge.select().count() == 0
