import pytest

from app.domain.actors import SYSTEM
from app.domain.errors import ValidationError
from app.domain.ledger import post_entry, reverse_entry, system_account, verify_ledger
from app.domain.sales import sell
from app.models import LedgerAccount


def test_unbalanced_entry_is_refused(site, now):
    cash = system_account(site.prop.id, "cash:cash")
    rev = system_account(site.prop.id, "revenue:rent")
    with pytest.raises(ValidationError):
        post_entry("adjustment", [(cash, 100), (rev, -99)], actor="t", now=now)
    with pytest.raises(TypeError):
        post_entry("adjustment", [(cash, 1.0), (rev, -1.0)], actor="t", now=now)  # type: ignore[list-item]
    assert LedgerAccount.get_by_id(cash.id).balance_fen == 0


def test_reverse_entry_restores_balances(site, now):
    acct, _ = site.account()
    sale = sell(
        acct, amount_fen=2000, method="cash", idempotency_key="a", actor=SYSTEM, now=now
    ).sale
    reverse_entry(sale.entry, actor="t", now=now, memo="undo")
    assert LedgerAccount.get_by_id(acct.wallet_id).balance_fen == 0
    assert verify_ledger().ok


def test_verify_reports_a_cached_balance_that_differs_from_the_legs(site, now):
    acct, _ = site.account()
    sell(acct, amount_fen=2000, method="cash", idempotency_key="a", actor=SYSTEM, now=now)
    LedgerAccount.update(balance_fen=LedgerAccount.balance_fen + 1).where(
        LedgerAccount.id == acct.wallet_id
    ).execute()
    report = verify_ledger()
    assert not report.ok
    assert any(f"wallet:{acct.number}" in p for p in report.problems)
