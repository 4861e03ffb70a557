import datetime as dt

import pytest

from app.domain.accounts import expire_keep_power, set_keep_power
from app.domain.actors import SYSTEM, Actor
from app.domain.errors import PermissionDenied, ValidationError
from app.domain.readings import apply_reading
from app.domain.sales import sell
from app.domain.status import expire_awaiting, status_for
from app.models import Account, Event, Meter

H = dt.timedelta(hours=1)
ELECTRICIAN = Actor("li", "electrician")


def kinds(acct):
    return [e.kind for e in Event.select().where(Event.account == acct.id).order_by(Event.id)]


@pytest.mark.parametrize(
    "balance,expected",
    [
        (10000, "opened"),
        (5000, "alarm1"),
        (3000, "alarm1"),
        (2000, "alarm2"),
        (1, "alarm2"),
        (0, "arrears"),
        (-1, "arrears"),
    ],
)
def test_status_tiers_by_balance(balance, expected):
    assert status_for(balance, 5000, 2000, 0) == expected


def test_credit_limit_moves_the_arrears_line_below_zero():
    assert status_for(-500, 5000, 2000, 1000) == "alarm2"
    assert status_for(-1000, 5000, 2000, 1000) == "arrears"


def test_an_account_past_its_opening_grace_with_no_money_is_in_arrears_and_off(site, now):
    acct, (meter,) = site.account()
    assert Account.get_by_id(acct.id).status == "arrears"
    assert Meter.get_by_id(meter.id).relay_desired == "off"


def test_each_tier_is_announced_once_per_crossing_and_payment_restores_supply(site, now):
    acct, (meter,) = site.account()
    sell(
        acct, amount_fen=10310, method="cash", idempotency_key="a", actor=SYSTEM, now=now
    )  # 100.00 net
    m = Meter.get_by_id(meter.id)
    assert m.relay_desired == "on"
    Event.delete().execute()
    t, total = now, 0
    for _ in range(20):  # 0.70 yuan per kWh; 10 kWh per step = 7.00
        t += H
        total += 1000
        apply_reading(meter, read_at=t, total=total, actor=SYSTEM, now=t)
    assert kinds(acct) == ["balance.alarm1", "balance.alarm2", "balance.arrears", "relay.off"]
    assert Meter.get_by_id(meter.id).relay_desired == "off"
    assert Meter.get_by_id(meter.id).relay_reason == "arrears"
    sell(acct, amount_fen=10000, method="cash", idempotency_key="b", actor=SYSTEM, now=t)
    assert Account.get_by_id(acct.id).status == "opened"
    assert kinds(acct)[-2:] == ["balance.opened", "relay.on"]
    assert Meter.get_by_id(meter.id).relay_desired == "on"


def test_keep_power_prevents_the_trip_and_its_expiry_lets_it_happen(site, now):
    acct, (meter,) = site.account()
    sell(acct, amount_fen=1000, method="cash", idempotency_key="a", actor=SYSTEM, now=now)
    with pytest.raises(PermissionDenied):
        set_keep_power(meter, on=True, reason="x", actor=Actor("c", "cashier"), now=now)
    with pytest.raises(ValidationError):
        set_keep_power(meter, on=True, reason="", actor=ELECTRICIAN, now=now)
    set_keep_power(
        meter, on=True, reason="hospital freezer", until=now + 5 * H, actor=ELECTRICIAN, now=now
    )
    apply_reading(meter, read_at=now + H, total=5000, actor=SYSTEM, now=now + H)
    assert Account.get_by_id(acct.id).status == "arrears"
    m = Meter.get_by_id(meter.id)
    assert m.relay_desired == "on" and m.keep_power_by == "li"
    assert expire_keep_power(now=now + 4 * H) == 0
    assert expire_keep_power(now=now + 6 * H) == 1
    m = Meter.get_by_id(meter.id)
    assert not m.keep_power and m.relay_desired == "off"


def test_keep_power_turns_an_arrears_trip_back_on(site, now):
    acct, (meter,) = site.account()
    assert Meter.get_by_id(meter.id).relay_desired == "off"
    set_keep_power(meter, on=True, reason="permit", actor=ELECTRICIAN, now=now)
    assert Meter.get_by_id(meter.id).relay_desired == "on"
    set_keep_power(meter, on=False, actor=ELECTRICIAN, now=now + H)
    assert Meter.get_by_id(meter.id).relay_desired == "off"


def test_opening_without_a_payment_awaits_it_with_supply_on_and_no_arrears_message(site, now):
    from app.domain.sms import dispatch_events
    from app.models.sms import SmsMessage as Message

    acct, (meter,) = site.account(awaiting=True)
    acct = Account.get_by_id(acct.id)
    assert acct.status == "awaiting" and acct.awaiting_until == now + 24 * H
    assert Meter.get_by_id(meter.id).relay_desired == "on"
    assert not [k for k in kinds(acct) if k.startswith("balance.")]
    dispatch_events(now)
    assert Message.select().where(Message.account == acct.id).count() == 0


def test_the_first_payment_ends_the_wait_and_the_account_takes_its_tier(site, now):
    acct, _ = site.account(awaiting=True)
    sell(acct, amount_fen=4000, method="cash", idempotency_key="a", actor=SYSTEM, now=now + H)
    acct = Account.get_by_id(acct.id)
    assert (acct.status, acct.awaiting_until) == ("alarm1", None)  # 38.80 after the 3 % fee


def test_use_in_the_grace_is_charged_and_arrears_follow_when_the_grace_ends(site, now):
    from workers.tasks.control import expire_opening_grace_task

    acct, (meter,) = site.account(awaiting=True)
    apply_reading(meter, read_at=now + H, total=1000, actor=SYSTEM, now=now + H)  # 7.00
    acct = Account.get_by_id(acct.id)
    assert acct.status == "awaiting" and Meter.get_by_id(meter.id).relay_desired == "on"
    assert expire_awaiting(now=now + 23 * H) == 0
    assert expire_awaiting(now=now + 24 * H) == 1
    assert Account.get_by_id(acct.id).status == "arrears"
    m = Meter.get_by_id(meter.id)
    assert (m.relay_desired, m.relay_reason) == ("off", "arrears")
    assert "balance.arrears" in kinds(acct) and "relay.off" in kinds(acct)
    assert expire_opening_grace_task.call_local() == 0  # nothing left waiting


def test_with_the_off_policy_supply_stays_off_until_the_first_payment(site, now):
    from app.models import Command, Property

    Property.update(opening_policy="off").where(Property.id == site.prop.id).execute()
    site.prop = Property.get_by_id(site.prop.id)
    acct, (meter,) = site.account(awaiting=True)
    m = Meter.get_by_id(meter.id)
    assert (m.relay_desired, m.relay_reason) == ("off", "awaiting")
    assert Account.get_by_id(acct.id).awaiting_until is None
    assert expire_awaiting(now=now + 1000 * H) == 0  # no grace to run out
    assert Command.select().where(Command.meter == meter.id).count() == 1
    assert not [k for k in kinds(acct) if k.startswith("balance.")]
    sell(acct, amount_fen=10310, method="cash", idempotency_key="a", actor=SYSTEM, now=now + H)
    m = Meter.get_by_id(meter.id)
    assert Account.get_by_id(acct.id).status == "opened" and m.relay_desired == "on"
