import datetime as dt

import pytest

from app.domain.actors import SYSTEM, Actor
from app.domain.errors import NotFound, PermissionDenied, ValidationError
from app.domain.ledger import verify_ledger
from app.domain.readings import ReadingIn, apply_reading, apply_readings, release_held_reading
from app.domain.sales import sell
from app.domain.tariffs import add_tariff_version, create_tariff
from app.domain.water import deduct_water_day
from app.models import Event, LedgerAccount, Meter, Reading

H = dt.timedelta(hours=1)


def bal(acct):
    return LedgerAccount.get_by_id(acct.wallet_id).balance_fen


def read(meter, at, total, **kw):
    return apply_reading(
        meter, read_at=at, total=total, actor=SYSTEM, now=max(at, dt.datetime(2026, 1, 1)), **kw
    )


@pytest.fixture
def funded(site, now):
    acct, (meter,) = site.account()
    sell(
        acct,
        amount_fen=100000,
        method="cash",
        idempotency_key=f"fund-{acct.id}",
        actor=SYSTEM,
        now=now,
    )
    return acct, meter


def test_consumption_is_charged_at_the_flat_price(funded, now):
    acct, meter = funded
    before = bal(acct)
    res = read(meter, now + H, 1234)  # 12.34 kWh x 0.70 = 8.638 yuan
    assert (res.status, res.consumption, res.charge_fen) == ("accepted", 1234, 863)
    assert bal(acct) == before - 863
    assert Meter.get_by_id(meter.id).carry == 8000  # 0.8 fen carried (x 10^-4)
    res2 = read(meter, now + 2 * H, 1234 + 3)  # 0.03 kWh -> 2.1 fen + 0.8 carried = 2.9
    assert res2.charge_fen == 2 and Meter.get_by_id(meter.id).carry == 9000
    assert verify_ledger().ok


def test_duplicate_reading_is_idempotent_and_charges_once(funded, now):
    acct, meter = funded
    first = read(meter, now + H, 1000)
    before = bal(acct)
    again = read(meter, now + H, 1000)
    assert again.duplicate and again.charge_fen == first.charge_fen == 700
    assert bal(acct) == before
    assert Reading.select().where(Reading.meter == meter).count() == 2  # baseline + one


def test_duplicates_inside_one_batch_are_stored_once(funded, now):
    acct, meter = funded
    batch = [ReadingIn(meter_id=meter.id, read_at=now + H, total=500)] * 3
    results = apply_readings(batch, actor=SYSTEM, now=now + H)
    assert [r.duplicate for r in results] == [False, True, True]
    assert sum(r.charge_fen for r in results if not r.duplicate) == 350
    assert bal(acct) == 97000 - 350


def test_out_of_order_reading_is_stored_flagged_and_not_charged(funded, now):
    acct, meter = funded
    read(meter, now + 2 * H, 2000)
    before = bal(acct)
    late = read(meter, now + H, 1000)
    assert late.status == "out_of_order" and late.charge_fen == 0
    assert bal(acct) == before
    assert (
        Reading.get((Reading.meter == meter) & (Reading.read_at == now + H)).status
        == "out_of_order"
    )
    # the next reading is rated from the latest accepted one, not the late one
    nxt = read(meter, now + 3 * H, 2100)
    assert nxt.consumption == 100


def test_register_rollover_is_charged_as_the_wrapped_delta(site, now):
    acct, (meter,) = site.account(initial=99_999_950)
    sell(acct, amount_fen=10000, method="cash", idempotency_key="x", actor=SYSTEM, now=now)
    res = read(meter, now + H, 30)  # 999999.50 -> 0.30 kWh: 0.80 kWh used
    assert res.status == "accepted" and res.consumption == 80 and res.note == "register rollover"
    assert res.charge_fen == 56


def test_falling_register_is_flagged_as_tamper_not_charged_and_alerted(funded, now):
    acct, meter = funded
    read(meter, now + H, 5000)
    before = bal(acct)
    res = read(meter, now + 2 * H, 1000)
    assert res.status == "tamper" and res.charge_fen == 0
    assert bal(acct) == before
    assert (
        Event.select().where((Event.kind == "reading.tamper") & (Event.meter == meter.id)).count()
        == 1
    )
    # billing continues from the new register value
    assert read(meter, now + 3 * H, 1100).consumption == 100


