"""What each role is offered in the console, and an admin adding a colleague."""

from __future__ import annotations

import pytest

from app.domain.actors import PERMISSIONS, ROLES, SYSTEM
from app.domain.sales import sell
from app.models import User
from tests.e2e.conftest import VIEWPORTS, login, nav, shot

# Each main-menu entry and the permission that offers it (mirrors templates/base.html).
NAV = {
    "/overview": "overview.view",
    "/accounts": "account.view",
    "/tenants": "account.view",
    "/accounts/open": "account.open",
    "/site": "account.view",
    "/meters": "account.view",
    "/gateways": "account.view",
    "/batches": "account.view",
    "/sms/alerts": "alert.view",
    "/tariffs": "account.view",
    "/operations/jobs": "operations.view",
    "/sms/outbox": "sms.view",
    "/import": "site.edit",
    "/export": "account.view",
    "/users": "user.manage",
    "/audit": "audit.view",
    "/settings": "account.view",
}
OFFERED = {
    role: {path for path, perm in NAV.items() if role in PERMISSIONS[perm]} for role in ROLES
}
SELLS = {"admin", "manager", "cashier"}
REVERSES = {"admin", "manager"}
SEES_LEDGER = {"admin", "manager", "viewer"}


@pytest.fixture
def desktop(browser):
    context = browser.new_context(viewport=VIEWPORTS["desktop"], locale="zh-CN")
    pg = context.new_page()
    pg.viewport_name = "desktop"
    yield pg
    context.close()


def _nav_paths(page) -> set[str]:
    hrefs = page.eval_on_selector_all(
        "header nav a", "links => links.map(a => new URL(a.href).pathname)"
    )
    return {h for h in hrefs if h in NAV}


@pytest.mark.parametrize("role", sorted(OFFERED))
def test_each_role_is_offered_only_what_it_may_do(desktop, live_server, site, role):
    acct, _ = site.account()
    sell(acct, amount_fen=1000, method="cash", idempotency_key="roles", actor=SYSTEM, now=site.now)
    login(desktop, live_server, role)
    assert _nav_paths(desktop) == OFFERED[role]
    sell_buttons = desktop.locator(f"#results a.button[href$='/accounts/{acct.id}/sale']").count()
    assert (sell_buttons == 1) == (role in SELLS)

    desktop.goto(f"{live_server}/accounts/{acct.id}")
    assert (desktop.locator("form[action$='/reverse'] button").count() == 1) == (role in REVERSES)
    assert (desktop.locator("h2", has_text="账务流水").count() == 1) == (role in SEES_LEDGER)
    assert (desktop.locator(f"a.button[href$='/accounts/{acct.id}/sale']").count() == 1) == (
        role in SELLS
    )

    desktop.goto(f"{live_server}/settings")
    assert (desktop.locator("#settings-form button[type=submit]").count() == 1) == (
        role in ("admin", "manager")
    )
    shot(desktop, f"roles-{role}")


def test_admin_creates_a_user_through_the_form_who_can_then_sign_in(desktop, live_server, site):
    login(desktop, live_server, "admin")
    nav(desktop, "用户")
    desktop.wait_for_selector("#permission-matrix")
    desktop.fill("#username", "zhangsan")
    desktop.fill("#full_name", "张三")
    desktop.select_option("#role", "cashier")
    desktop.fill("#password", "short")
    desktop.click("#create-user button[type=submit]")
    desktop.wait_for_selector("#create-user .error")  # too short: told next to the field
    assert not User.select().where(User.username == "zhangsan").exists()
    desktop.fill("#password", "zhangsan-pass")
    desktop.click("#create-user button[type=submit]")
    desktop.wait_for_url("**/users/*")
    shot(desktop, "user-created")
    user = User.get(User.username == "zhangsan")
    assert (user.role, user.full_name) == ("cashier", "张三")

    desktop.click("header form[action='/logout'] button")
    desktop.goto(f"{live_server}/login")
    desktop.fill("#username", "zhangsan")
    desktop.fill("#password", "zhangsan-pass")
    desktop.click("button[type=submit]")
    desktop.wait_for_url(f"{live_server}/accounts")
    assert _nav_paths(desktop) == OFFERED["cashier"]
