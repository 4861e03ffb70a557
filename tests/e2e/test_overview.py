"""The overview in a browser: charts drawn by ECharts from the page's JSON, redrawn after an
htmx refresh, with their table alternative; no takings for the electrician."""

from __future__ import annotations

import datetime as dt

from app import clock
from app.domain.actors import SYSTEM
from app.domain.readings import apply_reading
from app.domain.sales import sell
from app.models import utcnow
from tests.e2e.conftest import PASSWORD, shot


def sign_in(page, base: str, username: str) -> None:
    page.goto(f"{base}/login?next=/overview")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/overview")


def test_overview_draws_charts_and_redraws_them_after_an_htmx_refresh(
    page, live_server, site, clock_at
):
    # Noon local tomorrow (ahead of the browser's clock, so its session cookie stays valid):
    # the sale and the reading fall on "today" whatever the hour the suite runs.
    noon = clock.at_local(
        site.prop, clock.site_today(site.prop, utcnow()) + dt.timedelta(days=1), dt.time(12)
    )
    clock_at(noon)
    acct, (meter,) = site.account(at=noon - dt.timedelta(hours=2))
    sell(acct, amount_fen=20000, method="cash", idempotency_key="e2e-ov", actor=SYSTEM, now=noon)
    apply_reading(meter, read_at=noon - dt.timedelta(minutes=5), total=1200, actor=SYSTEM, now=noon)
    sign_in(page, live_server, "manager")
    for chart in ("#chart-revenue", "#chart-usage"):
        page.wait_for_selector(f"{chart} canvas")
    assert page.inner_text("#takings-today") == "¥200.00"
    page.click("#chart-usage + script + details summary")
    assert "12.00" in page.inner_text("#chart-usage + script + details table")
    shot(page, "overview-manager")
    page.evaluate("htmx.ajax('GET', '/overview', {target: '#panels', swap: 'innerHTML'})")
    page.wait_for_function(
        "document.querySelector('#chart-usage') && "
        "document.querySelector('#chart-usage canvas') !== null"
    )
    page.wait_for_selector("#chart-revenue canvas")


def test_electrician_overview_has_usage_but_no_takings(page, live_server, site):
    sign_in(page, live_server, "electrician")
    page.wait_for_selector("#chart-usage canvas")
    assert page.query_selector("#chart-revenue") is None
    assert page.query_selector("#takings-today") is None
    shot(page, "overview-electrician")
