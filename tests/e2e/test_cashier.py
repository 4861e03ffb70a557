"""What a cashier really does: find the tenant, sell, see the fee first, print the receipt."""

from __future__ import annotations

from app.models import LedgerAccount, Sale
from tests.e2e.conftest import login, shot


def test_cashier_sells_with_fee_preview_and_gets_a_receipt(page, live_server, site):
    acct, _ = site.account()
    login(page, live_server, "cashier")
    page.fill("#q", acct.number)
    page.wait_for_selector(f"#results >> text={acct.number}")
    page.click(f"#results tr:has-text('{acct.number}') >> text=售电")
    page.wait_for_url("**/sale")
    # htmx is loaded with defer: type only once it has bound the amount field's trigger
    page.wait_for_function("window.htmx !== undefined && document.readyState === 'complete'")
    page.fill("#amount", "100")
    page.wait_for_selector("#preview >> text=¥97.00")  # service fee shown before confirming
    shot(page, "sale-preview")
    page.click("text=确认售电")
    page.wait_for_url("**/receipt")
    assert "¥97.00" in page.inner_text(".receipt")
    shot(page, "receipt")
    assert LedgerAccount.get_by_id(acct.wallet_id).balance_fen == 9700


def test_a_double_clicked_confirm_sells_once(page, live_server, site):
    acct, _ = site.account()
    login(page, live_server, "cashier")
    page.goto(f"{live_server}/accounts/{acct.id}/sale")
    page.fill("#amount", "50")
    page.dblclick("text=确认售电")
    page.wait_for_url("**/receipt")
    assert Sale.select().count() == 1
    assert LedgerAccount.get_by_id(acct.wallet_id).balance_fen == 4850


def test_cashier_is_not_offered_reversal_and_language_switches(page, live_server, site):
    from app.domain.actors import SYSTEM
    from app.domain.sales import sell

    acct, _ = site.account()
    sell(acct, amount_fen=1000, method="cash", idempotency_key="e2e", actor=SYSTEM, now=site.now)
    login(page, live_server, "cashier")
    page.goto(f"{live_server}/accounts/{acct.id}")
    assert page.locator("text=冲正").count() == 0
    page.select_option("#lang", "en")
    page.wait_for_selector("text=Sales")
    assert page.locator("text=Reverse").count() == 0
    shot(page, "account-en")
