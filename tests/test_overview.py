"""The overview page (项目总览) and the daily usage rollup behind it."""

from __future__ import annotations

import datetime as dt

import pytest
from peewee import fn

from app.cli import rollups_cli
from app.domain.actors import SYSTEM
from app.domain.overview import build_overview
from app.domain.readings import ReadingIn, apply_reading, apply_readings
from app.domain.sales import reverse_sale, sell
from app.domain.usage import rebuild_usage
from app.domain.users import create_user
from app.models import (
    DailyUsage,
    Entry,
    LedgerAccount,
    Leg,
    MonthlyUsage,
    Sale,
    SiteDailyUsage,
)
from tests.test_console import login

H = dt.timedelta(hours=1)
D = dt.timedelta(days=1)


@pytest.fixture
def users(app, now):
    for role in ("admin", "manager", "cashier", "electrician", "viewer"):
        create_user(role, "password123", role, actor=SYSTEM, now=now)


def sale(acct, fen, at, key):
    return sell(acct, amount_fen=fen, method="cash", idempotency_key=key, actor=SYSTEM, now=at).sale


def cash_received(start, end):
    """What the ledger's cash accounts took in over [start, end)."""
    cash = LedgerAccount.select(LedgerAccount.id).where(LedgerAccount.code.startswith("cash:"))
    return int(
        Leg.select(fn.COALESCE(fn.SUM(Leg.amount_fen), 0))
        .join(Entry)
        .where(
            Leg.ledger_account.in_(cash) & (Entry.created_at >= start) & (Entry.created_at < end)
        )
        .scalar()
    )


def rollup_rows():
    return list(
        DailyUsage.select(
            DailyUsage.meter,
            DailyUsage.day,
            DailyUsage.utility,
            DailyUsage.units,
            DailyUsage.charge_fen,
        )
        .order_by(DailyUsage.meter, DailyUsage.day)
        .tuples()
    )


def all_rollups():
    monthly = MonthlyUsage.select(
        MonthlyUsage.meter,
        MonthlyUsage.month,
        MonthlyUsage.utility,
        MonthlyUsage.units,
        MonthlyUsage.charge_fen,
    )
    site = SiteDailyUsage.select(
        SiteDailyUsage.property,
        SiteDailyUsage.day,
        SiteDailyUsage.utility,
        SiteDailyUsage.units,
        SiteDailyUsage.charge_fen,
    )
    return (rollup_rows(), sorted(monthly.tuples()), sorted(site.tuples()))


def test_takings_match_the_sales_and_the_cash_in_the_ledger(site, now):
    # now = 2026-11-02 12:00 Asia/Shanghai; the local month began 2026-10-31 16:00 UTC.
    acct, _ = site.account()
    month_start, day_start = dt.datetime(2026, 10, 31, 16), dt.datetime(2026, 11, 1, 16)
    sale(acct, 10000, dt.datetime(2026, 9, 10, 3), "sep")
    oct_sale = sale(
        acct, 20000, dt.datetime(2026, 10, 31, 15, 59), "oct-last-minute"
    )  # still October locally
    sale(
        acct, 30000, dt.datetime(2026, 10, 31, 16, 0), "nov-first-minute"
    )  # November 1st, 00:00 locally
    sale(acct, 40000, now - H, "today")
    today_sale = sale(acct, 5000, now - 2 * H, "today-reversed")
    reverse_sale(today_sale, reason="wrong account", actor=SYSTEM, now=now - H)
    reverse_sale(
        oct_sale, reason="refund", actor=SYSTEM, now=now - dt.timedelta(minutes=30)
    )  # reversed this month

    ov = build_overview(now=now, money=True, zone=None)
    end = now + dt.timedelta(seconds=1)
    assert ov.takings_today == 40000 + 5000 - 5000 - 20000 == cash_received(day_start, end)
    assert ov.takings_month == 30000 + 40000 - 20000 == cash_received(month_start, end)
    assert (
        ov.takings_to_date == 10000 + 30000 + 40000 == cash_received(dt.datetime(2000, 1, 1), end)
    )
    months = dict(ov.months)
    assert len(ov.months) == 12 and ov.months[-1][0] == dt.date(2026, 11, 1)
    assert months[dt.date(2026, 9, 1)] == 10000
    assert months[dt.date(2026, 10, 1)] == 20000
    assert months[dt.date(2026, 11, 1)] == ov.takings_month
    assert ov.months[0][0] == dt.date(2025, 12, 1)


