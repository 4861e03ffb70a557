"""The twilio SDK over HTTP against a local server shaped like Twilio's Messages API, the huey
task's retries, and the signed delivery-status webhook."""

from __future__ import annotations

import datetime as dt

import pytest
from twilio.request_validator import RequestValidator

from app.domain import sms
from app.domain.actors import SYSTEM
from app.domain.sales import sell
from app.domain.sms_senders import PermanentSendError, TransientSendError, TwilioSender
from app.models import utcnow
from app.models.sms import SmsMessage
from tests.sms.fakes import ACCOUNT_SID, AUTH_TOKEN, FROM
from workers import huey
from workers.tasks import sms as sms_tasks

PUBLIC = "https://box.example.com"
CALLBACK = PUBLIC + sms.WEBHOOK_PATH


@pytest.fixture
def twilio(configure, twilio_server):
    configure(twilio_api_base_url=twilio_server.url, public_base_url=PUBLIC)
    return twilio_server


@pytest.fixture
def receipt(site, now, twilio):
    """A sale's receipt in the outbox, not yet sent."""
    acct, _ = site.account()
    sell(acct, amount_fen=10309, method="cash", idempotency_key="r", actor=SYSTEM, now=now)
    sms.dispatch_events(now)
    return SmsMessage.get(SmsMessage.kind == "receipt")


@pytest.fixture
def clean_queue():
    huey.flush()
    yield huey
    huey.flush()


def test_the_sdk_posts_body_recipient_sender_and_callback(twilio):
    sid = TwilioSender(
        ACCOUNT_SID, AUTH_TOKEN, FROM, base_url=twilio.url, status_callback=CALLBACK
    ).send("+8613800000000", "余额不足")
    (req,) = twilio.requests
    assert req["path"] == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert req["auth_ok"] and req["user_agent"].startswith("twilio-python/")
    assert req["form"] == {
        "To": "+8613800000000",
        "From": FROM,
        "Body": "余额不足",
        "StatusCallback": CALLBACK,
    }
    assert sid.startswith("SM") and len(sid) == 34


def test_a_messaging_service_sid_is_sent_as_such(twilio):
    service = "MG" + "a" * 32
    TwilioSender(ACCOUNT_SID, AUTH_TOKEN, service, base_url=twilio.url).send("+8613800000000", "hi")
    assert twilio.requests[0]["form"]["MessagingServiceSid"] == service
    assert "From" not in twilio.requests[0]["form"]


@pytest.mark.parametrize(
    "code,error",
    [
        (503, TransientSendError),
        (500, TransientSendError),
        (429, TransientSendError),
        (400, PermanentSendError),
    ],
)
def test_server_errors_are_transient_and_refusals_permanent(twilio, code, error):
    twilio.script.append(code)
    with pytest.raises(error) as caught:
        TwilioSender(ACCOUNT_SID, AUTH_TOKEN, FROM, base_url=twilio.url).send("+8613800000000", "x")
    assert caught.value.code == str({503: 20503, 500: 20500, 429: 20429, 400: 21211}[code])
    assert f"HTTP {code}" in caught.value.message


def test_wrong_credentials_are_a_permanent_error(twilio):
    with pytest.raises(PermanentSendError) as caught:
        TwilioSender(ACCOUNT_SID, "wrong-token", FROM, base_url=twilio.url).send(
            "+8613800000000", "x"
        )
    assert caught.value.code == "20003"


def test_an_unreachable_api_is_a_transient_error():
    with pytest.raises(TransientSendError, match="unreachable"):
        TwilioSender(ACCOUNT_SID, AUTH_TOKEN, FROM, base_url="http://127.0.0.1:9").send(
            "+8613800000000", "x"
        )


def test_the_task_sends_the_receipt_through_the_sdk(receipt, twilio, clean_queue):
    assert sms_tasks.send_message_task(receipt.id).get() == "sent"
    (req,) = twilio.requests
    assert req["form"]["To"] == "+8613800000000" and req["form"]["Body"] == receipt.body
    assert "103.09" in req["form"]["Body"] and req["form"]["StatusCallback"] == CALLBACK
    row = SmsMessage.get_by_id(receipt.id)
    assert (row.status, row.sender, row.attempts) == ("sent", "twilio", 1)
    assert row.provider_id.startswith("SM")


def test_a_5xx_is_retried_by_huey_with_backoff_and_then_sent(
    receipt, twilio, clean_queue, monkeypatch
):
    assert sms_tasks.send_message_task.retries == sms.MAX_ATTEMPTS - 1
    twilio.script.append(503)
    sms_tasks.send_message_task(receipt.id)
    row = SmsMessage.get_by_id(receipt.id)
    assert (row.status, row.attempts, row.error_code) == ("queued", 1, "20503")
    assert "HTTP 503" in row.error
    (retry,) = huey.read_schedule(utcnow() + dt.timedelta(hours=1))  # huey's retry, 30 s on
    assert (
        retry.retries == sms.MAX_ATTEMPTS - 2 and retry.retry_delay == 60
    )  # backoff doubles the next wait
    assert abs((retry.eta - row.next_attempt_at).total_seconds()) <= 2  # outbox and queue agree
    later = row.next_attempt_at
    monkeypatch.setattr(sms_tasks, "utcnow", lambda: later)
    huey.execute(retry, timestamp=retry.eta)  # as the consumer does when the retry is due
    assert [r["form"]["Body"] for r in twilio.requests] == [receipt.body, receipt.body]
    assert [r["form"]["To"] for r in twilio.requests] == ["+8613800000000"] * 2
    row = SmsMessage.get_by_id(receipt.id)
    assert (row.status, row.attempts, row.error) == ("sent", 2, "")


