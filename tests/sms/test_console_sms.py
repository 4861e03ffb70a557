"""SMS pages in the console: who sees what, template editing with a live preview, settings that
never show the auth token, resend, the staff alerts list and a tenant's language."""

from __future__ import annotations

import re

import pytest

from app.domain import sms
from app.domain.actors import SYSTEM
from app.domain.sms_senders import PermanentSendError
from app.domain.users import create_user
from app.models import Event, Tenant, User
from app.models.sms import SmsMessage, SmsTemplate, TenantSmsPreference
from tests.sms.fakes import AUTH_TOKEN
from tests.test_console import csrf, login


@pytest.fixture
def sign_in(client, app, now):
    """Sign in as a user of ``role`` (created on first use: password hashing is slow)."""

    def as_role(role: str):
        if not User.select().where(User.username == role).exists():
            create_user(role, "password123", role, actor=SYSTEM, now=now)
        return login(client, role)

    return as_role


@pytest.mark.parametrize(
    "role,outbox,alerts,templates",
    [
        ("manager", 200, 200, 200),
        ("admin", 200, 200, 200),
        ("cashier", 403, 403, 403),
        ("electrician", 403, 200, 403),
        ("viewer", 403, 200, 403),
    ],
)
def test_who_may_see_the_sms_pages(client, sign_in, site, role, outbox, alerts, templates):
    sign_in(role)
    assert client.get("/sms/outbox").status_code == outbox
    assert client.get("/sms/alerts").status_code == alerts
    assert client.get("/sms/templates").status_code == templates
    assert client.get("/sms/settings").status_code == templates


def test_the_outbox_lists_messages_and_filters_by_status_for_htmx(
    client, sign_in, site, now, configure, sender
):
    configure()
    sent = sms.queue_test_message(site.prop, phone="13800000001", actor=SYSTEM, now=now)
    failed = sms.queue_test_message(site.prop, phone="13800000002", actor=SYSTEM, now=now)
    sms.deliver(sent.id, now=now, sender=sender)
    sender.errors.append(PermanentSendError("HTTP 400: The 'To' number is not valid", "21211"))
    sms.deliver(failed.id, now=now, sender=sender)
    sign_in("manager")
    page = client.get("/sms/outbox")
    assert (
        page.status_code == 200 and "+8613800000001" in page.text and "+8613800000002" in page.text
    )
    assert "21211" in page.text and "<html" in page.text
    partial = client.get("/sms/outbox?status=failed", headers={"HX-Request": "true"})
    assert (
        "<html" not in partial.text
        and "+8613800000002" in partial.text
        and "+8613800000001" not in partial.text
    )


def test_a_manager_sends_a_failed_message_again(
    client, sign_in, site, now, configure, twilio_server
):
    configure(twilio_api_base_url=twilio_server.url)
    msg = sms.queue_test_message(site.prop, phone="13800000002", actor=SYSTEM, now=now)
    SmsMessage.update(status="failed", error_code="21211").where(SmsMessage.id == msg.id).execute()
    sign_in("manager")
    r = client.post(f"/sms/outbox/{msg.id}/resend", data={"csrf_token": csrf(client)})
    assert r.status_code == 303
    assert SmsMessage.get_by_id(msg.id).status == "sent"
    assert twilio_server.requests[0]["form"]["To"] == "+8613800000002"


