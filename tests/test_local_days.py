"""Business days, months and times are the property's local time, pinned at the instants where
the local date and the UTC date differ (Asia/Shanghai is UTC+8: from 00:00 to 08:00 local it is
still the previous day in UTC).

Rating (TOU segments across local midnight, tiered blocks at the local month) is pinned in
tests/domain/test_readings.py, apportionment months in tests/operations/test_apportionment.py.
"""

from __future__ import annotations

import datetime as dt
import io
import json

from openpyxl import load_workbook

from app import clock
from app.domain.actors import SYSTEM
from app.domain.audit import audit
from app.domain.bills import compute_bill, issued_bill
from app.domain.jobs import run_bills, run_rent, run_water_daily
from app.domain.rent import create_recurring_charge
from app.domain.sales import sell
from app.domain.site import create_gateway, create_meter, create_property
from app.domain.users import create_api_token, create_user
from app.models import DailyUsage, Entry, Leg, Reading, SiteDailyUsage
from app.models.operations import BillSnapshot
from tests.console.conftest import login
from tests.factories import make_site
from tests.operations.helpers import balance, local, read
from workers.queue import local_crontab
from workers.tasks.collect import time_sync_due


def fund(acct, fen=100_000, key="fund", at=None):
    return sell(acct, amount_fen=fen, method="cash", idempotency_key=key, actor=SYSTEM, now=at)


def test_clock_helpers_cut_days_and_months_at_local_midnight():
    sh = "Asia/Shanghai"
    new_year = local("2027-01-01 00:30")
    assert new_year == dt.datetime(2026, 12, 31, 16, 30)  # still 2026 in UTC
    assert clock.site_today(sh, new_year) == dt.date(2027, 1, 1)
    assert clock.month_of(new_year, sh) == 202701
    assert clock.local_midnight(sh, dt.date(2027, 1, 1)) == dt.datetime(2026, 12, 31, 16, 0)
    assert clock.month_bounds(sh, 202702) == (local("2027-02-01 00:00"), local("2027-03-01 00:00"))
    assert clock.month_bounds(sh, dt.date(2028, 2, 29)) == (
        local("2028-02-01 00:00"),
        local("2028-03-01 00:00"),
    )
    assert clock.iso(new_year, sh) == "2027-01-01T00:30:00+08:00"
    assert clock.parse_iso("2027-01-01T00:30:00", sh) == new_year
    assert clock.parse_iso("2026-12-31T16:30:00Z", sh) == new_year
    assert clock.next_local_time(sh, local("2027-01-01 02:40"), dt.time(2, 37)) == local(
        "2027-01-02 02:37"
    )


def test_water_deducted_once_per_local_day_across_the_utc_date_change(site, now):
    acct, (w,) = site.account(kinds=("water",))
    fund(acct, at=now)
    before = balance(acct)
    read(w, local("2026-11-02 23:30"), 500)  # 15:30 UTC Nov 2: local Nov 2
    read(w, local("2026-11-03 07:30"), 1000)  # 23:30 UTC on Nov 2: local Nov 3
    read(w, local("2026-11-03 08:30"), 2000)  # 00:30 UTC on Nov 3: local Nov 3
    # 00:10 local on Nov 4 (16:10 UTC Nov 3): Nov 2 and Nov 3 are over, each deducted once.
    first = run_water_daily(now=local("2026-11-04 00:10"))
    assert first.ran == 2
    nov2 = Entry.get(Entry.idempotency_key == f"water:{site.prop.id}:2026-11-02")
    nov3 = Entry.get(Entry.idempotency_key == f"water:{site.prop.id}:2026-11-03")

    def wallet_leg(entry):
        return Leg.get((Leg.entry == entry) & (Leg.ledger_account == acct.wallet_id)).amount_fen

    assert (wallet_leg(nov2), wallet_leg(nov3)) == (250, 750)  # 0.5 m3 and 1.5 m3 at 5.00
    after_first = balance(acct)
    rated = sum(r.charge_fen for r in Reading.select().where(Reading.meter == w.id))
    assert before - after_first == rated
    # 08:10 local (00:10 UTC, a new UTC day): nothing more.
    again = run_water_daily(now=local("2026-11-04 08:10"))
    assert again.ran == 0 and balance(acct) == after_first


