"""Common-area apportionment and line loss: measuring, rating, splitting to the fen, posting once."""

import datetime as dt
import itertools
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app import clock
from app.domain.actors import SYSTEM, Actor
from app.domain.apportionment import (
    compute_split,
    create_group,
    dry_run,
    post_apportionment,
    split_amount,
)
from app.domain.errors import Conflict, PermissionDenied, ValidationError
from app.domain.jobs import run_apportionment
from app.domain.ledger import verify_ledger
from app.domain.sales import sell
from app.domain.site import create_meter
from app.domain.tariffs import create_tariff
from app.models import Entry, Event, Meter, Reading, Room
from app.models.operations import ApportionmentPart, ApportionmentRun, Job
from tests.factories import make_site
from tests.operations.helpers import balance, local, read, system_balance

NOV = 202611
AFTER_NOV = local("2026-12-01 02:00")
SETTINGS = settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def master_meter(site, serial="M0001"):
    return create_meter(
        site.prop, serial=f"{site.prefix}{serial}", kind="electricity", actor=SYSTEM, now=site.now
    )


def tenants(site, areas_m2):
    accounts = []
    for area in areas_m2:
        acct, meters = site.account()
        Room.update(area_cm2=area * 10000).where(Room.id == acct.room_id).execute()
        sell(
            acct,
            amount_fen=100000,
            method="cash",
            idempotency_key=f"{site.prop.code}-{acct.id}",
            actor=SYSTEM,
            now=site.now,
        )
        accounts.append((acct, meters[0]))
    return accounts


def measure(meter, kwh, at="2026-11-20 12:00"):
    """The master (or a tenant meter) read ``kwh`` since its baseline."""
    return read(Meter.get_by_id(meter.id), local(at), kwh * 100)


def test_master_meter_is_read_as_a_measuring_meter_and_never_charged(site, now):
    ((acct, _),) = tenants(site, [50])
    m = master_meter(site)
    create_group(
        site.prop,
        name="Lobby",
        master_meter=m,
        mode="master",
        rule="area",
        tariff=site.flat,
        members=[acct],
        master_initial_total=0,
        actor=SYSTEM,
        now=now,
    )
    meter = Meter.get_by_id(m.id)
    assert meter.status == "active" and meter.account_id is None
    res = measure(m, 100)
    assert (res.status, res.consumption, res.charge_fen) == ("accepted", 10000, 0)
    assert Reading.get((Reading.meter == m.id) & (Reading.status == "accepted")).entry_id is None
    assert system_balance(site.prop, "revenue:electricity") == 0


def test_area_rule_splits_the_master_use_to_the_fen(site, now):
    accts = tenants(site, [30, 50, 20])
    m = master_meter(site)
    group = create_group(
        site.prop,
        name="Common area",
        master_meter=m,
        mode="master",
        rule="area",
        tariff=site.flat,
        members=[a for a, _ in accts],
        master_initial_total=0,
        actor=SYSTEM,
        now=now,
    )
    measure(m, 100)  # 100 kWh x 0.70 = 70.00
    split = dry_run(group, NOV, actor=Actor("v", "viewer"))
    assert (split.master_units, split.units, split.amount_fen) == (10000, 10000, 7000)
    assert [p.amount_fen for p in split.parts] == [2100, 3500, 1400]
    assert [p.units for p in split.parts] == [3000, 5000, 2000]
    assert ApportionmentRun.select().count() == 0  # a dry run posts nothing
    before = [balance(a) for a, _ in accts]
    run, created = post_apportionment(
        group, NOV, actor=SYSTEM, now=AFTER_NOV, expected_digest=split.digest
    )
    assert created and run.amount_fen == 7000 and run.entry_id is not None
    assert [b - balance(a) for (a, _), b in zip(accts, before, strict=True)] == [2100, 3500, 1400]
    assert system_balance(site.prop, "revenue:apportionment") == 7000
    assert Entry.get_by_id(run.entry_id).idempotency_key == f"apportionment:{group.id}:2026-11"
    parts = {
        p.account_id: p.amount_fen
        for p in ApportionmentPart.select().where(ApportionmentPart.run == run.id)
    }
    assert sum(parts.values()) == 7000
    assert Event.select().where(Event.kind == "apportionment.charged").count() == 3
    again, created = post_apportionment(group, NOV, actor=SYSTEM, now=AFTER_NOV)
    assert not created and again.id == run.id
    assert system_balance(site.prop, "revenue:apportionment") == 7000
    assert verify_ledger().ok


def test_largest_remainder_gives_the_odd_fen_to_the_largest_remainders(site, now):
    accts = tenants(site, [10, 10, 10])
    m = master_meter(site)
    group = create_group(
        site.prop,
        name="Stairs",
        master_meter=m,
        mode="master",
        rule="area",
        tariff=site.flat,
        members=[a for a, _ in accts],
        master_initial_total=0,
        actor=SYSTEM,
        now=now,
    )
    read(Meter.get_by_id(m.id), local("2026-11-20 12:00"), 143)  # 1.43 kWh = 1.001 -> 1.00
    split = compute_split(group, NOV)
    assert split.amount_fen == 100 and [p.amount_fen for p in split.parts] == [34, 33, 33]