def test_rollup_follows_rated_readings_by_local_day_and_rebuild_gives_the_same_rows(app, site, now):
    acct, (elec, water) = site.account(kinds=("electricity", "water"))
    sell(acct, amount_fen=100000, method="cash", idempotency_key="fund", actor=SYSTEM, now=now)
    # 15:30 UTC is 23:30 local on Nov 2; 16:30 UTC is 00:30 local on Nov 3.
    t1, t2, t3 = (
        dt.datetime(2026, 11, 2, 15, 30),
        dt.datetime(2026, 11, 2, 16, 30),
        dt.datetime(2026, 11, 2, 17, 0),
    )
    apply_readings(
        [
            ReadingIn(meter_id=elec.id, read_at=t1, total=1000),
            ReadingIn(meter_id=water.id, read_at=t1, total=250),
        ],
        actor=SYSTEM,
        now=t1,
    )
    apply_readings(
        [
            ReadingIn(meter_id=elec.id, read_at=t2, total=1100),
            ReadingIn(meter_id=elec.id, read_at=t3, total=1150),
            ReadingIn(meter_id=water.id, read_at=t3, total=300),
        ],
        actor=SYSTEM,
        now=t3,
    )
    apply_reading(elec, read_at=t3, total=1150, actor=SYSTEM, now=t3)  # a repeat changes nothing
    rows = rollup_rows()
    assert [(m, d, u, units) for m, d, u, units, _c in rows] == [
        (elec.id, dt.date(2026, 11, 2), "electricity", 1000),
        (elec.id, dt.date(2026, 11, 3), "electricity", 150),
        (water.id, dt.date(2026, 11, 2), "water", 250),
        (water.id, dt.date(2026, 11, 3), "water", 50),
    ]
    assert rows[0][4] == 700 and rows[1][4] == 105  # 0.70 yuan/kWh
    assert rows[2][4] == 125 and rows[3][4] == 25  # rated at 5 yuan/m3 (deducted by the daily run)

    before = all_rollups()
    assert before[1] == [
        (elec.id, 202611, "electricity", 1150, 805),
        (water.id, 202611, "water", 300, 150),
    ]
    assert before[2] == [
        (site.prop.id, dt.date(2026, 11, 2), "electricity", 1000, 700),
        (site.prop.id, dt.date(2026, 11, 2), "water", 250, 125),
        (site.prop.id, dt.date(2026, 11, 3), "electricity", 150, 105),
        (site.prop.id, dt.date(2026, 11, 3), "water", 50, 25),
    ]

    for model in (DailyUsage, MonthlyUsage, SiteDailyUsage):
        model.update(units=0).execute()
    assert rebuild_usage(since=dt.date(2026, 11, 3), actor=SYSTEM, now=t3) == 2
    daily, monthly, by_site = all_rollups()
    assert monthly == before[1]  # the month of --since is recomputed in full
    assert daily[1] == before[0][1] and daily[3] == before[0][3] and by_site[2:] == before[2][2:]
    assert daily[0][3] == 0 and by_site[0][3] == 0  # days before --since are left alone
    result = app.test_cli_runner().invoke(rollups_cli, ["rebuild"])
    assert result.exit_code == 0, result.output
    assert "4 daily usage rows" in result.output
    assert all_rollups() == before


