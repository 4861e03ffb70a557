"""From events and sales to outbox rows: one message per tier crossing, no storms, quiet
hours, receipts, rent, bills, staff alerts, languages and the days-left estimate."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from peewee import fn

from app.domain import sms
from app.domain.actors import SYSTEM
from app.domain.readings import ReadingIn, apply_reading, apply_readings
from app.domain.sales import reverse_sale, sell
from app.domain.site import create_tenant
from app.models import Account, Event, Meter, Tenant
from app.models.sms import SmsMessage

H = dt.timedelta(hours=1)


_MARK: dict[int, int] = {}


@pytest.fixture(autouse=True)
def _fresh_marks():
    _MARK.clear()


def tenant_kinds(acct) -> list[str]:
    """Kinds of the account's messages since it was funded."""
    return [
        m.kind
        for m in SmsMessage.select()
        .where((SmsMessage.account == acct.id) & (SmsMessage.id > _MARK.get(acct.id, 0)))
        .order_by(SmsMessage.id)
    ]


def funded_account(site, now):
    """An account with 100.00 credited (103.09 less the 3 % fee), its meter, and the events
    and receipt of its opening dispatched already."""
    acct, (meter,) = site.account()
    sell(
        acct,
        amount_fen=10309,
        method="cash",
        idempotency_key=f"fund-{acct.id}",
        actor=SYSTEM,
        now=now,
    )
    sms.dispatch_events(now)
    _MARK[acct.id] = SmsMessage.select(fn.MAX(SmsMessage.id)).scalar() or 0
    return acct, meter


def test_each_tier_sends_exactly_one_sms_per_crossing_and_again_after_a_top_up(
    site, now, configure
):
    configure()
    acct, meter = funded_account(site, now)
    t, total = now, 0

    def use(steps: int) -> None:  # 10 kWh at 0.70 = 7.00 a step, dispatching after each reading
        nonlocal t, total
        for _ in range(steps):
            t += H
            total += 1000
            apply_reading(meter, read_at=t, total=total, actor=SYSTEM, now=t)
            sms.dispatch_events(t)

    use(7)  # 100 - 49 = 51.00: above alarm 1 (50.00)
    assert tenant_kinds(acct) == []
    use(1)  # 44.00
    assert tenant_kinds(acct) == ["alarm1"]
    use(3)  # 23.00: still alarm 1, nothing new
    assert tenant_kinds(acct) == ["alarm1"]
    use(1)  # 16.00
    assert tenant_kinds(acct) == ["alarm1", "alarm2"]
    use(2)  # 2.00
    use(1)  # -5.00: arrears, supply cut
    assert tenant_kinds(acct) == ["alarm1", "alarm2", "arrears"]
    assert SmsMessage.get(SmsMessage.kind == "arrears").urgent
    sell(acct, amount_fen=10309, method="cash", idempotency_key="top-up", actor=SYSTEM, now=t)
    sms.dispatch_events(t)
    assert tenant_kinds(acct)[3:] == ["restored", "receipt"]
    use(7)  # 95.00 - 49 = 46.00: below alarm 1 again
    use(4)  # 18.00: below alarm 2 again
    assert tenant_kinds(acct)[5:] == ["alarm1", "alarm2"]
    assert sms.dispatch_events(t).messages == 0  # nothing new on a second run
    bodies = [m.body for m in SmsMessage.select().where(SmsMessage.kind == "alarm1")]
    assert len(bodies) == 2 and "44.00" in bodies[0] and "46.00" in bodies[1]


def test_a_burst_of_readings_sends_one_message_for_the_last_tier(site, now, configure):
    configure()
    acct, meter = funded_account(site, now)
    backlog = [
        ReadingIn(meter_id=meter.id, read_at=now + i * H, total=i * 1000) for i in range(1, 21)
    ]
    apply_readings(backlog, actor=SYSTEM, now=now + 20 * H)
    assert (
        Event.select().where(Event.kind.startswith("balance.") & (Event.account == acct.id)).count()
        == 3
    )
    report = sms.dispatch_events(now + 20 * H)
    assert tenant_kinds(acct) == ["arrears"]
    assert report.messages == 1
    assert sms.dispatch_events(now + 20 * H).messages == 0
    assert not Event.select().where(Event.handled_at.is_null()).exists()


