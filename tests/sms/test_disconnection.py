"""Friendly disconnection: no arrears cut in the property's night window or on its marked days
(the tenant is told when the cut comes, and it comes at the end of the window), and an optional
grace credit before the trip.  Pinned at the window's edges in local time (Asia/Shanghai)."""

from __future__ import annotations

import json

import pytest

from app.domain.actors import SYSTEM
from app.domain.control import force_supply
from app.domain.readings import apply_reading
from app.domain.sales import sell
from app.domain.sms import dispatch_events
from app.domain.status import cut_deferred, cut_time
from app.models import Account, Event, Meter, Property
from app.models.sms import SmsMessage
from tests.operations.helpers import local

ELEVEN = 1100  # 11 kWh at 0.70 = 7.70 yuan


def friendly(site, **values) -> Property:
    values = {
        "friendly_cut": True,
        "no_cut_start_min": 20 * 60,
        "no_cut_end_min": 8 * 60,
        **values,
    }
    Property.update(**values).where(Property.id == site.prop.id).execute()
    site.prop = Property.get_by_id(site.prop.id)
    return site.prop


@pytest.mark.parametrize(
    "at,cut",
    [
        ("2026-11-04 19:59", "2026-11-04 19:59"),  # a Wednesday, before the window: now
        ("2026-11-04 20:00", "2026-11-05 08:00"),
        ("2026-11-05 07:59", "2026-11-05 08:00"),  # 23:59 UTC the day before
        ("2026-11-05 08:00", "2026-11-05 08:00"),
        ("2026-11-07 10:00", "2026-11-09 08:00"),  # Saturday: Monday morning
        ("2026-11-06 21:00", "2026-11-09 08:00"),  # Friday night, then the weekend
        ("2026-11-10 12:00", "2026-11-11 08:00"),  # a marked holiday
    ],
)
def test_the_cut_waits_for_the_end_of_the_night_window_and_the_marked_days(site, at, cut):
    prop = friendly(site, no_cut_weekends=True, no_cut_days="2026-11-10")
    assert cut_time(prop, local(at)) == local(cut)


def test_without_the_policy_the_cut_is_now(site):
    assert cut_time(site.prop, local("2026-11-04 23:00")) == local("2026-11-04 23:00")


def test_a_window_that_does_not_span_midnight(site):
    prop = friendly(site, no_cut_start_min=12 * 60, no_cut_end_min=14 * 60)
    assert cut_time(prop, local("2026-11-04 11:59")) == local("2026-11-04 11:59")
    assert cut_time(prop, local("2026-11-04 13:00")) == local("2026-11-04 14:00")


def _in_arrears_at(site, now, at: str):
    """An account with 10 yuan whose reading at ``at`` (local) takes it below zero."""
    acct, (meter,) = site.account()
    sell(acct, amount_fen=1031, method="cash", idempotency_key="f", actor=SYSTEM, now=now)
    Event.delete().execute()
    apply_reading(meter, read_at=local(at), total=2 * ELEVEN, actor=SYSTEM, now=local(at))
    return Account.get_by_id(acct.id), Meter.get_by_id(meter.id)


def test_arrears_at_night_tell_the_tenant_the_morning_cut_and_cut_at_8_local(site, now, configure):
    friendly(site)
    configure()
    acct, meter = _in_arrears_at(site, now, "2026-11-04 21:00")
    assert acct.status == "arrears" and meter.relay_desired == "on"
    event = Event.get(Event.kind == "balance.arrears")
    assert json.loads(event.data)["cut_at"] == local("2026-11-05 08:00").isoformat()
    dispatch_events(local("2026-11-04 21:00"))
    message = SmsMessage.get(SmsMessage.account == acct.id)
    assert message.kind == "arrears_notice" and "11-05 08:00" in message.body
    assert cut_deferred(now=local("2026-11-05 07:59")) == 1
    assert Meter.get_by_id(meter.id).relay_desired == "on"
    cut_deferred(now=local("2026-11-05 08:00"))
    m = Meter.get_by_id(meter.id)
    assert (m.relay_desired, m.relay_reason) == ("off", "arrears")
    assert Event.select().where(Event.kind == "relay.off").count() == 1


def test_a_payment_before_the_morning_keeps_the_supply_on(site, now):
    friendly(site)
    acct, meter = _in_arrears_at(site, now, "2026-11-04 21:00")
    sell(
        acct,
        amount_fen=5000,
        method="cash",
        idempotency_key="p",
        actor=SYSTEM,
        now=local("2026-11-05 07:00"),
    )
    cut_deferred(now=local("2026-11-05 08:00"))
    assert Meter.get_by_id(meter.id).relay_desired == "on"
    assert Account.get_by_id(acct.id).status != "arrears"


def test_arrears_outside_the_window_cut_at_once(site, now):
    friendly(site)
    acct, meter = _in_arrears_at(site, now, "2026-11-04 19:59")
    assert (meter.relay_desired, meter.relay_reason) == ("off", "arrears")


def test_a_forced_trip_is_not_deferred_and_restoring_prepaid_control_keeps_the_window(site, now):
    friendly(site)
    acct, meter = _in_arrears_at(site, now, "2026-11-04 21:00")
    at = local("2026-11-04 21:05")
    forced = force_supply(meter, on=False, actor=SYSTEM, now=at, reason="inspection")
    assert (forced.relay_desired, forced.relay_reason) == ("off", "forced")
    back = force_supply(meter, on=True, actor=SYSTEM, now=at, reason="done")
    assert back.relay_desired == "on"  # arrears, but the cut waits for 08:00


def test_the_grace_credit_keeps_supply_on_until_the_balance_is_that_far_below_zero(
    site, now, configure
):
    Property.update(grace_credit_fen=2000).where(Property.id == site.prop.id).execute()
    site.prop = Property.get_by_id(site.prop.id)
    configure()
    acct, meter = _in_arrears_at(site, now, "2026-11-04 12:00")  # -5.10
    assert acct.status == "arrears" and meter.relay_desired == "on"
    dispatch_events(local("2026-11-04 12:00"))
    message = SmsMessage.get(SmsMessage.account == acct.id)
    assert message.kind == "arrears_grace" and "-20.00" in message.body
    apply_reading(
        meter,
        read_at=local("2026-11-04 13:00"),
        total=3 * ELEVEN,
        actor=SYSTEM,
        now=local("2026-11-04 13:00"),
    )  # -12.80
    assert Meter.get_by_id(meter.id).relay_desired == "on"
    apply_reading(
        meter,
        read_at=local("2026-11-04 14:00"),
        total=4 * ELEVEN,
        actor=SYSTEM,
        now=local("2026-11-04 14:00"),
    )  # -20.50
    assert Meter.get_by_id(meter.id).relay_desired == "off"
