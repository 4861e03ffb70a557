"""SMS console pages and the Twilio delivery-status webhook (thin: parse, call the domain,
render)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from flask import Blueprint, abort, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from peewee import JOIN

from app.domain import sms
from app.domain.errors import DomainError
from app.domain.money import format_fen
from app.domain.sms_senders import is_gsm_text, sms_parts
from app.models import Account, Event, Meter, Property, Tenant, utcnow
from app.models.sms import SmsMessage, SmsTemplate
from app.web import current_actor, format_local, htmx_redirect, login_required, page_arg, render

bp = Blueprint("sms", __name__, url_prefix="/sms")
webhook = Blueprint("webhook", __name__)

PAGE = 50

LABELS: dict[str, Any] = {
    # outbox statuses
    "queued": _l("Queued"),
    "sending": _l("Sending"),
    "sent": _l("Sent"),
    "delivered": _l("Delivered"),
    "failed": _l("Failed"),
    "skipped": _l("Not sent"),
    # message kinds
    "alarm1": _l("Alarm 1"),
    "alarm2": _l("Alarm 2"),
    "arrears": _l("Arrears, supply cut"),
    "arrears_notice": _l("Arrears, cut at the end of the night window"),
    "arrears_grace": _l("Arrears, cut below the grace credit"),
    "restored": _l("Supply restored"),
    "receipt": _l("Sale receipt"),
    "fee_deducted": _l("Rent / fee deducted"),
    "bill_ready": _l("Monthly bill ready"),
    "days_left": _l("Phrase: days of credit left"),
    "days_left_under_one": _l("Phrase: less than a day left"),
    "staff.offline": _l("Staff: meters offline"),
    "staff.overload": _l("Staff: overload trip"),
    "staff.tamper": _l("Staff: register went backwards"),
    "staff.command_failed": _l("Staff: supply command not confirmed"),
    "staff.balance_mismatch": _l("Staff: meter balance differs from the ledger"),
    "staff.ledger_mismatch": _l("Staff: ledger check found differences"),
    "test": _l("Test message"),
    # staff alert events
    "meter.offline": _l("Meter offline"),
    "meter.overload": _l("Overload trip"),
    "reading.tamper": _l("Register went backwards"),
    "reading.held": _l("Reading held for review"),
    "reading.held_long": _l("Readings waiting for review too long"),
    "command.failed": _l("Supply command not confirmed"),
    "meter.balance_mismatch": _l("Meter balance differs from the ledger"),
    "ledger.mismatch": _l("Ledger check found differences"),
    "work.failed": _l("Background work stopped"),
    # why a message was not sent
    "no_phone": _l("the tenant has no phone number"),
    "bad_phone": _l("the tenant's phone number is not usable"),
    "disabled": _l("SMS sending is switched off"),
    # senders and languages
    "none": _l("Off"),
    "twilio": _l("Twilio (internet)"),
    "modem": _l("GSM modem (no internet)"),
    "zh_CN": _l("Chinese"),
    "en": _l("English"),
    "tenant": _l("Tenant"),
    "staff": _l("Staff"),
}


def sms_label(code: object) -> str:
    text = LABELS.get(str(code))
    return str(text) if text is not None else str(code or "")


@bp.app_template_filter("sms_label")
def _sms_label_filter(code: object) -> str:
    return sms_label(code)


@bp.record_once
def _connect_task_queue(_state: Any) -> None:
    """Load the SMS tasks in the web process: a committed sale then asks the queue for a
    dispatch at once (``app.domain.sms.request_dispatch``) instead of waiting a minute."""
    import workers.tasks.sms  # noqa: F401


def _property() -> Property:
    """The property the page is about: ?property=<id>, else the first one."""
    raw = request.values.get("property", "")
    prop = (
        Property.get_or_none(Property.id == int(raw))
        if raw.isdigit()
        else (Property.select().order_by(Property.id).first())
    )
    if prop is None:
        abort(404)
    return prop


def _properties() -> list[Property]:
    return list(Property.select().order_by(Property.id))


# ---------------------------------------------------------------------------- outbox


@bp.get("/")
@login_required("sms.view")
def index():
    return redirect(url_for("sms.outbox"))


@bp.get("/outbox")
@login_required("sms.view")
def outbox():
    q = request.args.get("q", "").strip()
    status = request.args.get("status", "")
    page = page_arg()
    query = (
        SmsMessage.select(SmsMessage, Account, Tenant)
        .join(Account, JOIN.LEFT_OUTER)
        .switch(SmsMessage)
        .join(Tenant, JOIN.LEFT_OUTER)
        .order_by(SmsMessage.id.desc())
    )
    if status in sms.STATUSES:
        query = query.where(SmsMessage.status == status)
    if q:
        query = query.where(
            SmsMessage.recipient.contains(q) | Account.number.contains(q) | Tenant.name.contains(q)
        )
    total = query.count()
    rows = list(query.paginate(page, PAGE))
    return render(
        "sms/outbox.html",
        "results",
        rows=rows,
        q=q,
        status=status,
        page=page,
        total=total,
        pages=max((total + PAGE - 1) // PAGE, 1),
        statuses=sms.STATUSES,
    )


@bp.post("/outbox/<int:message_id>/resend")
@login_required("sms.manage")
def resend(message_id: int):
    from workers.tasks.sms import send_message_task

    msg = SmsMessage.get_or_none(SmsMessage.id == message_id)
    if msg is None:
        abort(404)
    try:
        sms.requeue_message(msg, actor=current_actor(), now=utcnow())
    except DomainError as exc:
        abort(400, description=exc.message)
    send_message_task(msg.id)
    return htmx_redirect(url_for("sms.outbox", status=request.form.get("status", "")))


# ---------------------------------------------------------------------------- staff alerts


def alert_detail(event: Event) -> str:
    """What a staff alert is about, in the console's language."""
    data = json.loads(event.data or "{}")
    if event.kind == "meter.offline":
        return _("no answer to %(n)s polls", n=data.get("missed", "?"))
    if event.kind == "meter.overload":
        return _(
            "%(power)s W drawn, limit %(limit)s W",
            power=data.get("power_w", "?"),
            limit=data.get("limit_w", "?"),
        )
    if event.kind in ("reading.tamper", "reading.held"):
        return str(data.get("note", ""))
    if event.kind == "reading.held_long":
        return _(
            "%(n)s reading(s) waiting since %(since)s",
            n=data.get("waiting", "?"),
            since=format_local(dt.datetime.fromisoformat(data["since"]))
            if data.get("since")
            else "?",
        )
    if event.kind == "command.failed":
        return _("%(kind)s: %(result)s", kind=data.get("kind", ""), result=data.get("result", ""))
    if event.kind == "meter.balance_mismatch":
        return _(
            "meter ¥%(meter)s, ledger ¥%(ledger)s",
            meter=format_fen(int(data.get("meter_balance_fen", 0))),
            ledger=format_fen(int(data.get("ledger_balance_fen", 0))),
        )
    if event.kind == "ledger.mismatch":
        return "; ".join(str(p) for p in data.get("problems", [])[:3])
    if event.kind == "work.failed":
        what = (
            _("batch %(id)s", id=data.get("id", "?"))
            if data.get("work") == "batch"
            else str(data.get("key", ""))
        )
        error = str(data.get("error", "")).strip()
        return f"{what}: {error.splitlines()[-1] if error else ''}"  # a traceback's last line
    return ""