def test_a_partial_top_up_out_of_alarm_2_does_not_announce_alarm_1(site, now, configure):
    configure()
    acct, meter = funded_account(site, now)
    apply_reading(
        meter, read_at=now + 2 * H, total=12000, actor=SYSTEM, now=now + 2 * H
    )  # 100 - 84 = 16.00
    sms.dispatch_events(now + 2 * H)
    assert tenant_kinds(acct) == ["alarm2"]
    sell(
        acct, amount_fen=2000, method="cash", idempotency_key="small", actor=SYSTEM, now=now + 2 * H
    )  # 35.40
    assert Account.get_by_id(acct.id).status == "alarm1"
    sms.dispatch_events(now + 2 * H)
    assert tenant_kinds(acct) == ["alarm2", "receipt"]


def test_every_phone_of_the_tenant_gets_the_message_once(site, now, configure):
    configure()
    acct, meter = funded_account(site, now)
    Tenant.update(phones="13800000000,+8613900000000, 13800000000").where(
        Tenant.id == acct.tenant_id
    ).execute()
    apply_reading(meter, read_at=now + H, total=8000, actor=SYSTEM, now=now + H)
    sms.dispatch_events(now + H)
    sms.dispatch_events(now + H)
    rows = list(
        SmsMessage.select().where(SmsMessage.kind == "alarm1").order_by(SmsMessage.recipient)
    )
    assert [r.recipient for r in rows] == ["+8613800000000", "+8613900000000"]
    assert len({r.dedupe_key for r in rows}) == 2


def test_a_tenant_without_a_phone_gets_a_skipped_row_that_says_why(site, now, configure):
    configure()
    acct, meter = funded_account(site, now)
    Tenant.update(phones="").where(Tenant.id == acct.tenant_id).execute()
    apply_reading(meter, read_at=now + H, total=8000, actor=SYSTEM, now=now + H)
    sms.dispatch_events(now + H)
    row = SmsMessage.get(SmsMessage.kind == "alarm1")
    assert (row.status, row.error_code, row.recipient) == ("skipped", "no_phone", "")
    assert row.id not in sms.due_messages(now + H)


def test_quiet_hours_hold_non_urgent_messages_but_the_cut_goes_at_once(
    site, now, configure, sender
):
    configure(quiet_start="22:00", quiet_end="08:00")
    late = now + 11 * H  # 15:00 UTC = 23:00 in Shanghai
    low, low_meter = funded_account(site, now)
    broke, broke_meter = funded_account(site, now)
    apply_reading(low_meter, read_at=late, total=8000, actor=SYSTEM, now=late)  # alarm 1
    apply_reading(broke_meter, read_at=late, total=16000, actor=SYSTEM, now=late)  # arrears
    sms.dispatch_events(late)
    alarm = SmsMessage.get(SmsMessage.kind == "alarm1")
    cut = SmsMessage.get(SmsMessage.kind == "arrears")
    morning = dt.datetime(2026, 11, 3, 0, 0)  # 08:00 in Shanghai
    assert alarm.next_attempt_at == morning and cut.next_attempt_at == late
    assert cut.id in sms.due_messages(late) and alarm.id not in sms.due_messages(late)
    assert sms.deliver(cut.id, now=late, sender=sender).status == "sent"
    assert (
        sms.deliver(alarm.id, now=late, sender=sender).status == "queued"
    )  # not due: nothing sent
    assert [to for to, _ in sender.sent] == ["+8613800000000"] and "欠费" in sender.sent[0][1]
    assert alarm.id not in sms.due_messages(morning - dt.timedelta(minutes=1))
    assert alarm.id in sms.due_messages(morning)
    assert sms.deliver(alarm.id, now=morning, sender=sender).status == "sent"


def test_a_retry_that_lands_in_quiet_hours_waits_for_the_morning(site, now, configure, sender):
    configure(quiet_start="22:00", quiet_end="08:00")
    acct, meter = funded_account(site, now)
    apply_reading(meter, read_at=now + H, total=8000, actor=SYSTEM, now=now + H)
    sms.dispatch_events(now + H)
    msg = SmsMessage.get(SmsMessage.kind == "alarm1")
    night = now + 12 * H  # 00:00 in Shanghai
    assert sms.deliver(msg.id, now=night, sender=sender).status == "queued"
    assert SmsMessage.get_by_id(msg.id).next_attempt_at == dt.datetime(2026, 11, 3, 0, 0)
    assert sender.sent == []


