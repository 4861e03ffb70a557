"""What a manager really does to take in a new tenant: the opening wizard on a tablet."""

from __future__ import annotations

import re

import pytest

from app.domain.actors import SYSTEM
from app.domain.site import add_room, create_meter
from app.models import Account, LedgerAccount, Meter
from tests.e2e.conftest import login, nav, shot


def settled(page) -> None:
    """Wait until htmx has no request in flight and has processed what it swapped in."""
    page.wait_for_function(
        "!document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling')"
    )
    page.wait_for_timeout(50)


@pytest.mark.parametrize("page", ["tablet"], indirect=True)
def test_manager_opens_an_account_through_the_wizard_and_lands_on_it(page, live_server, site):
    room = add_room(site.prop, building="B", floor="2", number="201", actor=SYSTEM, now=site.now)
    meter = create_meter(
        site.prop, serial="E-WIZ-1", kind="electricity", room=room, actor=SYSTEM, now=site.now
    )
    login(page, live_server, "manager")
    nav(page, "开户")
    page.wait_for_url("**/accounts/open")
    page.check("input[name=tenant_mode][value=new]")
    page.fill("#tenant_name", "王五")
    page.fill("#tenant_phones", "13912345678")
    page.select_option("#building_id", label="B")
    page.wait_for_selector("#floor_id option:text-is('2')", state="attached")
    settled(page)
    page.select_option("#floor_id", label="2")
    page.wait_for_selector("#room_id option:text-is('201')", state="attached")
    settled(page)
    page.select_option("#room_id", label="201")
    page.wait_for_selector(f"#meter-{meter.id}")
    settled(page)
    page.check(f"#meter-{meter.id}")
    page.fill(f"#initial_{meter.id}", "5.00")
    page.select_option("#tariff_electricity", value=str(site.flat.id))
    page.fill("#sale_amount", "100")
    page.wait_for_selector(
        "#open-preview >> text=¥97.00"
    )  # the service fee shown before confirming
    shot(page, "open-wizard")
    page.click("text=确认开户")
    page.wait_for_url(re.compile(r"/accounts/\d+$"))
    acct = Account.get(Account.room == room)
    assert page.url.endswith(f"/accounts/{acct.id}")
    assert "王五" in page.inner_text("main") and "¥97.00" in page.inner_text("main")
    shot(page, "opened-account")
    assert Meter.get_by_id(meter.id).account_id == acct.id
    assert LedgerAccount.get_by_id(acct.wallet_id).balance_fen == 9700


@pytest.mark.parametrize("page", ["tablet"], indirect=True)
def test_tenant_center_draws_the_usage_chart_and_the_site_tree_expands_to_rooms(
    page, live_server, site
):
    import datetime as dt

    from app.domain.readings import apply_reading

    acct, (meter,) = site.account(initial=0, at=site.now - dt.timedelta(days=3))
    apply_reading(
        meter, read_at=site.now - dt.timedelta(days=1), total=1200, actor=SYSTEM, now=site.now
    )
    login(page, live_server, "viewer")
    page.goto(f"{live_server}/tenants/{acct.tenant_id}")
    page.wait_for_selector("#usage-chart canvas")  # ECharts drew into the container
    shot(page, "tenant-center")
    nav(page, "楼宇")
    page.click(f"summary:has-text('{site.prop.name}')")
    page.click("summary:has-text('楼栋 A')")
    page.click("summary:has-text('楼层 1')")
    page.wait_for_selector(f"tr.room[data-room='{acct.room.number}'] .badge")
    assert acct.tenant.name in page.inner_text(f"tr.room[data-room='{acct.room.number}']")
    shot(page, "site-tree")