def test_template_preview_fills_sample_values_and_counts_parts(client, sign_in, site):
    sign_in("manager")
    with client.session_transaction() as session:
        session["lang"] = "en"
    page = client.get("/sms/templates/alarm1/zh_CN")
    assert page.status_code == 200 and "{threshold}" in page.text and "{days_left}" in page.text
    r = client.post(
        "/sms/templates/alarm1/en/preview",
        headers={"HX-Request": "true"},
        data={"body": "{tenant}: {balance} left{days_left}", "csrf_token": csrf(client)},
    )
    assert "Blue Cafe: 38.50 left, about 4 day(s) left" in r.text
    assert "74 characters, 1 SMS part(s)" in r.text and "Unicode" not in r.text
    long = client.post(
        "/sms/templates/alarm1/zh_CN/preview",
        headers={"HX-Request": "true"},
        data={"body": "余额{balance}元" + "请充值" * 30, "csrf_token": csrf(client)},
    )
    assert "98 characters, 2 SMS part(s)" in long.text and "Unicode" in long.text
    bad = client.post(
        "/sms/templates/alarm1/en/preview",
        headers={"HX-Request": "true"},
        data={"body": "{amount} left", "csrf_token": csrf(client)},
    )
    assert "{amount}" in bad.text and "{balance}" in bad.text  # names what may be used instead


def test_a_manager_edits_a_template_and_can_go_back_to_the_built_in_text(
    client, sign_in, site, now
):
    sign_in("manager")
    bad = client.post(
        "/sms/templates/receipt/zh_CN", data={"body": "收到 {amount元", "csrf_token": csrf(client)}
    )
    assert bad.status_code == 422 and not SmsTemplate.select().exists()
    ok = client.post(
        "/sms/templates/receipt/zh_CN",
        headers={"HX-Request": "true"},
        data={"body": "收到{amount}元，余额{balance}元", "csrf_token": csrf(client)},
    )
    assert ok.status_code == 200 and "<html" not in ok.text
    assert sms.template_body(site.prop.id, "receipt", "zh_CN") == "收到{amount}元，余额{balance}元"
    listing = client.get("/sms/templates")
    assert "收到{amount}元，余额{balance}元" in listing.text
    r = client.post("/sms/templates/receipt/zh_CN/reset", data={"csrf_token": csrf(client)})
    assert r.status_code == 303
    assert (
        sms.template_body(site.prop.id, "receipt", "zh_CN")
        == sms.DEFAULT_TEMPLATES["zh_CN"]["receipt"]
    )
    assert client.get("/sms/templates/nope/zh_CN").status_code == 404


def test_settings_are_saved_and_the_auth_token_is_never_shown_back(client, sign_in, site):
    sign_in("manager")
    form = {
        "sender": "twilio",
        "language": "zh_CN",
        "country_code": "86",
        "twilio_account_sid": "AC" + "1" * 32,
        "twilio_auth_token": AUTH_TOKEN,
        "twilio_from": "+14155550100",
        "twilio_api_base_url": "",
        "public_base_url": "https://box.example.com/",
        "modem_port": "",
        "modem_baud": "115200",
        "quiet_start": "22:00",
        "quiet_end": "07:30",
        "staff_phones": "13700000001，13700000002",
        "csrf_token": csrf(client),
    }
    r = client.post("/sms/settings", data=form)
    assert r.status_code == 200 and AUTH_TOKEN not in r.text and "••••1234" in r.text
    saved = sms.settings_for(site.prop.id)
    assert (saved.quiet_start_min, saved.quiet_end_min) == (22 * 60, 7 * 60 + 30)
    assert saved.staff_phones == "+8613700000001,+8613700000002"
    assert saved.public_base_url == "https://box.example.com"
    assert "https://box.example.com/sms/twilio/status" in r.text
    # An empty token field keeps the stored token.
    r = client.post(
        "/sms/settings", data={**form, "twilio_auth_token": "", "quiet_start": "", "quiet_end": ""}
    )
    assert r.status_code == 200 and sms.settings_for(site.prop.id).twilio_auth_token == AUTH_TOKEN
    assert AUTH_TOKEN not in client.get("/sms/settings").text


