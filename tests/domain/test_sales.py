import datetime as dt
import threading

import pytest

from app.db import db
from app.domain.actors import Actor
from app.domain.errors import Conflict, PermissionDenied, ValidationError
from app.domain.ledger import verify_ledger
from app.domain.sales import reverse_sale, sell
from app.models import AuditLog, Entry, LedgerAccount, Sale

CASHIER = Actor("cashier1", "cashier")
MANAGER = Actor("boss", "manager")


def balance(acct):
    return LedgerAccount.get_by_id(acct.wallet_id).balance_fen


def system_balance(prop, code):
    return LedgerAccount.get(
        (LedgerAccount.property == prop) & (LedgerAccount.code == code)
    ).balance_fen


def test_sale_with_service_fee_credits_net_amount(site, now):
    acct, _ = site.account()
    result = sell(
        acct, amount_fen=10000, method="wechat", idempotency_key="s1", actor=CASHIER, now=now
    )
    sale = result.sale
    assert result.created
    assert (sale.amount_fen, sale.fee_fen, sale.net_fen) == (10000, 300, 9700)
    assert balance(acct) == 9700
    assert system_balance(site.prop, "revenue:service_fee") == 300
    assert system_balance(site.prop, "cash:wechat") == 10000
    assert sale.receipt_no and sale.balance_after_fen == 9700
    assert AuditLog.select().where(AuditLog.action == "sale.create").count() == 1
    assert verify_ledger().ok


def test_repeated_sale_request_returns_the_first_sale_and_moves_no_money(site, now):
    acct, _ = site.account()
    first = sell(
        acct, amount_fen=5000, method="cash", idempotency_key="same", actor=CASHIER, now=now
    )
    again = sell(
        acct,
        amount_fen=5000,
        method="cash",
        idempotency_key="same",
        actor=CASHIER,
        now=now + dt.timedelta(seconds=3),
    )
    assert not again.created and again.sale.id == first.sale.id
    assert balance(acct) == 4850
    assert Sale.select().count() == 1 and Entry.select().where(Entry.kind == "sale").count() == 1


def test_request_id_reused_for_a_different_sale_is_refused(site, now):
    acct, _ = site.account()
    sell(acct, amount_fen=5000, method="cash", idempotency_key="k", actor=CASHIER, now=now)
    with pytest.raises(Conflict):
        sell(acct, amount_fen=6000, method="cash", idempotency_key="k", actor=CASHIER, now=now)
    assert balance(acct) == 4850


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"amount_fen": 0}, "amount"),
        ({"amount_fen": -100}, "amount"),
        ({"method": "bitcoin"}, "method"),
        ({"idempotency_key": ""}, "idempotency_key"),
        ({"utility": "gas"}, "utility"),
    ],
)
def test_bad_sale_input_is_refused_and_changes_nothing(site, now, kwargs, field):
    acct, _ = site.account()
    args = {"amount_fen": 100, "method": "cash", "idempotency_key": "x", **kwargs}
    with pytest.raises(ValidationError) as exc:
        sell(acct, actor=CASHIER, now=now, **args)
    assert exc.value.field == field
    assert Sale.select().count() == 0 and balance(acct) == 0


def test_reversal_needs_a_permitted_role_and_a_reason(site, now):
    acct, _ = site.account()
    sale = sell(
        acct, amount_fen=10000, method="cash", idempotency_key="r", actor=CASHIER, now=now
    ).sale
    with pytest.raises(PermissionDenied):
        reverse_sale(sale, reason="typo", actor=CASHIER, now=now)
    with pytest.raises(ValidationError):
        reverse_sale(sale, reason="  ", actor=MANAGER, now=now)
    assert balance(acct) == 9700
    result = reverse_sale(sale, reason="wrong account", actor=MANAGER, now=now)
    assert result.created and result.sale.reversed_by == "boss"
    assert balance(acct) == 0
    assert system_balance(site.prop, "revenue:service_fee") == 0
    assert system_balance(site.prop, "cash:cash") == 0
    # a second reversal is a no-op
    again = reverse_sale(sale, reason="again", actor=MANAGER, now=now)
    assert not again.created and balance(acct) == 0
    assert Entry.select().where(Entry.kind == "reversal").count() == 1
    assert verify_ledger().ok


def test_sale_to_a_closed_account_is_refused(site, now):
    from app.domain.accounts import close_account

    acct, _ = site.account()
    close_account(acct, actor=MANAGER, now=now)
    with pytest.raises(ValidationError):
        sell(acct, amount_fen=100, method="cash", idempotency_key="c", actor=CASHIER, now=now)


def _run_threads(target, n):
    errors = []

    def wrapped(i):
        try:
            target(i)
        except Exception as exc:  # noqa: BLE001 - collected and asserted
            errors.append(exc)
        finally:
            if not db.is_closed():
                db.close()

    threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return errors


def test_concurrent_sales_on_one_account_never_lose_an_update(site, now):
    acct, _ = site.account()

    def worker(i):
        for j in range(10):
            sell(
                acct,
                amount_fen=1000,
                method="cash",
                idempotency_key=f"t{i}-{j}",
                actor=CASHIER,
                now=now,
            )

    errors = _run_threads(worker, 4)  # on MariaDB: no deadlock between writers of one wallet
    assert errors == []
    assert Sale.select().count() == 40
    assert balance(acct) == 40 * 970
    assert verify_ledger().ok


def test_concurrent_repeats_of_one_request_make_one_sale(site, now):
    acct, _ = site.account()
    results = []

    def worker(i):
        results.append(
            sell(
                acct, amount_fen=1000, method="cash", idempotency_key="dup", actor=CASHIER, now=now
            )
        )

    errors = _run_threads(worker, 4)
    assert errors == []
    assert Sale.select().count() == 1
    assert len({r.sale.id for r in results}) == 1 and sum(r.created for r in results) == 1
    assert balance(acct) == 970