def test_line_loss_by_consumption_share(site, now):
    accts = tenants(site, [10, 10])
    (a1, e1), (a2, e2) = accts
    m = master_meter(site)
    group = create_group(
        site.prop,
        name="Line loss",
        master_meter=m,
        mode="loss",
        rule="consumption",
        tariff=site.flat,
        members=[a1, a2],
        sub_meters=[e1, e2],
        master_initial_total=0,
        actor=SYSTEM,
        now=now,
    )
    measure(m, 100)
    measure(e1, 30)
    measure(e2, 50)
    split = compute_split(group, NOV)
    assert (split.master_units, split.sub_units, split.units) == (10000, 8000, 2000)
    assert split.amount_fen == 1400  # 20 kWh of loss at 0.70
    assert [p.weight for p in split.parts] == [3000, 5000]
    assert [p.amount_fen for p in split.parts] == [525, 875]


def test_sub_meters_above_the_master_share_nothing_and_say_so(site, now):
    ((a1, e1),) = tenants(site, [10])
    m = master_meter(site)
    group = create_group(
        site.prop,
        name="Loss",
        master_meter=m,
        mode="loss",
        rule="area",
        tariff=site.flat,
        members=[a1],
        sub_meters=[e1],
        master_initial_total=0,
        actor=SYSTEM,
        now=now,
    )
    measure(m, 10)
    measure(e1, 12)
    split = compute_split(group, NOV)
    assert split.units == 0 and split.amount_fen == 0 and split.notes
    run, _ = post_apportionment(group, NOV, actor=SYSTEM, now=AFTER_NOV)
    assert run.entry_id is None and run.amount_fen == 0


def test_fixed_ratios_and_a_tiered_tariff(site, now):
    accts = tenants(site, [10, 10, 10])
    tiered = create_tariff(
        site.prop,
        name="public tiers",
        utility="electricity",
        kind="tiered",
        spec={"blocks": [{"upto": 50, "price": 6000}, {"upto": None, "price": 7000}]},
        effective_from=now - dt.timedelta(days=60),
        actor=SYSTEM,
        now=now,
    )
    m = master_meter(site)
    group = create_group(
        site.prop,
        name="Fixed",
        master_meter=m,
        mode="master",
        rule="fixed",
        tariff=tiered,
        members=[(accts[0][0], 50), (accts[1][0], 30), (accts[2][0], 20)],
        master_initial_total=0,
        actor=SYSTEM,
        now=now,
    )
    measure(m, 80)  # 50 kWh x 0.60 + 30 kWh x 0.70 = 51.00
    split = compute_split(group, NOV)
    assert split.amount_fen == 5100
    assert [p.amount_fen for p in split.parts] == [2550, 1530, 1020]


def test_only_the_months_readings_count(site, now):
    ((a1, _),) = tenants(site, [10])
    m = master_meter(site)
    group = create_group(
        site.prop,
        name="Lobby",
        master_meter=m,
        mode="master",
        rule="area",
        tariff=site.flat,
        members=[a1],
        master_initial_total=0,
        actor=SYSTEM,
        now=now,
    )
    measure(m, 10, at="2026-11-30 23:00")
    measure(m, 15, at="2026-12-01 01:00")  # local December: not November's
    assert compute_split(group, NOV).master_units == 1000
    start, end = clock.month_bounds("Asia/Shanghai", NOV)
    assert (start, end) == (local("2026-11-01 00:00"), local("2026-12-01 00:00"))


def test_posting_is_refused_before_the_month_is_over_and_when_the_figures_changed(site, now):
    ((a1, _),) = tenants(site, [10])
    m = master_meter(site)
    group = create_group(
        site.prop,
        name="Lobby",
        master_meter=m,
        mode="master",
        rule="area",
        tariff=site.flat,
        members=[a1],
        master_initial_total=0,
        actor=SYSTEM,
        now=now,
    )
    measure(m, 10)
    split = compute_split(group, NOV)
    with pytest.raises(ValidationError):
        post_apportionment(group, NOV, actor=SYSTEM, now=local("2026-11-30 23:00"))
    measure(m, 12, at="2026-11-25 12:00")
    with pytest.raises(Conflict):
        post_apportionment(group, NOV, actor=SYSTEM, now=AFTER_NOV, expected_digest=split.digest)
    with pytest.raises(PermissionDenied):
        post_apportionment(group, NOV, actor=Actor("c", "cashier"), now=AFTER_NOV)
    assert ApportionmentRun.select().count() == 0