def test_a_refusal_is_recorded_as_failed_and_not_retried(receipt, twilio, clean_queue):
    twilio.script.append(400)
    assert sms_tasks.send_message_task(receipt.id).get() == "failed"
    row = SmsMessage.get_by_id(receipt.id)
    assert (row.status, row.error_code) == ("failed", "21211")
    assert "not a valid phone number" in row.error
    assert huey.read_schedule(utcnow() + dt.timedelta(hours=1)) == []


def test_the_minute_run_dispatches_and_sends(site, twilio, clean_queue, monkeypatch):
    real_now = utcnow()
    acct, _ = site.account(at=real_now)
    sell(acct, amount_fen=5000, method="cash", idempotency_key="m", actor=SYSTEM, now=real_now)
    assert sms_tasks.dispatch_task.call_local()["sending"] == 1
    assert [r["form"]["Body"] for r in twilio.requests] == [
        SmsMessage.get(SmsMessage.kind == "receipt").body
    ]


def test_a_committed_sale_asks_for_a_dispatch_at_once(site, twilio, clean_queue, monkeypatch):
    monkeypatch.setattr(sms, "_trigger", sms_tasks.dispatch_soon_task)
    real_now = utcnow()
    acct, _ = site.account(at=real_now)
    sell(acct, amount_fen=5000, method="cash", idempotency_key="t", actor=SYSTEM, now=real_now)
    assert len(twilio.requests) == 1 and "50.00" in twilio.requests[0]["form"]["Body"]
    assert SmsMessage.get(SmsMessage.kind == "receipt").status == "sent"


# ---------------------------------------------------------------------------- the webhook


def signed_post(client, params, *, url=CALLBACK, token=AUTH_TOKEN, signature=None, base_url=PUBLIC):
    sig = RequestValidator(token).compute_signature(url, params) if signature is None else signature
    headers = {"X-Twilio-Signature": sig} if sig else {}
    return client.post(sms.WEBHOOK_PATH, data=params, headers=headers, base_url=base_url)


@pytest.fixture
def sent(receipt, twilio, clean_queue):
    sms_tasks.send_message_task(receipt.id)
    return SmsMessage.get_by_id(receipt.id)


def callback(sent, status="delivered", **extra):
    return {
        "MessageSid": sent.provider_id,
        "MessageStatus": status,
        "AccountSid": ACCOUNT_SID,
        "To": sent.recipient,
        "From": FROM,
        "ApiVersion": "2010-04-01",
        **extra,
    }


def test_a_correctly_signed_callback_is_accepted(client, sent):
    r = signed_post(client, callback(sent))
    assert r.status_code == 204
    assert SmsMessage.get_by_id(sent.id).status == "delivered"


def test_a_tampered_callback_is_rejected(client, sent):
    params = callback(sent)
    signature = RequestValidator(AUTH_TOKEN).compute_signature(CALLBACK, params)
    params["MessageStatus"] = "failed"
    r = signed_post(client, params, signature=signature)
    assert r.status_code == 403
    assert SmsMessage.get_by_id(sent.id).status == "sent"


@pytest.mark.parametrize("case", ["unsigned", "other token", "other account", "other url"])
def test_unsigned_or_forged_callbacks_are_rejected(client, sent, case):
    params = callback(sent, "undelivered", ErrorCode="30003")
    if case == "unsigned":
        r = signed_post(client, params, signature="")
    elif case == "other token":
        r = signed_post(client, params, token="0" * 32)
    elif case == "other account":
        params["AccountSid"] = "AC" + "9" * 32
        r = signed_post(client, params)
    else:
        r = signed_post(client, params, url="https://evil.example.com" + sms.WEBHOOK_PATH)
    assert r.status_code == 403
    assert SmsMessage.get_by_id(sent.id).status == "sent"


def test_a_callback_signed_for_the_public_address_passes_behind_a_proxy(client, sent):
    r = signed_post(
        client, callback(sent, "undelivered", ErrorCode="30003"), base_url="http://127.0.0.1:8000"
    )
    assert r.status_code == 204
    row = SmsMessage.get_by_id(sent.id)
    assert (row.status, row.error_code) == ("failed", "30003")


def test_the_webhook_needs_no_login_or_csrf_but_other_sms_posts_do(client, sent):
    assert signed_post(client, callback(sent)).status_code == 204
    assert client.post("/sms/settings", data={"sender": "none"}).status_code == 400  # no CSRF token
