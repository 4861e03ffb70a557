"""The outbox state machine: queued -> sending -> sent -> delivered | failed, retries with a
growing delay, one sender per message, staff resend, and recovery of an interrupted send."""

from __future__ import annotations

import datetime as dt

import pytest

from app.domain import sms
from app.domain.actors import SYSTEM, Actor
from app.domain.errors import PermissionDenied, ValidationError
from app.domain.sms_senders import PermanentSendError, TransientSendError
from app.models.sms import SmsMessage

S = dt.timedelta(seconds=1)


@pytest.fixture
def message(site, now, configure):
    configure()
    return sms.queue_test_message(site.prop, phone="13800000001", actor=SYSTEM, now=now)


def status(msg) -> str:
    return SmsMessage.get_by_id(msg.id).status


@pytest.mark.parametrize(
    "frm,to",
    [
        ("queued", "delivered"),
        ("queued", "sent"),
        ("sent", "queued"),
        ("delivered", "failed"),
        ("failed", "sent"),
        ("skipped", "queued"),
        ("delivered", "queued"),
    ],
)
def test_moves_the_machine_lacks_are_refused(frm, to):
    with pytest.raises(ValueError):
        sms.move(1, frm, to)


def test_a_message_goes_from_queued_through_sent_to_delivered(message, now, sender):
    assert status(message) == "queued"
    assert sms.deliver(message.id, now=now, sender=sender) == sms.DeliveryOutcome("sent")
    row = SmsMessage.get_by_id(message.id)
    assert (row.status, row.attempts, row.sent_at) == ("sent", 1, now)
    assert row.provider_id == "SM" + "0" * 31 + "1"
    assert sender.sent == [("+8613800000001", row.body)]
    sms.record_delivery_status(row.provider_id, "delivered", now=now + S)
    assert status(message) == "delivered"
    # Late or repeated reports change nothing.
    sms.record_delivery_status(row.provider_id, "sent", now=now + 2 * S)
    sms.record_delivery_status(row.provider_id, "failed", error_code="30003", now=now + 3 * S)
    row = SmsMessage.get_by_id(message.id)
    assert (row.status, row.delivered_at, row.error_code) == ("delivered", now + S, "")


def test_an_undelivered_report_fails_the_message_with_the_carriers_code(message, now, sender):
    sms.deliver(message.id, now=now, sender=sender)
    provider_id = SmsMessage.get_by_id(message.id).provider_id
    sms.record_delivery_status(provider_id, "undelivered", error_code="30003", now=now + S)
    row = SmsMessage.get_by_id(message.id)
    assert (row.status, row.error_code, row.failed_at) == ("failed", "30003", now + S)
    assert "undelivered" in row.error
    assert sms.record_delivery_status("SMnot-ours", "delivered", now=now) is None


def test_transient_errors_retry_with_growing_delays_then_fail(message, now, sender):
    t = now
    for attempt, delay in enumerate(sms.RETRY_DELAYS, 1):
        sender.errors.append(TransientSendError("HTTP 503: Service Unavailable", "20503"))
        outcome = sms.deliver(message.id, now=t, sender=sender)
        assert outcome.retry and outcome.status == "queued"
        row = SmsMessage.get_by_id(message.id)
        assert (row.status, row.attempts, row.error_code) == ("queued", attempt, "20503")
        assert row.next_attempt_at == t + delay * S
        assert (
            sms.deliver(message.id, now=t + (delay - 10) * S, sender=sender).status == "queued"
        )  # not yet
        t = row.next_attempt_at
    sender.errors.append(TransientSendError("HTTP 503: Service Unavailable", "20503"))
    outcome = sms.deliver(message.id, now=t, sender=sender)
    assert (outcome.status, outcome.retry) == ("failed", False)
    row = SmsMessage.get_by_id(message.id)
    assert (row.status, row.attempts, row.failed_at) == ("failed", sms.MAX_ATTEMPTS, t)
    assert sender.sent == []


def test_a_permanent_error_fails_at_once(message, now, sender):
    sender.errors.append(
        PermanentSendError("HTTP 400: The 'To' number is not a valid phone number.", "21211")
    )
    assert sms.deliver(message.id, now=now, sender=sender) == sms.DeliveryOutcome(
        "failed", error="HTTP 400: The 'To' number is not a valid phone number."
    )
    row = SmsMessage.get_by_id(message.id)
    assert (row.status, row.error_code, row.attempts) == ("failed", "21211", 1)


def test_an_unexpected_error_is_recorded_and_retried(message, now, sender):
    sender.errors.append(RuntimeError("library surprise"))
    outcome = sms.deliver(message.id, now=now, sender=sender)
    assert (
        outcome.retry and "RuntimeError: library surprise" in SmsMessage.get_by_id(message.id).error
    )


def test_only_the_worker_that_claims_a_message_sends_it(message, now, sender):
    inner: list[sms.DeliveryOutcome] = []

    class Racing:
        name = "twilio"

        def send(self, to, body):
            inner.append(
                sms.deliver(message.id, now=now, sender=sender)
            )  # a second worker, meanwhile
            return "SM1"

    assert sms.deliver(message.id, now=now, sender=Racing()).status == "sent"
    assert inner == [sms.DeliveryOutcome("sending")] and sender.sent == []
    assert sms.deliver(message.id, now=now, sender=sender).status == "sent" and sender.sent == []


def test_staff_resend_a_failed_message_and_only_a_failed_one(message, now, sender):
    with pytest.raises(ValidationError):
        sms.requeue_message(message, actor=SYSTEM, now=now)
    sender.errors.append(PermanentSendError("HTTP 400: bad number", "21211"))
    sms.deliver(message.id, now=now, sender=sender)
    with pytest.raises(PermissionDenied):
        sms.requeue_message(message, actor=Actor("c", "cashier"), now=now)
    row = sms.requeue_message(message, actor=Actor("m", "manager"), now=now + S)
    assert (row.status, row.attempts, row.error_code, row.next_attempt_at) == (
        "queued",
        0,
        "",
        now + S,
    )
    assert sms.deliver(message.id, now=now + S, sender=sender).status == "sent"


def test_a_message_left_sending_by_a_dead_worker_is_queued_again(message, now):
    SmsMessage.update(status="sending", attempts=1, updated_at=now).where(
        SmsMessage.id == message.id
    ).execute()
    assert message.id not in sms.due_messages(now + 5 * 60 * S)
    assert message.id in sms.due_messages(now + 11 * 60 * S)
    row = SmsMessage.get_by_id(message.id)
    assert (row.status, row.attempts) == ("queued", 1)


def test_switching_sms_off_fails_what_is_still_queued(message, now, configure, sender):
    configure(sender="none")
    assert sms.deliver(message.id, now=now, sender=sender).status == "failed"
    assert SmsMessage.get_by_id(message.id).error_code == "disabled"


def test_urgent_messages_are_due_first(site, now, configure):
    configure()
    first = sms.queue_test_message(site.prop, phone="13800000001", actor=SYSTEM, now=now)
    SmsMessage.update(urgent=False).where(SmsMessage.id == first.id).execute()
    second = sms.queue_test_message(site.prop, phone="13800000002", actor=SYSTEM, now=now)
    assert sms.due_messages(now) == [second.id, first.id]
