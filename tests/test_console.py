import re

import pytest

from app.domain.actors import SYSTEM
from app.domain.sales import sell
from app.domain.users import create_user
from app.models import LedgerAccount, Sale, User


def csrf(client):
    with client.session_transaction() as s:
        return s.get("csrf")


def login(client, username, password="password123"):
    client.get("/login")
    r = client.post(
        "/login", data={"username": username, "password": password, "csrf_token": csrf(client)}
    )
    client.get("/login")  # a fresh session gets its CSRF token on the next page
    return r


@pytest.fixture
def users(app, now):
    for role in ("admin", "manager", "cashier", "electrician", "viewer"):
        create_user(role, "password123", role, actor=SYSTEM, now=now)


def test_pages_need_a_login(client, site):
    r = client.get("/accounts")
    assert r.status_code == 302 and "/login" in r.headers["Location"]


def test_wrong_password_is_refused_and_repeated_failures_lock_the_user(client, users):
    for _ in range(5):
        assert login(client, "cashier", "wrong-password").status_code == 400
    assert login(client, "cashier").status_code == 400  # locked now, even with the right password
    assert User.get(User.username == "cashier").locked_until is not None


def test_login_without_csrf_token_is_rejected(client, users):
    r = client.post("/login", data={"username": "cashier", "password": "password123"})
    assert r.status_code == 400


def test_cross_site_post_is_rejected(client, users):
    client.get("/login")
    r = client.post(
        "/login",
        data={"username": "cashier", "password": "password123", "csrf_token": csrf(client)},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert r.status_code == 403


def test_accounts_page_lists_balances_and_search_returns_a_partial_for_htmx(
    client, users, site, now
):
    acct, _ = site.account()
    sell(acct, amount_fen=10000, method="cash", idempotency_key="a", actor=SYSTEM, now=now)
    login(client, "viewer")
    page = client.get("/accounts")
    assert page.status_code == 200 and "¥97.00" in page.text and "<html" in page.text
    assert page.headers["Vary"] and "HX-Request" in page.headers["Vary"]
    partial = client.get(f"/accounts?q={acct.number}", headers={"HX-Request": "true"})
    assert "<html" not in partial.text and acct.number in partial.text
    none = client.get("/accounts?q=zzzz", headers={"HX-Request": "true"})
    assert acct.number not in none.text


def test_cashier_sells_through_the_form_and_gets_a_receipt(client, users, site):
    acct, _ = site.account()
    login(client, "cashier")
    form = client.get(f"/accounts/{acct.id}/sale")
    request_id = re.search(r'name="request_id" value="([0-9a-f]+)"', form.text).group(1)
    preview = client.post(
        f"/accounts/{acct.id}/sale/preview",
        data={"amount": "100", "csrf_token": csrf(client)},
        headers={"HX-Request": "true"},
    )
    assert "¥3.00" in preview.text and "¥97.00" in preview.text
    data = {
        "amount": "100",
        "method": "alipay",
        "request_id": request_id,
        "csrf_token": csrf(client),
    }
    first = client.post(f"/accounts/{acct.id}/sale", data=data)
    second = client.post(f"/accounts/{acct.id}/sale", data=data)  # double click / resubmit
    assert first.status_code == second.status_code == 303
    assert first.headers["Location"] == second.headers["Location"]
    assert Sale.select().count() == 1
    assert LedgerAccount.get_by_id(acct.wallet_id).balance_fen == 9700
    receipt = client.get(first.headers["Location"])
    assert Sale.get().receipt_no in receipt.text and "¥97.00" in receipt.text


def test_an_htmx_sale_answers_with_hx_redirect_not_a_3xx(client, users, site):
    acct, _ = site.account()
    login(client, "cashier")
    r = client.post(
        f"/accounts/{acct.id}/sale",
        data={"amount": "10", "method": "cash", "request_id": "hx1", "csrf_token": csrf(client)},
        headers={"HX-Request": "true"},
    )
    assert r.status_code == 200 and r.headers["HX-Redirect"].endswith("/receipt")


def test_a_bad_amount_shows_the_message_next_to_the_field_and_sells_nothing(client, users, site):
    acct, _ = site.account()
    login(client, "cashier")
    r = client.post(
        f"/accounts/{acct.id}/sale",
        data={"amount": "12.345", "method": "cash", "request_id": "x", "csrf_token": csrf(client)},
        headers={"HX-Request": "true"},
    )
    assert r.status_code == 422 and 'aria-invalid="true"' in r.text
    assert Sale.select().count() == 0


def test_cashier_cannot_reverse_but_a_manager_can(client, users, site, now):
    acct, _ = site.account()
    sale = sell(
        acct, amount_fen=1000, method="cash", idempotency_key="a", actor=SYSTEM, now=now
    ).sale
    login(client, "cashier")
    page = client.get(f"/accounts/{acct.id}")
    assert "Reverse" not in page.text and "冲正" not in page.text
    assert (
        client.post(
            f"/sales/{sale.id}/reverse", data={"reason": "x", "csrf_token": csrf(client)}
        ).status_code
        == 403
    )
    client.post("/logout", data={"csrf_token": csrf(client)})
    login(client, "manager")
    r = client.post(
        f"/sales/{sale.id}/reverse", data={"reason": "wrong room", "csrf_token": csrf(client)}
    )
    assert r.status_code == 303
    assert Sale.get_by_id(sale.id).reversed_by == "manager"


def test_electrician_cannot_open_the_sale_form(client, users, site):
    acct, _ = site.account()
    login(client, "electrician")
    assert client.get(f"/accounts/{acct.id}/sale").status_code == 403


def test_console_is_chinese_by_default_and_switches_to_english(client, users, site):
    login(client, "viewer")
    zh = client.get("/accounts")
    assert "账户" in zh.text
    client.post("/language", data={"lang": "en", "next": "/accounts", "csrf_token": csrf(client)})
    en = client.get("/accounts")
    assert "Accounts" in en.text and "账户" not in en.text


def test_meters_page_filters_by_kind(client, users, site):
    site.account(kinds=("electricity", "water"))
    login(client, "electrician")
    page = client.get("/meters?kind=water", headers={"HX-Request": "true"})
    assert "W00001" in page.text and "E00001" not in page.text


def test_every_console_route_has_a_permission_rule(app):
    public = {"static", "auth.login", "auth.logout", "auth.language", "healthz", "api.openapi"}
    for name, view in app.view_functions.items():
        if name in public or name.startswith("api."):
            continue
        assert hasattr(view, "permission"), f"{name} has no permission rule"


def test_healthz_reports_the_database(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json["database"] == "ok"


def test_an_electrician_sees_the_balance_but_not_the_sales_amounts(client, users, site):
    acct, _ = site.account()
    sell(
        acct, amount_fen=123_400, method="cash", idempotency_key="elec", actor=SYSTEM, now=site.now
    )
    login(client, "electrician")
    page = client.get(f"/accounts/{acct.id}").text
    assert "¥1,196.98" in page  # the balance (net of the 3 % fee)
    assert "¥1,234.00" not in page and "¥37.02" not in page
    login(client, "viewer")
    assert "¥1,234.00" in client.get(f"/accounts/{acct.id}").text