def test_receipt_carries_amount_fee_new_balance_and_a_reversed_sale_gets_none(site, now, configure):
    configure()
    acct, _ = site.account()
    sale = sell(
        acct, amount_fen=10309, method="wechat", idempotency_key="r1", actor=SYSTEM, now=now
    ).sale
    second = sell(
        acct, amount_fen=5000, method="cash", idempotency_key="r2", actor=SYSTEM, now=now
    ).sale
    reverse_sale(second, reason="wrong account", actor=SYSTEM, now=now)
    sms.dispatch_events(now)
    (receipt,) = SmsMessage.select().where(SmsMessage.kind == "receipt")
    assert receipt.sale_id == sale.id and receipt.recipient == "+8613800000000"
    assert "103.09" in receipt.body and "3.09" in receipt.body and "100.00" in receipt.body
    assert sale.receipt_no in receipt.body
    assert tenant_kinds(acct) == ["receipt"]  # a new account's first payment is not "restored"
    sms.dispatch_events(now)
    assert SmsMessage.select().where(SmsMessage.kind == "receipt").count() == 1


def test_nothing_is_written_when_sms_is_off_and_old_events_are_not_replayed_later(
    site, now, configure
):
    acct, meter = funded_account(site, now)
    apply_reading(meter, read_at=now + H, total=8000, actor=SYSTEM, now=now + H)
    report = sms.dispatch_events(now + H)
    assert report.messages == 0 and report.events >= 1
    configure(at=now + H)
    assert sms.dispatch_events(now + H).messages == 0  # neither the alarm nor the earlier receipt


def test_rent_deducted_message_names_the_charge_and_the_period(site, now, configure):
    configure()
    acct, _ = funded_account(site, now)
    Event.create(
        kind="rent.charged",
        property=site.prop,
        account=acct,
        created_at=now,
        data=json.dumps(
            {
                "kind": "rent",
                "name": "",
                "amount_fen": 150000,
                "balance_fen": -140000,
                "period_start": "2026-11-01",
                "period_end": "2026-11-30",
            }
        ),
    )
    sms.dispatch_events(now)
    msg = SmsMessage.get(SmsMessage.kind == "fee_deducted")
    assert "房租（2026-11-01~2026-11-30）1500.00元" in msg.body and "-1400.00" in msg.body


def test_english_speaking_tenant_gets_the_english_template(site, now, configure):
    configure()
    acct, meter = funded_account(site, now)
    sms.set_tenant_language(Tenant.get_by_id(acct.tenant_id), language="en", actor=SYSTEM, now=now)
    apply_reading(meter, read_at=now + H, total=8000, actor=SYSTEM, now=now + H)
    sms.dispatch_events(now + H)
    msg = SmsMessage.get(SmsMessage.kind == "alarm1")
    assert msg.language == "en"
    assert msg.body.startswith("[Test Plaza] Tenant ") and "below alarm 1 (50.00 yuan)" in msg.body


def test_a_managers_template_is_used(site, now, configure):
    configure()
    sms.save_template(
        site.prop,
        kind="alarm1",
        language="zh_CN",
        body="{account} 余额 {balance}",
        actor=SYSTEM,
        now=now,
    )
    acct, meter = funded_account(site, now)
    apply_reading(meter, read_at=now + H, total=8000, actor=SYSTEM, now=now + H)
    sms.dispatch_events(now + H)
    assert SmsMessage.get(SmsMessage.kind == "alarm1").body == f"{acct.number} 余额 44.00"


def test_alarm_message_estimates_days_left_from_the_last_seven_days(site, now, configure):
    configure()
    start = now - dt.timedelta(days=8)
    acct, (meter,) = site.account(at=start)
    sell(acct, amount_fen=10309, method="cash", idempotency_key="f", actor=SYSTEM, now=start)
    apply_reading(meter, read_at=start, total=0, actor=SYSTEM, now=start)  # baseline
    sms.dispatch_events(start)
    for day in range(1, 9):  # 10 kWh = 7.00 a day; 8 days: 100 - 56 = 44.00
        t = start + dt.timedelta(days=day)
        apply_reading(meter, read_at=t, total=day * 1000, actor=SYSTEM, now=t)
    assert sms.estimate_days_left(Account.get_by_id(acct.id), 4400, now) == 6
    assert sms.estimate_days_left(Account.get_by_id(acct.id), 500, now) == 0
    sms.dispatch_events(now)
    assert "，按近7天平均用量约可用6天。" in SmsMessage.get(SmsMessage.kind == "alarm1").body