@pytest.mark.parametrize(
    "field,value",
    [
        ("twilio_account_sid", "XX123"),
        ("twilio_from", "office"),
        ("quiet_start", "25:00"),
        ("staff_phones", "13700000001, call me"),
        ("sender", "pigeon"),
        ("public_base_url", "ftp://x"),
    ],
)
def test_bad_settings_are_refused_with_a_message_and_change_nothing(
    client, sign_in, site, field, value
):
    sign_in("manager")
    form = {
        "sender": "twilio",
        "twilio_account_sid": "AC" + "1" * 32,
        "twilio_auth_token": "t" * 32,
        "twilio_from": "+14155550100",
        "quiet_start": "22:00",
        "quiet_end": "08:00",
        "csrf_token": csrf(client),
    }
    r = client.post("/sms/settings", data={**form, field: value})
    assert r.status_code == 422 and 'class="error"' in r.text
    assert sms.settings_for(site.prop.id).id is None


def test_modem_needs_a_port(client, sign_in, site):
    sign_in("manager")
    r = client.post(
        "/sms/settings", data={"sender": "modem", "modem_port": "", "csrf_token": csrf(client)}
    )
    assert r.status_code == 422 and "/dev/ttyUSB0" in r.text


def test_a_test_message_goes_to_the_outbox(client, sign_in, site, configure, twilio_server):
    configure(twilio_api_base_url=twilio_server.url)
    sign_in("manager")
    r = client.post("/sms/settings/test", data={"phone": "13800000009", "csrf_token": csrf(client)})
    assert r.status_code == 303
    msg = SmsMessage.get(SmsMessage.kind == "test")
    assert (msg.recipient, msg.status) == ("+8613800000009", "sent")


def test_staff_alerts_are_listed_for_electricians(client, sign_in, site, now):
    _, (meter,) = site.account()
    Event.create(
        kind="meter.overload",
        property=site.prop,
        meter=meter,
        created_at=now,
        data='{"power_w": 8200, "limit_w": 5000}',
    )
    Event.create(
        kind="meter.offline", property=site.prop, meter=meter, created_at=now, data='{"missed": 3}'
    )
    sign_in("electrician")
    page = client.get("/sms/alerts")
    assert meter.serial in page.text and "8200" in page.text
    partial = client.get("/sms/alerts?kind=meter.offline", headers={"HX-Request": "true"})
    assert (
        "<html" not in partial.text and "8200" not in partial.text and meter.serial in partial.text
    )


def test_a_tenants_sms_language_is_set_from_their_page(client, sign_in, site):
    acct, _ = site.account()
    sign_in("manager")
    page = client.get(f"/sms/tenants/{acct.tenant_id}")
    assert page.status_code == 200 and "+8613800000000" in page.text
    r = client.post(
        f"/sms/tenants/{acct.tenant_id}/language",
        data={"language": "en", "csrf_token": csrf(client)},
    )
    assert r.status_code == 303
    assert TenantSmsPreference.get(TenantSmsPreference.tenant == acct.tenant_id).language == "en"
    assert sms.tenant_language(acct.tenant_id, sms.settings_for(site.prop.id)) == "en"
    assert Tenant.get_by_id(acct.tenant_id).phones == "13800000000"


def test_the_nav_links_to_sms_for_those_who_may_see_it(client, sign_in, site):
    sign_in("manager")
    assert re.search(r'href="/sms/outbox"', client.get("/accounts").text)
    client.post("/logout", data={"csrf_token": csrf(client)})
    sign_in("cashier")
    assert "/sms/outbox" not in client.get("/accounts").text


def test_the_webhook_route_declares_it_needs_no_staff_permission(app):
    view = app.view_functions["sms.webhook.twilio_status"]
    assert view.permission is None


def test_a_batch_that_stopped_for_good_is_listed_among_the_alerts_with_its_reason(
    client, sign_in, site, now
):
    from app.domain.actors import Actor
    from app.domain.batch import fail_batch, start_batch

    _, (meter,) = site.account()
    run = start_batch(
        "trip", [meter.id], actor=Actor("e", "electrician"), now=now, params={"reason": "x"}
    )
    fail_batch(run.id, "Traceback ...\nOperationalError: disk I/O error", now=now)
    sign_in("electrician")
    page = client.get("/sms/alerts?kind=work.failed").text
    assert (
        "后台任务已停止" in page and f"批量任务 {run.id}: OperationalError: disk I/O error" in page
    )