def test_implausible_jump_is_held_then_released_by_review(funded, now):
    acct, meter = funded
    before = bal(acct)
    # 100 kW max for one hour is 10000 (0.01 kWh); 50000 is held
    res = read(meter, now + H, 50000)
    assert res.status == "held" and res.charge_fen == 0 and bal(acct) == before
    assert Event.select().where(Event.kind == "reading.held").count() == 1
    row = Reading.get((Reading.meter == meter) & (Reading.read_at == now + H))
    with pytest.raises(PermissionDenied):
        release_held_reading(row, actor=Actor("c", "cashier"), now=now + H, reason="checked")
    released = release_held_reading(
        row, actor=Actor("e", "electrician"), now=now + H, reason="welding work"
    )
    assert released.status == "released" and released.charge_fen == 35000
    assert bal(acct) == before - 35000
    assert Reading.get_by_id(row.id).status == "released"
    assert verify_ledger().ok


def test_a_glitch_is_held_and_the_next_normal_reading_charges_from_the_baseline(funded, now):
    acct, meter = funded
    read(meter, now + H, 900_000)
    res = read(meter, now + 2 * H, 800)
    assert res.status == "accepted" and res.consumption == 800


def test_first_reading_without_installation_register_is_the_baseline(site, now):
    acct, (meter,) = site.account(initial=None)
    res = read(meter, now + H, 777)
    assert res.status == "baseline" and res.charge_fen == 0
    assert read(meter, now + 2 * H, 877).consumption == 100


def test_multiplier_scales_consumption(site, now):
    acct, (meter,) = site.account(multiplier=40)
    sell(acct, amount_fen=100000, method="cash", idempotency_key="m", actor=SYSTEM, now=now)
    res = read(meter, now + H, 10)  # 0.10 kWh on the register x CT 40 = 4 kWh
    assert res.consumption == 400 and res.charge_fen == 280


def test_tou_split_across_segment_boundaries_by_time(site, now):
    acct, (meter,) = site.account(tariff=site.tou)
    sell(acct, amount_fen=100000, method="cash", idempotency_key="t", actor=SYSTEM, now=now)
    # local 07:00 -> 11:00: 1 h valley, 2 h flat, 1 h peak
    start = dt.datetime(2026, 11, 2, 23, 0) - dt.timedelta(days=1)  # 07:00 local on Nov 2
    meter = Meter.get_by_id(meter.id)
    Meter.update(last_read_at=start, last_total=0).where(Meter.id == meter.id).execute()
    res = read(meter, start + 4 * H, 400)
    assert res.rate_units == {"valley": 100, "flat": 200, "peak": 100}
    # 1 kWh*0.32 + 2 kWh*0.70 + 1 kWh*0.98 = 2.70 yuan
    assert res.charge_fen == 270


def test_tou_split_across_midnight(site, now):
    acct, (meter,) = site.account(tariff=site.tou)
    start = dt.datetime(2026, 11, 1, 14, 30)  # 22:30 local
    Meter.update(last_read_at=start, last_total=0).where(Meter.id == meter.id).execute()
    res = read(Meter.get_by_id(meter.id), start + 2 * H, 120)  # 22:30-00:30: 30 min flat, 90 valley
    assert res.rate_units == {"flat": 30, "valley": 90}


def test_tou_uses_per_rate_register_deltas_when_reported(site, now):
    acct, (meter,) = site.account(tariff=site.tou, initial=None)
    read(meter, now, 1000, t1=100, t2=200, t3=300, t4=400)
    res = read(meter, now + H, 1100, t1=110, t2=250, t3=330, t4=410)
    assert res.rate_units == {"sharp": 10, "peak": 50, "flat": 30, "valley": 10}
    # 0.1*1.20 + 0.5*0.98 + 0.3*0.70 + 0.1*0.32 = 0.852 yuan -> 85 fen, 0.2 fen carried
    assert res.charge_fen == 85


