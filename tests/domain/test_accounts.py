import datetime as dt

import pytest

from app.domain.accounts import MeterStart, close_account, open_account, swap_meter
from app.domain.actors import SYSTEM, Actor
from app.domain.errors import PermissionDenied, ValidationError
from app.domain.ledger import verify_ledger
from app.domain.readings import apply_reading
from app.domain.sales import sell
from app.domain.site import create_meter, create_tenant
from app.models import Account, AuditLog, LedgerAccount, Meter, Reading

H = dt.timedelta(hours=1)
MANAGER = Actor("m", "manager")


def bal(acct):
    return LedgerAccount.get_by_id(acct.wallet_id).balance_fen


def test_open_account_with_two_meters_attaches_them_with_baselines(site, now):
    acct, meters = site.account(kinds=("electricity", "water"), initial=1000)
    assert {m.status for m in meters} == {"active"}
    assert all(m.account_id == acct.id and m.last_total == 1000 for m in meters)
    assert Reading.select().where(Reading.status == "baseline").count() == 2
    assert AuditLog.select().where(AuditLog.action == "account.open").count() == 1
    assert acct.number.startswith("P1-")


def test_a_meter_in_use_cannot_be_opened_again(site, now):
    acct, (meter,) = site.account()
    tenant = create_tenant(site.prop, name="Other", actor=SYSTEM, now=now)
    with pytest.raises(ValidationError) as exc:
        open_account(
            site.prop,
            tenant=tenant,
            meters=[MeterStart(meter)],
            tariff_electricity=site.flat,
            actor=SYSTEM,
            now=now,
        )
    assert "in use" in exc.value.message
    assert Account.select().count() == 1


def test_alarm_thresholds_must_be_ordered(site, now):
    tenant = create_tenant(site.prop, name="T", actor=SYSTEM, now=now)
    meter = create_meter(site.prop, serial="X1", kind="electricity", actor=SYSTEM, now=now)
    with pytest.raises(ValidationError):
        open_account(
            site.prop,
            tenant=tenant,
            meters=[MeterStart(meter)],
            tariff_electricity=site.flat,
            alarm1_fen=100,
            alarm2_fen=500,
            actor=SYSTEM,
            now=now,
        )
    assert Meter.get_by_id(meter.id).status == "stock"


def test_close_account_refunds_the_balance_and_releases_meters(site, now):
    acct, (meter,) = site.account()
    sell(acct, amount_fen=10000, method="cash", idempotency_key="a", actor=SYSTEM, now=now)
    apply_reading(meter, read_at=now + H, total=1000, actor=SYSTEM, now=now + H)
    with pytest.raises(PermissionDenied):
        close_account(acct, actor=Actor("c", "cashier"), now=now + H)
    closed = close_account(acct, refund_method="cash", actor=MANAGER, now=now + 2 * H)
    assert closed.status == "closed" and bal(acct) == 0
    cash = LedgerAccount.get(
        (LedgerAccount.property == site.prop) & (LedgerAccount.code == "cash:cash")
    )
    assert cash.balance_fen == 10000 - 9000
    m = Meter.get_by_id(meter.id)
    assert m.status == "stock" and m.account_id is None and m.relay_desired == "off"
    assert verify_ledger().ok


def test_close_without_payout_moves_the_balance_to_refunds_payable(site, now):
    acct, _ = site.account()
    sell(acct, amount_fen=1000, method="cash", idempotency_key="a", actor=SYSTEM, now=now)
    close_account(acct, actor=MANAGER, now=now)
    payable = LedgerAccount.get(
        (LedgerAccount.property == site.prop) & (LedgerAccount.code == "liability:refunds_payable")
    )
    assert payable.balance_fen == 970


def test_an_account_that_owes_cannot_be_closed(site, now):
    acct, (meter,) = site.account(credit_limit_fen=10000)
    apply_reading(meter, read_at=now + H, total=1000, actor=SYSTEM, now=now + H)
    with pytest.raises(ValidationError) as exc:
        close_account(acct, actor=MANAGER, now=now + H)
    assert "owes" in exc.value.message
    assert Account.get_by_id(acct.id).status != "closed"


def test_meter_swap_charges_the_old_meter_and_continues_on_the_new(site, now):
    acct, (old,) = site.account(initial=5000)
    sell(acct, amount_fen=10000, method="cash", idempotency_key="a", actor=SYSTEM, now=now)
    new = create_meter(site.prop, serial="NEW1", kind="electricity", actor=SYSTEM, now=now)
    swapped = swap_meter(
        old,
        new,
        old_final_total=6000,
        new_initial_total=20,
        actor=Actor("e", "electrician"),
        now=now + H,
    )
    assert bal(acct) == 9700 - 700
    assert swapped.account_id == acct.id and swapped.status == "active" and swapped.last_total == 20
    assert Meter.get_by_id(old.id).status == "removed"
    res = apply_reading(swapped, read_at=now + 2 * H, total=120, actor=SYSTEM, now=now + 2 * H)
    assert res.consumption == 100 and bal(acct) == 9000 - 70
    assert verify_ledger().ok


def test_swap_refuses_a_falling_final_reading_and_changes_nothing(site, now):
    acct, (old,) = site.account(initial=5000)
    new = create_meter(site.prop, serial="NEW2", kind="electricity", actor=SYSTEM, now=now)
    with pytest.raises(ValidationError):
        swap_meter(old, new, old_final_total=4000, new_initial_total=0, actor=SYSTEM, now=now + H)
    assert Meter.get_by_id(old.id).status == "active" and Meter.get_by_id(new.id).status == "stock"
    assert Reading.select().where(Reading.meter == old.id).count() == 1