def test_monthly_rent_is_charged_at_local_midnight_of_the_first_not_at_utc_midnight(site, now):
    acct, _ = site.account()
    fund(acct, at=now)
    create_recurring_charge(
        acct,
        kind="rent",
        amount_fen=30000,
        schedule="monthly",
        day_of_month=1,
        start_date=dt.date(2026, 11, 1),
        actor=SYSTEM,
        now=now,
    )
    run_rent(now=local("2026-11-30 23:50"))  # November's period only
    november = balance(acct)
    run_rent(now=local("2026-12-01 00:30"))  # 16:30 UTC on Nov 30: local Dec 1
    assert balance(acct) == november - 30000
    assert Entry.select().where(Entry.idempotency_key.startswith("rent:")).count() == 2
    run_rent(now=local("2026-12-01 08:30"))  # Dec 1 in UTC too: nothing more
    assert balance(acct) == november - 30000


def test_march_bill_of_a_shanghai_tenant_includes_31_march_2330_local(site, now):
    acct, _ = site.account()
    fund(acct, fen=1000, key="march", at=local("2027-03-31 23:30"))  # 15:30 UTC Mar 31
    fund(acct, fen=2000, key="april", at=local("2027-04-01 00:30"))  # 16:30 UTC Mar 31
    march, april = compute_bill(acct, 202703), compute_bill(acct, 202704)
    # (credited net of the 3 % service fee)
    assert march.sales_fen == 970 and march.period_end == "2027-03-31"
    assert april.sales_fen == 1940 and april.period_start == "2027-04-01"
    assert april.opening_fen == march.closing_fen


def test_bills_for_the_local_month_are_issued_just_after_local_midnight(site, now):
    acct, _ = site.account()
    fund(acct, fen=1000, key="march", at=local("2027-03-31 23:30"))
    run_bills(now=local("2027-04-01 00:40"))  # UTC is still March 31
    snap = issued_bill(acct, 202703)
    assert snap is not None and json.loads(snap.data)["sales_fen"] == 970
    assert BillSnapshot.select().where(BillSnapshot.month == 202702).count() == 0


def test_a_reading_before_8_local_counts_in_the_local_days_usage(site, now):
    acct, (meter,) = site.account()
    read(meter, local("2026-11-03 07:30"), 1000)  # 23:30 UTC Nov 2
    day = DailyUsage.get(DailyUsage.meter == meter.id)
    assert day.day == dt.date(2026, 11, 3) and day.units == 1000
    assert SiteDailyUsage.get(SiteDailyUsage.property == site.prop.id).day == dt.date(2026, 11, 3)


def test_sms_quiet_hours_end_at_8_local_while_utc_is_still_the_day_before():
    from app.domain import sms
    from app.models.sms import SmsSettings

    s = SmsSettings(quiet_start_min=22 * 60, quiet_end_min=8 * 60)
    zone = clock.zone("Asia/Shanghai")
    assert sms.in_quiet_hours(s, zone, local("2026-11-03 07:59"))  # 23:59 UTC Nov 2
    assert not sms.in_quiet_hours(s, zone, local("2026-11-03 08:00"))  # 00:00 UTC Nov 3
    assert sms.quiet_hours_end(s, zone, local("2026-11-02 23:00")) == local("2026-11-03 08:00")


def test_the_sales_export_of_this_month_starts_at_local_new_year(client, site, now, clock_at):
    acct, _ = site.account()
    fund(acct, fen=1111, key="old-year", at=local("2026-12-31 23:50"))
    fund(acct, fen=2222, key="new-year", at=local("2027-01-01 00:10"))
    create_user("boss", "password123", "manager", actor=SYSTEM, now=now)
    clock_at(local("2027-01-01 00:30"))  # 2026-12-31 16:30 UTC
    login(client, "boss")
    page = client.get("/export")
    assert 'value="2027-01-01"' in page.text
    response = client.get("/export/sales.xlsx")
    assert response.status_code == 200
    assert "sales-20270101-20270101" in response.headers["Content-Disposition"]
    rows = list(load_workbook(io.BytesIO(response.data)).active.iter_rows(values_only=True))
    times = [r for row in rows[1:] for r in row if isinstance(r, dt.datetime)]
    assert dt.datetime(2027, 1, 1, 0, 10) in times  # local time in the sheet
    assert not any(t.year == 2026 for t in times)


def test_nightly_jobs_run_at_local_night_whatever_the_os_zone():
    backup_at_0237 = local_crontab(minute="37", hour="2")
    assert backup_at_0237(local("2026-11-03 02:37"))  # 18:37 UTC the day before
    assert not backup_at_0237(dt.datetime(2026, 11, 3, 2, 37))  # 02:37 UTC = 10:37 local


