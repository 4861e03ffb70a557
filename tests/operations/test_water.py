"""Water daily deduction: rated as read, deducted once per local day, valve closed at zero."""

import datetime as dt
import itertools
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.domain.accounts import close_account
from app.domain.actors import SYSTEM
from app.domain.errors import ValidationError
from app.domain.jobs import run_water_daily
from app.domain.ledger import verify_ledger
from app.domain.sales import sell
from app.domain.tariffs import create_tariff
from app.domain.water import days_due, deduct_water_day, pending_water_fen
from app.models import Account, Command, Entry, Event, Meter, Reading
from app.models.operations import Job
from tests.factories import make_site
from tests.operations.helpers import balance, local, read, system_balance

NOV2 = dt.date(2026, 11, 2)
NOV3 = dt.date(2026, 11, 3)


@pytest.fixture
def funded(site, now):
    acct, (e, w) = site.account(kinds=("electricity", "water"))
    sell(acct, amount_fen=103000, method="cash", idempotency_key="fund", actor=SYSTEM, now=now)
    return acct, e, w


def test_water_readings_are_rated_but_not_charged_until_the_day_is_deducted(funded):
    acct, e, w = funded
    before = balance(acct)
    res = read(w, local("2026-11-02 14:00"), 1500)  # 1.5 m3 x 5.00
    assert (res.status, res.consumption, res.charge_fen) == ("accepted", 1500, 750)
    assert balance(acct) == before and pending_water_fen(acct) == 750
    assert Reading.get((Reading.meter == w.id) & (Reading.status == "accepted")).entry_id is None
    # electricity is still charged in real time
    assert read(e, local("2026-11-02 14:00"), 100).charge_fen == 70
    assert balance(acct) == before - 70


def test_water_day_deduction_is_idempotent(funded):
    acct, e, w = funded
    read(w, local("2026-11-02 14:00"), 1000)  # 5.00
    read(w, local("2026-11-02 20:00"), 1601)  # 601 L = 3.005 -> 3.00, 0.5 fen carried
    read(w, local("2026-11-03 00:30"), 1802)  # spans midnight: all of it is Nov 3's (1.005 + 0.005)
    before = balance(acct)
    first = deduct_water_day(acct.property, NOV2, actor=SYSTEM, now=local("2026-11-03 00:10"))
    assert first.created and first.amount_fen == 800 and first.readings == 2 and first.accounts == 1
    assert balance(acct) == before - 800
    assert system_balance(acct.property, "revenue:water") == 800
    again = deduct_water_day(acct.property, NOV2, actor=SYSTEM, now=local("2026-11-03 09:00"))
    assert not again.created and again.entry_id == first.entry_id and again.amount_fen == 800
    assert balance(acct) == before - 800
    assert (
        Entry.select()
        .where(Entry.idempotency_key == f"water:{acct.property_id}:2026-11-02")
        .count()
        == 1
    )
    nov3 = deduct_water_day(acct.property, NOV3, actor=SYSTEM, now=local("2026-11-04 00:10"))
    assert nov3.amount_fen == 101  # 201 L = 1.005 yuan + the 0.5 fen carried = 1.01
    assert balance(acct) == before - 901
    assert verify_ledger().ok


def test_a_day_that_is_not_over_cannot_be_deducted(funded):
    acct, _, w = funded
    with pytest.raises(ValidationError):
        deduct_water_day(acct.property, NOV2, actor=SYSTEM, now=local("2026-11-02 23:59"))


def test_a_reading_arriving_after_its_day_was_deducted_goes_with_the_next_day(funded):
    acct, _, w = funded
    before = balance(acct)
    read(w, local("2026-11-02 14:00"), 1000)
    deduct_water_day(acct.property, NOV2, actor=SYSTEM, now=local("2026-11-03 00:10"))
    # a pushed reading time-stamped 23:00 on Nov 2 arrives at 01:00 on Nov 3
    late = read(w, local("2026-11-02 23:00"), 1200)
    assert late.status == "accepted" and late.charge_fen == 100
    assert (
        deduct_water_day(
            acct.property, NOV2, actor=SYSTEM, now=local("2026-11-03 02:00")
        ).amount_fen
        == 500
    )
    nov3 = deduct_water_day(acct.property, NOV3, actor=SYSTEM, now=local("2026-11-04 00:10"))
    assert nov3.amount_fen == 100
    assert sum(r.charge_fen for r in Reading.select().where(Reading.meter == w.id)) == 600
    assert balance(acct) == before - 600


def test_valve_closes_at_zero_through_the_command_queue(site, now):
    acct, (e, w) = site.account(kinds=("electricity", "water"))
    sell(
        acct, amount_fen=103, method="cash", idempotency_key="a", actor=SYSTEM, now=now
    )  # 1.00 net
    Meter.update(relay_confirmed="on").where(Meter.account == acct.id).execute()
    read(w, local("2026-11-02 15:00"), 1000)  # 5.00 of water
    assert Account.get_by_id(acct.id).status != "arrears"
    deduct_water_day(site.prop, NOV2, actor=SYSTEM, now=local("2026-11-03 00:10"))
    assert balance(acct) == -400 and Account.get_by_id(acct.id).status == "arrears"
    water = Meter.get_by_id(w.id)
    assert (water.relay_desired, water.relay_reason) == ("off", "arrears")
    assert (
        Command.get((Command.meter == w.id) & (Command.status == "pending")).kind == "valve_close"
    )
    assert Command.get((Command.meter == e.id) & (Command.status == "pending")).kind == "relay_off"
    assert (
        Event.select()
        .where((Event.kind == "balance.arrears") & (Event.account == acct.id))
        .exists()
    )


