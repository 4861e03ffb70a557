"""Excel export of the lists: the workbooks open, hold the rows asked for, money as 2-decimal
numbers and energy with its unit in the heading."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from app.domain.actors import SYSTEM
from app.domain.readings import apply_reading
from app.domain.sales import sell
from app.domain.users import create_user
from tests.test_console import login


@pytest.fixture
def users(app, now):
    for role in ("admin", "manager", "cashier", "electrician", "viewer"):
        create_user(role, "password123", role, actor=SYSTEM, now=now)


def sheet(response):
    assert response.status_code == 200, response.text[:500]
    assert response.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert "attachment" in response.headers["Content-Disposition"]
    ws = load_workbook(io.BytesIO(response.data)).worksheets[0]
    rows = [list(r) for r in ws.iter_rows(values_only=True)]
    return ws, rows[0], rows[1:]


def english(client):
    with client.session_transaction() as s:
        s["lang"] = "en"


def test_accounts_export_lists_every_account_with_balance_in_yuan(client, users, site, now):
    a1, _ = site.account()
    a2, _ = site.account()
    sell(a1, amount_fen=10000, method="cash", idempotency_key="x1", actor=SYSTEM, now=now)
    login(client, "viewer")
    english(client)
    ws, head, rows = sheet(client.get("/export/accounts.xlsx"))
    assert head[:6] == ["Account", "Tenant", "Phones", "Room", "Status", "Balance (yuan)"]
    by_number = {r[0]: r for r in rows}
    assert set(by_number) == {a1.number, a2.number}
    assert by_number[a1.number][5] == 97  # 100.00 less the 3 % service fee
    assert Decimal(str(by_number[a1.number][5])) == Decimal("97.00")
    assert ws.cell(row=2, column=6).number_format == "0.00"


def test_accounts_export_follows_the_list_search(client, users, site):
    a1, _ = site.account()
    site.account()
    login(client, "cashier")
    _, _, rows = sheet(client.get(f"/export/accounts.xlsx?q={a1.number}"))
    assert [r[0] for r in rows] == [a1.number]


def test_accounts_page_offers_the_export_link(client, users, site):
    login(client, "viewer")
    assert "/export/accounts.xlsx" in client.get("/accounts").text


def test_meters_export_has_units_in_headings_and_filters_by_kind(client, users, site, now):
    _, meters = site.account(kinds=("electricity", "water"))
    apply_reading(
        meters[0],
        read_at=now + dt.timedelta(hours=1),
        total=4567,
        actor=SYSTEM,
        now=now + dt.timedelta(hours=2),
    )
    login(client, "electrician")
    english(client)
    ws, head, rows = sheet(client.get("/export/meters.xlsx"))
    assert "Last reading (kWh)" in head and "Last reading (m³)" in head
    serials = {r[0]: r for r in rows}
    assert set(serials) == {m.serial for m in meters}
    kwh_col = head.index("Last reading (kWh)")
    assert serials[meters[0].serial][kwh_col] == pytest.approx(45.67)
    _, _, water_rows = sheet(client.get("/export/meters.xlsx?kind=water"))
    assert [r[0] for r in water_rows] == [meters[1].serial]


def test_sales_export_keeps_to_the_date_range(client, users, site, now):
    acct, _ = site.account()
    sell(acct, amount_fen=5000, method="cash", idempotency_key="in", actor=SYSTEM, now=now)
    sell(
        acct,
        amount_fen=2000,
        method="wechat",
        idempotency_key="old",
        actor=SYSTEM,
        now=now - dt.timedelta(days=40),
    )
    login(client, "cashier")
    english(client)
    ws, head, rows = sheet(client.get("/export/sales.xlsx?from=2026-11-01&to=2026-11-02"))
    assert head[6:9] == ["Amount (yuan)", "Service fee (yuan)", "Net credit (yuan)"]
    assert len(rows) == 1
    assert rows[0][6] == 50 and rows[0][7] == 1.5 and rows[0][8] == 48.5
    assert ws.cell(row=2, column=8).number_format == "0.00"
    assert rows[0][1] == dt.datetime(2026, 11, 2, 12, 0)  # local time
    _, _, both = sheet(client.get("/export/sales.xlsx?from=2026-09-01&to=2026-11-30"))
    assert len(both) == 2


def test_a_bad_date_is_explained_next_to_the_field(client, users, site):
    login(client, "manager")
    english(client)
    r = client.get("/export/sales.xlsx?from=yesterday")
    assert r.status_code == 422 and "is not a date" in r.text


def test_readings_export_for_one_meter_in_a_period(client, users, site, now):
    _, meters = site.account(kinds=("electricity", "water"))
    for h in range(1, 4):
        apply_reading(
            meters[0],
            read_at=now + dt.timedelta(hours=h),
            total=100 * h,
            actor=SYSTEM,
            now=now + dt.timedelta(hours=5),
        )
        apply_reading(
            meters[1],
            read_at=now + dt.timedelta(hours=h),
            total=10 * h,
            actor=SYSTEM,
            now=now + dt.timedelta(hours=5),
        )
    login(client, "manager")
    english(client)
    _, head, rows = sheet(
        client.get(f"/export/readings.xlsx?meter={meters[1].serial}&from=2026-11-02&to=2026-11-02")
    )
    assert "Total (m³)" in head and "Charge (yuan)" in head
    assert {r[0] for r in rows} == {meters[1].serial}
    m3 = head.index("Total (m³)")
    assert [r[m3] for r in rows if r[2] > dt.datetime(2026, 11, 2, 12, 0)] == [0.01, 0.02, 0.03]
    _, _, none = sheet(
        client.get(f"/export/readings.xlsx?meter={meters[1].serial}&from=2026-10-01&to=2026-10-31")
    )
    assert none == []


def test_electrician_readings_export_has_no_money_and_sales_export_is_refused(
    client, users, site, now
):
    login(client, "electrician")
    english(client)
    _, head, _ = sheet(client.get("/export/readings.xlsx"))
    assert "Charge (yuan)" not in head
    assert client.get("/export/sales.xlsx").status_code == 403
    assert "/export/sales.xlsx" not in client.get("/export").text


def test_unknown_meter_in_readings_export_is_a_clear_error(client, users, site):
    login(client, "viewer")
    english(client)
    r = client.get("/export/readings.xlsx?meter=NOPE")
    assert r.status_code == 422 and "unknown meter" in r.text


def test_exports_need_a_login(client, site):
    for path in (
        "/export/meters.xlsx",
        "/export/accounts.xlsx",
        "/export/sales.xlsx",
        "/export/readings.xlsx",
    ):
        assert client.get(path).status_code == 302
