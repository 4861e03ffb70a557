"""The tenant center: accounts, meters, month-vs-last usage, the chart data and histories."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from app.accounts import views
from app.domain.actors import SYSTEM
from app.domain.readings import apply_reading
from app.domain.sales import sell
from app.domain.users import create_user
from app.models.sms import SmsMessage
from tests.test_console import login


@pytest.fixture
def users(app, now):
    for role in ("admin", "manager", "cashier", "electrician", "viewer"):
        create_user(role, "password123", role, actor=SYSTEM, now=now)


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


@pytest.fixture
def tenant_with_usage(site, monkeypatch):
    """Readings with known deltas around the local (Asia/Shanghai) month boundary."""
    monkeypatch.setattr(views, "utcnow", lambda: utc("2026-11-02 04:00"))
    acct, (meter,) = site.account(initial=0, at=utc("2026-09-20 02:00"))
    for at, total in (
        ("2026-10-10 02:00", 1000),  # +10.00 kWh in October
        ("2026-10-31 04:00", 1500),  # +5.00 kWh, 31 Oct local
        ("2026-10-31 16:30", 1800),  # +3.00 kWh, 1 Nov 00:30 local: November
        ("2026-11-02 03:00", 2500),
    ):  # +7.00 kWh in November
        apply_reading(meter, read_at=utc(at), total=total, actor=SYSTEM, now=utc(at))
    sell(
        acct,
        amount_fen=5000,
        method="cash",
        idempotency_key="t-1",
        actor=SYSTEM,
        now=utc("2026-10-01 02:00"),
    )
    SmsMessage.create(
        property=site.prop,
        audience="tenant",
        kind="receipt",
        account=acct,
        tenant=acct.tenant,
        recipient="13800000000",
        language="zh_CN",
        body="Paid 50.00",
        dedupe_key="t-sms-1",
        created_at=utc("2026-10-01 02:01"),
    )
    return acct, meter


def test_tenant_center_shows_this_month_against_last_month_from_readings(
    client, users, tenant_with_usage
):
    acct, meter = tenant_with_usage
    login(client, "manager")
    page = client.get(f"/tenants/{acct.tenant_id}")
    assert page.status_code == 200
    row = re.search(rf'<tr data-meter="{meter.serial}">(.*?)</tr>', page.text, re.S).group(1)
    assert re.search(r'class="num this-month">10\.00 kWh<', row)
    assert re.search(r'class="num last-month">15\.00 kWh<', row)
    assert "25.00 kWh" in row  # the current register
    chart = json.loads(
        re.search(
            r'<script type="application/json" id="usage-data">(.*?)</script>', page.text, re.S
        ).group(1)
    )
    assert len(chart["days"]) == 30 and chart["days"][-1] == "2026-11-02"
    by_day = dict(zip(chart["days"], chart["electricity"], strict=True))
    assert (by_day["2026-10-31"], by_day["2026-11-01"], by_day["2026-11-02"]) == (
        "5.00",
        "3.00",
        "7.00",
    )
    assert by_day["2026-10-10"] == "10.00"
    assert "tenant.js" in page.text and "vendor/echarts.min.js" in page.text


def test_tenant_center_shows_purchases_ledger_and_sms_with_money_permission(
    client, users, tenant_with_usage
):
    acct, _ = tenant_with_usage
    login(client, "manager")
    page = client.get(f"/tenants/{acct.tenant_id}").text
    assert "¥50.00" in page and "Paid 50.00" in page and acct.number in page


def test_tenant_center_hides_money_without_money_view(client, users, tenant_with_usage):
    acct, _ = tenant_with_usage
    login(client, "electrician")
    page = client.get(f"/tenants/{acct.tenant_id}")
    assert page.status_code == 200 and acct.number in page.text
    assert "¥" not in page.text


def test_tenant_list_searches_and_links_to_the_center(client, users, site):
    acct, _ = site.account()
    other, _ = site.account()
    login(client, "viewer")
    page = client.get(f"/tenants?q={acct.tenant.name}", headers={"HX-Request": "true"})
    assert (
        f"/tenants/{acct.tenant_id}" in page.text
        and f'/tenants/{other.tenant_id}"' not in page.text
    )
    assert "<html" not in page.text
    accounts = client.get("/accounts").text
    assert f"/tenants/{acct.tenant_id}" in accounts
    assert f"/tenants/{acct.tenant_id}" in client.get(f"/accounts/{acct.id}").text