def test_tiered_water_blocks_still_apply_per_month(site, now):
    tiered = create_tariff(
        site.prop,
        name="water tiers",
        utility="water",
        kind="tiered",
        spec={"blocks": [{"upto": 2, "price": 40000}, {"upto": None, "price": 60000}]},
        effective_from=now - dt.timedelta(days=30),
        actor=SYSTEM,
        now=now,
    )
    acct, (w,) = site.account(kinds=("water",))
    Account.update(tariff_water=tiered).where(Account.id == acct.id).execute()
    read(w, local("2026-11-02 18:00"), 1500)  # 1.5 m3 in block 1 = 6.00
    read(w, local("2026-11-03 18:00"), 2500)  # 0.5 m3 at 4.00 + 0.5 m3 at 6.00 = 5.00
    read(w, local("2026-12-01 08:00"), 3500)  # by time: 1 m3 mostly November (block 2) ...
    total = 0
    for day in (NOV2, NOV3, dt.date(2026, 12, 1)):
        total += deduct_water_day(
            site.prop, day, actor=SYSTEM, now=local("2026-12-02 00:10")
        ).amount_fen
    assert total == sum(r.charge_fen for r in Reading.select().where(Reading.meter == w.id))
    assert (
        total
        == 600 + 500 + Reading.get((Reading.meter == w.id) & (Reading.total == 3500)).charge_fen
    )
    assert balance(acct) == -total


def test_closing_an_account_settles_its_water_first(funded, now):
    acct, e, w = funded
    read(w, local("2026-11-02 14:00"), 1000)
    closed = close_account(acct, refund_method="cash", actor=SYSTEM, now=local("2026-11-02 15:00"))
    assert closed.status == "closed" and balance(acct) == 0
    assert system_balance(acct.property, "revenue:water") == 500
    assert pending_water_fen(acct) == 0
    assert verify_ledger().ok


def test_the_daily_run_records_a_job_per_day_and_catches_up_missed_days(funded):
    acct, _, w = funded
    before = balance(acct)
    read(w, local("2026-11-02 14:00"), 1000)
    read(w, local("2026-11-03 14:00"), 2000)
    read(w, local("2026-11-04 14:00"), 3000)
    now = local("2026-11-05 00:10")
    assert days_due(acct.property, now=now) == [NOV2, NOV3, dt.date(2026, 11, 4)]
    summary = run_water_daily(now=now)
    assert (summary.ran, summary.failed) == (3, 0)
    jobs = list(Job.select().where(Job.kind == "water.daily").order_by(Job.key))
    assert [j.key for j in jobs] == [f"water:{acct.property_id}:2026-11-0{d}" for d in (2, 3, 4)]
    assert all(j.status == "ok" and j.finished_at is not None for j in jobs)
    assert sum(json.loads(j.counts)["amount_fen"] for j in jobs) == 1500
    again = run_water_daily(now=local("2026-11-05 01:10"))
    assert (again.ran, again.skipped) == (0, 1)
    assert balance(acct) == before - 1500


_codes = itertools.count()


@settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(st.tuples(st.integers(1, 20), st.integers(0, 777)), min_size=1, max_size=15))
def test_daily_deductions_add_up_to_rating_the_whole_consumption_at_once(app, now, steps):
    site = make_site(now, code=f"W{next(_codes)}")
    acct, (w,) = site.account(kinds=("water",))
    t, total = now, 0
    for hours, litres in steps:
        t += dt.timedelta(hours=hours)
        total += litres
        read(w, t, total)
    end = t + dt.timedelta(days=1)
    day = NOV2
    deducted = 0
    while local(f"{day + dt.timedelta(days=1)} 00:00") <= end:
        deducted += deduct_water_day(site.prop, day, actor=SYSTEM, now=end).amount_fen
        day += dt.timedelta(days=1)
    assert deducted == total * 50000 // 100000  # 5.00 yuan per m3, exact to the fen
    assert balance(acct) == -deducted


def test_a_released_held_water_reading_is_deducted_by_the_daily_run(funded):
    from app.domain.readings import release_held_reading

    acct, _, w = funded
    before = balance(acct)
    held = read(w, local("2026-11-02 13:00"), 50_000)  # 50 m3 in an hour: above the plausible rate
    assert held.status == "held"
    row = Reading.get((Reading.meter == w.id) & (Reading.status == "held"))
    released = release_held_reading(
        row, actor=SYSTEM, now=local("2026-11-02 16:00"), reason="pipe burst"
    )
    assert released.status == "released" and released.charge_fen == 25000
    assert balance(acct) == before and Reading.get_by_id(row.id).entry_id is None
    assert (
        deduct_water_day(
            acct.property, NOV2, actor=SYSTEM, now=local("2026-11-03 00:10")
        ).amount_fen
        == 25000
    )
    assert balance(acct) == before - 25000 and Reading.get_by_id(row.id).entry_id is not None


def test_a_swapped_water_meters_last_reading_is_still_deducted(site, funded):
    from app.domain.accounts import swap_meter
    from app.domain.site import create_meter

    acct, _, w = funded
    before = balance(acct)
    new = create_meter(
        site.prop, serial="W-NEW", kind="water", actor=SYSTEM, now=local("2026-11-02 14:00")
    )
    swap_meter(
        w,
        new,
        old_final_total=800,
        new_initial_total=0,
        actor=SYSTEM,
        now=local("2026-11-02 15:00"),
    )
    read(new, local("2026-11-02 20:00"), 200)
    assert (
        deduct_water_day(site.prop, NOV2, actor=SYSTEM, now=local("2026-11-03 00:10")).amount_fen
        == 500
    )
    assert balance(acct) == before - 500