@bp.get("/alerts")
@login_required("alert.view")
def alerts():
    kind = request.args.get("kind", "")
    page = page_arg()
    kinds = list(sms.STAFF_ALERT_EVENTS)
    query = (
        Event.select(Event, Meter, Account)
        .join(Meter, JOIN.LEFT_OUTER)
        .switch(Event)
        .join(Account, JOIN.LEFT_OUTER)
        .where(Event.kind.in_([kind] if kind in kinds else kinds))
        .order_by(Event.id.desc())
    )
    total = query.count()
    rows = [(e, alert_detail(e)) for e in query.paginate(page, PAGE)]
    return render(
        "sms/alerts.html",
        "results",
        rows=rows,
        kind=kind,
        kinds=kinds,
        page=page,
        total=total,
        pages=max((total + PAGE - 1) // PAGE, 1),
    )


# ---------------------------------------------------------------------------- templates


@bp.get("/templates")
@login_required("sms.manage")
def templates():
    prop = _property()
    saved = {
        (t.kind, t.language): t for t in SmsTemplate.select().where(SmsTemplate.property == prop.id)
    }
    rows = [
        (
            kind,
            [
                (lang, sms.template_body(prop.id, kind, lang), (kind, lang) in saved)
                for lang in sms.LANGUAGES
            ],
        )
        for kind in sms.TEMPLATE_KINDS
    ]
    return render("sms/templates.html", property=prop, properties=_properties(), rows=rows)


def _kind_and_language(kind: str, language: str) -> None:
    if kind not in sms.PLACEHOLDERS or language not in sms.LANGUAGES:
        abort(404)


def _preview_context(prop: Property, kind: str, language: str, body: str) -> dict[str, Any]:
    try:
        text = sms.preview_template(prop, kind=kind, language=language, body=body)
    except DomainError as exc:
        return {"preview": None, "preview_error": exc.message}
    return {
        "preview": text,
        "preview_error": None,
        "chars": len(text),
        "parts": sms_parts(text),
        "gsm": is_gsm_text(text),
    }


def _edit_page(
    prop: Property,
    kind: str,
    language: str,
    body: str,
    error: str | None = None,
    saved: bool = False,
):
    return render(
        "sms/template_edit.html",
        "editor",
        property=prop,
        kind=kind,
        language=language,
        body=body,
        placeholders=sms.PLACEHOLDERS[kind],
        error=error,
        saved=saved,
        default=sms.DEFAULT_TEMPLATES[language][kind],
        **_preview_context(prop, kind, language, body),
    )


@bp.get("/templates/<kind>/<language>")
@login_required("sms.manage")
def template_edit(kind: str, language: str):
    _kind_and_language(kind, language)
    prop = _property()
    return _edit_page(prop, kind, language, sms.template_body(prop.id, kind, language))


@bp.post("/templates/<kind>/<language>/preview")
@login_required("sms.manage")
def template_preview(kind: str, language: str):
    _kind_and_language(kind, language)
    prop = _property()
    return render(
        "sms/template_edit.html",
        "preview",
        kind=kind,
        **_preview_context(prop, kind, language, request.form.get("body", "")),
    )


@bp.post("/templates/<kind>/<language>")
@login_required("sms.manage")
def template_save(kind: str, language: str):
    _kind_and_language(kind, language)
    prop = _property()
    body = request.form.get("body", "")
    try:
        sms.save_template(
            prop, kind=kind, language=language, body=body, actor=current_actor(), now=utcnow()
        )
    except DomainError as exc:
        return _edit_page(prop, kind, language, body, error=exc.message), 422
    return _edit_page(prop, kind, language, sms.template_body(prop.id, kind, language), saved=True)


@bp.post("/templates/<kind>/<language>/reset")
@login_required("sms.manage")
def template_reset(kind: str, language: str):
    _kind_and_language(kind, language)
    prop = _property()
    sms.reset_template(prop, kind=kind, language=language, actor=current_actor(), now=utcnow())
    return htmx_redirect(
        url_for("sms.template_edit", kind=kind, language=language, property=prop.id)
    )


# ---------------------------------------------------------------------------- settings


def _settings_form(
    prop: Property,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    notice: str | None = None,
):
    current = sms.settings_for(prop.id)
    if form is None:
        form = {
            "sender": current.sender,
            "language": current.language,
            "country_code": current.country_code,
            "twilio_account_sid": current.twilio_account_sid,
            "twilio_from": current.twilio_from,
            "twilio_api_base_url": current.twilio_api_base_url,
            "public_base_url": current.public_base_url,
            "modem_port": current.modem_port,
            "modem_baud": str(current.modem_baud),
            "quiet_start": ""
            if current.quiet_start_min == current.quiet_end_min
            else sms.format_minute(current.quiet_start_min),
            "quiet_end": ""
            if current.quiet_start_min == current.quiet_end_min
            else sms.format_minute(current.quiet_end_min),
            "staff_phones": current.staff_phones.replace(",", ", "),
        }
    form = {k: v for k, v in form.items() if k != "twilio_auth_token"}  # never echo a secret
    return render(
        "sms/settings.html",
        "settings_form",
        property=prop,
        properties=_properties(),
        form=form,
        errors=errors or {},
        notice=notice,
        token_hint=sms.mask_secret(current.twilio_auth_token),
        senders=sms.SENDERS,
        languages=sms.LANGUAGES,
        bauds=sms.MODEM_BAUDS,
        webhook_url=(current.public_base_url + sms.WEBHOOK_PATH) if current.public_base_url else "",
    )


@bp.get("/settings")
@login_required("sms.manage")
def settings():
    return _settings_form(_property())


@bp.post("/settings")
@login_required("sms.manage")
def settings_save():
    prop = _property()
    form = request.form.to_dict()
    try:
        sms.save_settings(prop, values=form, actor=current_actor(), now=utcnow())
    except DomainError as exc:
        return _settings_form(prop, form, {exc.field or "sender": exc.message}), 422
    return _settings_form(prop, notice=_("Saved."))


@bp.post("/settings/test")
@login_required("sms.manage")
def settings_test():
    from workers.tasks.sms import send_message_task

    prop = _property()
    try:
        msg = sms.queue_test_message(
            prop, phone=request.form.get("phone", ""), actor=current_actor(), now=utcnow()
        )
    except DomainError as exc:
        return _settings_form(prop, errors={"phone": exc.message}), 422
    send_message_task(msg.id)
    return htmx_redirect(url_for("sms.outbox"))


# ---------------------------------------------------------------------------- a tenant's SMS


@bp.get("/tenants/<int:tenant_id>")
@login_required("sms.view")
def tenant(tenant_id: int):
    found = Tenant.get_or_none(Tenant.id == tenant_id)
    if found is None:
        abort(404)
    settings = sms.settings_for(found.property_id)
    phones, bad = sms.tenant_phones(found, settings.country_code)
    pref = found.sms_preference.first()
    messages = list(
        SmsMessage.select()
        .where(SmsMessage.tenant == found.id)
        .order_by(SmsMessage.id.desc())
        .limit(50)
    )
    return render(
        "sms/tenant.html",
        tenant=found,
        phones=phones,
        bad=bad,
        messages=messages,
        language=pref.language if pref is not None else "",
        default_language=settings.language,
        languages=sms.LANGUAGES,
    )


@bp.post("/tenants/<int:tenant_id>/language")
@login_required("sms.manage")
def tenant_language(tenant_id: int):
    found = Tenant.get_or_none(Tenant.id == tenant_id)
    if found is None:
        abort(404)
    try:
        sms.set_tenant_language(
            found, language=request.form.get("language", ""), actor=current_actor(), now=utcnow()
        )
    except DomainError as exc:
        abort(400, description=exc.message)
    return htmx_redirect(url_for("sms.tenant", tenant_id=found.id))


# ---------------------------------------------------------------------------- Twilio's webhook


@webhook.post("/twilio/status")
def twilio_status():
    """Twilio's delivery-status callback.  No staff login and no CSRF token: it is accepted
    only with a valid ``X-Twilio-Signature`` made with the auth token of the account it names."""
    form = request.form
    signer = sms.twilio_signer(
        form.get("AccountSid", ""),
        [request.url],
        form,
        request.headers.get("X-Twilio-Signature", ""),
    )
    if signer is None:
        abort(403)
    sms.record_delivery_status(
        form.get("MessageSid", ""),
        form.get("MessageStatus", ""),
        error_code=form.get("ErrorCode", ""),
        now=utcnow(),
    )
    return "", 204


# Declared on purpose: no staff permission applies, the signature is the authentication.
twilio_status.permission = None  # type: ignore[attr-defined]

bp.register_blueprint(webhook)