def test_overview_usage_trend_and_top_consumers_come_from_the_rollup(site, now):
    a1, (m1,) = site.account(at=now - 3 * H)
    a2, (m2,) = site.account(at=now - 3 * H)
    for acct in (a1, a2):
        sell(
            acct,
            amount_fen=100000,
            method="cash",
            idempotency_key=f"f{acct.id}",
            actor=SYSTEM,
            now=now,
        )
    apply_reading(m1, read_at=now - 2 * H, total=500, actor=SYSTEM, now=now)
    apply_reading(m1, read_at=now - H, total=700, actor=SYSTEM, now=now)
    apply_reading(m2, read_at=now - H, total=900, actor=SYSTEM, now=now)
    ov = build_overview(now=now, money=False, zone=None)
    assert ov.takings_to_date == 0 and ov.months == []  # not computed without money.view
    assert len(ov.usage) == 30 and ov.usage[0][0] == dt.date(2026, 10, 4)
    assert ov.usage[-1] == (dt.date(2026, 11, 2), 1600, 0) and ov.usage[-2][1:] == (0, 0)
    assert [(r["serial"], r["units"]) for r in ov.top_electricity] == [
        (m2.serial, 900),
        (m1.serial, 700),
    ]
    assert ov.top_electricity[0]["account_id"] == a2.id and ov.top_water == []
    assert ov.meters_online == 2 and ov.meters_offline == 0


def test_home_is_the_overview_for_who_may_see_it_and_accounts_for_the_cashier(client, users, site):
    login(client, "manager")
    assert client.get("/").headers["Location"].endswith("/overview")
    client.post("/logout", data={"csrf_token": ""})
    client2 = client.application.test_client()
    login(client2, "cashier")
    assert client2.get("/").headers["Location"].endswith("/accounts")
    assert client2.get("/overview").status_code == 403


def _low_balance_site(site, clock_at):
    """Sales minutes before noon local the day after the site's start, the clock held there
    (so "today" and "this month" never depend on when the suite runs)."""
    acct, (meter,) = site.account()
    at = site.now + dt.timedelta(days=1)
    clock_at(at)
    sale(acct, 10000, at - 40 * D, "old")  # never this month nor today
    s = sale(acct, 3000, at - dt.timedelta(minutes=5), "now")
    reverse_sale(s, reason="typo", actor=SYSTEM, now=at - dt.timedelta(minutes=4))
    sale(acct, 2500, at - dt.timedelta(minutes=3), "now2")
    apply_reading(
        meter, read_at=at - dt.timedelta(minutes=2), total=16000, actor=SYSTEM, now=at
    )  # 112 yuan
    return acct


def test_viewer_sees_takings_and_lists_but_no_buttons(client, users, site, clock_at):
    acct = _low_balance_site(site, clock_at)
    login(client, "viewer")
    page = client.get("/overview")
    assert page.status_code == 200
    assert 'id="takings-today">¥25.00<' in page.text
    assert 'id="takings-month">¥25.00<' in page.text
    assert 'id="takings-total">¥125.00<' in page.text
    assert 'id="chart-data-revenue"' in page.text and 'id="chart-data-usage"' in page.text
    assert f'/accounts/{acct.id}"' in page.text  # listed as low balance, linked
    assert '/sale"' not in page.text and "<form" not in page.text.split("<main>")[1]


def test_electrician_sees_devices_and_usage_but_no_takings(client, users, site, clock_at):
    _low_balance_site(site, clock_at)
    login(client, "electrician")
    page = client.get("/overview")
    assert page.status_code == 200
    assert "takings-today" not in page.text and "chart-data-revenue" not in page.text
    assert "¥125.00" not in page.text and "¥25.00" not in page.text
    assert 'id="chart-data-usage"' in page.text


def test_manager_gets_sell_links_and_htmx_refresh_returns_only_the_panels(
    client, users, site, clock_at
):
    acct = _low_balance_site(site, clock_at)
    login(client, "manager")
    assert f"/accounts/{acct.id}/sale" in client.get("/overview").text
    partial = client.get("/overview", headers={"HX-Request": "true"})
    assert "<html" not in partial.text and 'id="chart-data-usage"' in partial.text
    assert Sale.select().count() == 3