def test_bad_groups_are_refused(site, now):
    ((a1, e1),) = tenants(site, [10])
    m = master_meter(site)
    base = {
        "name": "G",
        "master_meter": m,
        "mode": "master",
        "rule": "area",
        "tariff": site.flat,
        "members": [a1],
        "master_initial_total": 0,
        "actor": SYSTEM,
        "now": now,
    }
    for change in (
        {"master_meter": e1},
        {"tariff": site.tou},
        {"tariff": site.water},
        {"mode": "x"},
        {"rule": "x"},
        {"members": []},
        {"rule": "fixed"},
        {"mode": "loss"},
        {"name": " "},
    ):
        with pytest.raises(ValidationError):
            create_group(site.prop, **{**base, **change})
    group = create_group(site.prop, **{**base, "rule": "consumption"})
    measure(m, 10)  # the tenant used nothing: no consumption share to split by
    with pytest.raises(ValidationError):
        compute_split(group, NOV)


def test_the_monthly_job_posts_last_month_once_and_records_refusals(site, now):
    (a1, _), (a2, _) = tenants(site, [10, 0])
    m = master_meter(site)
    good = create_group(
        site.prop,
        name="Good",
        master_meter=m,
        mode="master",
        rule="area",
        tariff=site.flat,
        members=[a1, a2],
        master_initial_total=0,
        actor=SYSTEM,
        now=now,
    )
    m2 = master_meter(site, "M0002")
    bad = create_group(
        site.prop,
        name="Bad",
        master_meter=m2,
        mode="master",
        rule="area",
        tariff=site.flat,
        members=[a2],
        master_initial_total=0,
        actor=SYSTEM,
        now=now,
    )
    measure(m, 10)
    measure(m2, 10)
    summary = run_apportionment(now=AFTER_NOV)
    assert (summary.ran, summary.failed) == (1, 1)
    ok = Job.get(Job.key == f"apportionment:{good.id}:2026-11")
    failed = Job.get(Job.key == f"apportionment:{bad.id}:2026-11")
    assert ok.status == "ok" and json.loads(ok.counts)["amount_fen"] == 700
    assert failed.status == "failed" and "area" in failed.error
    again = run_apportionment(now=AFTER_NOV + dt.timedelta(hours=1))
    assert (again.skipped, again.failed) == (1, 1)
    assert Job.get_by_id(failed.id).attempts == 2
    assert ApportionmentRun.select().count() == 1


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    amount=st.integers(0, 10**9),
    units=st.integers(0, 10**9),
    weights=st.lists(st.integers(0, 10**7), min_size=1, max_size=30).filter(any),
)
def test_split_amount_parts_always_add_up(amount, units, weights):
    money, qty = split_amount(amount, units, weights)
    assert sum(money) == amount and sum(qty) == units
    total = sum(weights)
    for part, w in zip(money, weights, strict=True):
        assert abs(part * total - amount * w) < total  # within one fen of the exact share


_codes = itertools.count()


@SETTINGS
@given(
    rule=st.sampled_from(["area", "consumption", "fixed"]),
    weights=st.lists(st.integers(1, 3000), min_size=1, max_size=5),
    master_kwh=st.integers(0, 20000),
    mode=st.sampled_from(["master", "loss"]),
)
def test_apportionment_by_each_rule_sums_exactly(app, now, rule, weights, master_kwh, mode):
    site = make_site(now, code=f"A{next(_codes)}")
    accts = tenants(site, weights if rule == "area" else [10] * len(weights))
    m = master_meter(site)
    members = [(a, w) if rule == "fixed" else a for (a, _), w in zip(accts, weights, strict=True)]
    subs = [e for _, e in accts]
    group = create_group(
        site.prop,
        name="G",
        master_meter=m,
        mode=mode,
        rule=rule,
        tariff=site.flat,
        members=members,
        sub_meters=subs if mode == "loss" else (),
        master_initial_total=0,
        actor=SYSTEM,
        now=now,
    )
    if rule == "consumption" or mode == "loss":
        for (_, e), w in zip(accts, weights, strict=True):
            measure(e, w)  # w kWh each
    measure(m, master_kwh + (sum(weights) if mode == "loss" else 0))
    split = compute_split(group, NOV)
    assert split.units == master_kwh * 100
    assert split.amount_fen == (2 * master_kwh * 100 * 7000 + 10000) // 20000
    assert sum(p.amount_fen for p in split.parts) == split.amount_fen
    assert sum(p.units for p in split.parts) == split.units
    assert [p.weight for p in split.parts] == [
        w * (10000 if rule == "area" else 100 if rule == "consumption" else 1) for w in weights
    ]
    before = sum(balance(a) for a, _ in accts)
    run, _ = post_apportionment(group, NOV, actor=SYSTEM, now=AFTER_NOV)
    assert before - sum(balance(a) for a, _ in accts) == run.amount_fen == split.amount_fen
    assert system_balance(site.prop, "revenue:apportionment") == split.amount_fen