def test_no_estimate_without_a_day_of_history(site, now, configure):
    configure()
    acct, meter = funded_account(site, now)
    apply_reading(meter, read_at=now + H, total=8000, actor=SYSTEM, now=now + H)
    assert sms.estimate_days_left(Account.get_by_id(acct.id), 4400, now + H) is None
    sms.dispatch_events(now + H)
    assert "可用" not in SmsMessage.get(SmsMessage.kind == "alarm1").body


def test_staff_alerts_go_to_staff_numbers_as_one_digest_per_kind(site, now, configure):
    configure(staff_phones="13700000001, 13700000002")
    meters = [site.account()[1][0] for _ in range(3)]
    sms.dispatch_events(now)
    for m in meters[:2]:
        Event.create(
            kind="meter.offline",
            property=site.prop,
            meter=m,
            account=m.account_id,
            created_at=now,
            data='{"missed": 3}',
        )
    Event.create(
        kind="meter.overload",
        property=site.prop,
        meter=meters[2],
        created_at=now,
        data='{"power_w": 8200, "limit_w": 5000}',
    )
    sms.dispatch_events(now)
    offline = list(SmsMessage.select().where(SmsMessage.kind == "staff.offline"))
    assert sorted(m.recipient for m in offline) == ["+8613700000001", "+8613700000002"]
    assert "2块表计离线" in offline[0].body and meters[0].serial in offline[0].body
    overload = SmsMessage.get(
        (SmsMessage.kind == "staff.overload") & (SmsMessage.recipient == "+8613700000001")
    )
    assert overload.urgent and "8200W/5000W" in overload.body
    # Another meter goes offline five minutes later: it waits for the digest window to pass.
    Event.create(
        kind="meter.offline",
        property=site.prop,
        meter=meters[2],
        created_at=now + 5 * H / 60,
        data='{"missed": 3}',
    )
    report = sms.dispatch_events(now + 5 * H / 60)
    assert (
        report.waiting == 1
        and SmsMessage.select().where(SmsMessage.kind == "staff.offline").count() == 2
    )
    sms.dispatch_events(now + 16 * H / 60)
    assert SmsMessage.select().where(SmsMessage.kind == "staff.offline").count() == 4


def test_staff_alerts_without_staff_numbers_are_only_listed(site, now, configure):
    configure()
    _, (meter,) = site.account()
    Event.create(kind="meter.offline", property=site.prop, meter=meter, created_at=now, data="{}")
    sms.dispatch_events(now)
    assert not SmsMessage.select().where(SmsMessage.audience == "staff").exists()


def test_events_older_than_a_day_are_marked_handled_without_a_message(site, now, configure):
    configure()
    acct, meter = funded_account(site, now)
    apply_reading(meter, read_at=now + H, total=8000, actor=SYSTEM, now=now + H)
    sms.dispatch_events(now + 30 * H)
    assert tenant_kinds(acct) == []
    assert not Event.select().where(Event.handled_at.is_null()).exists()


def test_a_second_tenant_with_two_accounts_gets_one_message_per_account(site, now, configure):
    configure()
    a1, m1 = funded_account(site, now)
    a2, m2 = funded_account(site, now)
    shared = create_tenant(site.prop, name="Shared", phones="13600000000", actor=SYSTEM, now=now)
    Account.update(tenant=shared).where(Account.id.in_([a1.id, a2.id])).execute()
    for m in (m1, m2):
        apply_reading(Meter.get_by_id(m.id), read_at=now + H, total=8000, actor=SYSTEM, now=now + H)
    sms.dispatch_events(now + H)
    rows = list(SmsMessage.select().where(SmsMessage.kind == "alarm1"))
    assert {r.account_id for r in rows} == {a1.id, a2.id} and {r.recipient for r in rows} == {
        "+8613600000000"
    }


def test_an_issued_monthly_bill_tells_the_tenant_once(site, now, configure):
    from app.models.operations import BillSnapshot

    configure()
    acct, _ = funded_account(site, now)
    BillSnapshot.create(
        account=acct,
        month=202610,
        digest="0" * 64,
        created_at=now,
        data=json.dumps({"month": 202610, "closing_fen": 12540}),
    )
    sms.dispatch_events(now)
    sms.dispatch_events(now)
    (msg,) = SmsMessage.select().where(SmsMessage.kind == "bill_ready")
    assert "2026-10月度账单已出，期末余额125.40元" in msg.body and msg.recipient == "+8613800000000"