def test_meters_clocks_are_synced_at_night_in_each_propertys_zone(app, now):
    shanghai = make_site(now)
    london = create_property(
        code="LDN", name="London", timezone="Europe/London", actor=SYSTEM, now=now
    )
    gateways = {}
    for port, prop in enumerate((shanghai.prop, london), start=1):
        gw = create_gateway(
            prop, name=f"GW-{prop.code}", host="127.0.0.1", port=port, actor=SYSTEM, now=now
        )
        create_meter(
            prop,
            serial=f"{prop.code}-645",
            kind="electricity",
            protocol="dlt645-2007",
            address="000000000001",
            gateway=gw,
            actor=SYSTEM,
            now=now,
        )
        gateways[prop.code] = gw.id
    from app.models import Meter

    Meter.update(status="active").execute()
    at_shanghai_night = dt.datetime(2026, 11, 2, 18, 7)  # 02:07 Shanghai, 18:07 London
    due = time_sync_due(at_shanghai_night)
    assert [(gw.id, zone.key) for gw, zone in due] == [(gateways["P1"], "Asia/Shanghai")]
    at_london_night = dt.datetime(2026, 11, 3, 2, 7)  # 02:07 London (GMT)
    assert [gw.id for gw, _ in time_sync_due(at_london_night)] == [gateways["LDN"]]


def test_the_audit_log_shows_local_time(client, site, now):
    create_user("admin1", "password123", "admin", actor=SYSTEM, now=now)
    audit(SYSTEM, "test.new_year", site.prop, now=local("2027-01-01 00:30"))
    login(client, "admin1")
    page = client.get("/audit?action=test.new_year")
    assert page.status_code == 200
    assert "2027-01-01 00:30:00" in page.text and "2026-12-31 16:30" not in page.text
    by_local_day = client.get("/audit?action=test.new_year&since=2027-01-01&until=2027-01-01")
    assert "2027-01-01 00:30:00" in by_local_day.text


def test_the_api_answers_local_times_with_their_offset_and_reads_naive_times_as_local(
    client, site, now, clock_at
):
    clock_at(local("2027-01-01 02:00"))
    acct, (meter,) = site.account()
    _, secret = create_api_token("t", "admin", actor=SYSTEM, now=now)
    headers = {"Authorization": f"Bearer {secret}"}
    sale = fund(acct, key="api", at=local("2027-01-01 00:30")).sale
    got = client.get(f"/api/v1/sales/{sale.id}", headers=headers).get_json()
    assert got["created_at"] == "2027-01-01T00:30:00+08:00"
    naive = {"serial": meter.serial, "read_at": "2027-01-01T01:00:00", "total": 100}
    aware = {"serial": meter.serial, "read_at": "2026-12-31T18:00:00Z", "total": 200}
    r = client.post("/api/v1/readings", json={"readings": [naive, aware]}, headers=headers)
    assert r.status_code == 200, r.get_json()
    stored = [
        r.read_at
        for r in Reading.select().where(Reading.meter == meter.id).order_by(Reading.read_at)
    ]
    assert local("2027-01-01 01:00") in stored and dt.datetime(2026, 12, 31, 18, 0) in stored
    assert r.get_json()["results"][0]["read_at"] == "2027-01-01T01:00:00+08:00"


def test_the_overview_counts_each_propertys_takings_by_its_own_local_day(app, now):
    from app.domain.overview import build_overview

    shanghai = make_site(now)
    london = make_site(now, code="LDN", timezone="Europe/London")
    sh_acct, _ = shanghai.account()
    ldn_acct, _ = london.account()
    at = dt.datetime(2026, 11, 2, 20, 0)  # 04:00 Nov 3 in Shanghai, 20:00 Nov 2 in London
    fund(sh_acct, fen=1000, key="sh-yesterday", at=dt.datetime(2026, 11, 2, 15, 0))  # 23:00 Nov 2
    fund(sh_acct, fen=2000, key="sh-today", at=dt.datetime(2026, 11, 2, 17, 0))  # 01:00 Nov 3
    fund(ldn_acct, fen=4000, key="ldn-today", at=dt.datetime(2026, 11, 2, 9, 0))  # 09:00 Nov 2
    ov = build_overview(now=at, money=True, zone="Asia/Shanghai")
    assert ov.today == dt.date(2026, 11, 3)
    assert ov.takings_today == 2000 + 4000
    assert ov.takings_to_date == 7000