def test_tiered_blocks_reset_at_the_local_month_boundary(site, now):
    tiered = create_tariff(
        site.prop,
        name="tiered",
        utility="electricity",
        kind="tiered",
        spec={"blocks": [{"upto": 10, "price": 5000}, {"upto": None, "price": 7000}]},
        effective_from=now - dt.timedelta(days=400),
        actor=SYSTEM,
        now=now,
    )
    acct, (meter,) = site.account(tariff=tiered)
    oct31 = dt.datetime(2026, 10, 31, 14, 0)  # 22:00 local, Oct 31
    Meter.update(last_read_at=oct31 - 10 * H, last_total=0, month_key=202610, month_units=0).where(
        Meter.id == meter.id
    ).execute()
    # 12 kWh in October: 10 at 0.50 + 2 at 0.70 = 6.40
    r1 = read(Meter.get_by_id(meter.id), oct31, 1200)
    assert r1.charge_fen == 640
    # 22:00 -> 02:00 local across midnight into November: 4 kWh, half in each month by time
    r2 = read(Meter.get_by_id(meter.id), oct31 + 4 * H, 1600)
    # October part 2 kWh at 0.70 = 1.40; November part 2 kWh first block at 0.50 = 1.00
    assert r2.charge_fen == 240
    m = Meter.get_by_id(meter.id)
    assert (m.month_key, m.month_units) == (202611, 200)


def test_reading_is_rated_with_the_version_in_force_at_its_time(site, now):
    acct, (meter,) = site.account()
    add_tariff_version(
        site.flat, spec={"price": 7400}, effective_from=now + 2 * H, actor=SYSTEM, now=now
    )
    assert read(meter, now + H, 100).charge_fen == 70
    assert read(meter, now + 3 * H, 200).charge_fen == 74


def test_a_batch_with_one_bad_reading_changes_nothing(funded, now):
    acct, meter = funded
    before = bal(acct)
    count = Reading.select().count()
    batch = [
        ReadingIn(meter_id=meter.id, read_at=now + H, total=100),
        ReadingIn(meter_id=meter.id, read_at=now + 2 * H, total=-5),
    ]
    with pytest.raises(ValidationError) as exc:
        apply_readings(batch, actor=SYSTEM, now=now + 2 * H)
    assert exc.value.field == "readings.1.total"
    with pytest.raises(ValidationError):
        apply_readings(
            [ReadingIn(meter_id=meter.id, read_at=now + 48 * H, total=1)], actor=SYSTEM, now=now
        )
    with pytest.raises(NotFound):
        apply_readings([ReadingIn(serial="nope", read_at=now, total=1)], actor=SYSTEM, now=now)
    assert Reading.select().count() == count and bal(acct) == before


def test_reading_without_a_tariff_in_force_is_held(site, now):
    late = create_tariff(
        site.prop,
        name="future",
        utility="electricity",
        kind="flat",
        spec={"price": 7000},
        effective_from=now + 10 * H,
        actor=SYSTEM,
        now=now,
    )
    acct, (meter,) = site.account(tariff=late)
    res = read(meter, now + H, 100)
    assert res.status == "held" and "tariff" in res.note


def test_water_is_charged_per_cubic_metre(site, now):
    acct, (e, w) = site.account(kinds=("electricity", "water"))
    res = read(w, now + H, 1500)  # 1.5 m3 x 5.00 yuan
    assert res.charge_fen == 750  # rated now, deducted by the daily deduction
    water_rev = LedgerAccount.get(
        (LedgerAccount.property == site.prop) & (LedgerAccount.code == "revenue:water")
    )
    assert water_rev.balance_fen == 0 and bal(acct) == 0
    deduct_water_day(site.prop, dt.date(2026, 11, 2), actor=SYSTEM, now=now + 24 * H)
    assert LedgerAccount.get_by_id(water_rev.id).balance_fen == 750
    assert bal(acct) == -750
    assert verify_ledger().ok


def test_the_same_batch_arriving_from_four_sources_at_once_is_stored_and_charged_once(funded, now):
    """Several sources (the collector and an API client, say) sending one meter's readings by serial at the
    same moment: on MariaDB the second waits for the first and then finds its readings."""
    from tests.domain.test_sales import _run_threads

    acct, meter = funded
    read(meter, now, 0)  # baseline
    before = bal(acct)
    n = 120
    batch = [
        ReadingIn(serial=meter.serial, read_at=now + (k + 1) * H, total=(k + 1) * 10)
        for k in range(n)
    ]

    def worker(i):
        apply_readings(
            [ReadingIn(**r.__dict__) for r in batch], actor=SYSTEM, now=now + (n + 1) * H
        )

    assert _run_threads(worker, 4) == []
    assert Reading.select().where(Reading.meter == meter).count() == n + 1
    assert bal(acct) == before - 7 * n  # 0.10 kWh x 0.70 yuan = 7 fen each
    assert Meter.get_by_id(meter.id).last_total == 10 * n
    assert verify_ledger().ok
