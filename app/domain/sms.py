"""Tenant and staff SMS: from events to an outbox, and from the outbox to a phone.

**Dispatch** (``dispatch_events``) consumes events nobody has handled yet (``Event.handled_at``
is this module's) and new sales, and writes outbox rows, one per message and phone number,
each with a dedupe key (cause + phone) so that running it twice adds nothing:

- ``balance.alarm1`` / ``balance.alarm2`` / ``balance.arrears``: the tier message, when the
  tier was reached by falling (a partial top-up from alarm 2 to alarm 1 says nothing) and the
  account is still in that tier.  Of several balance events of one account waiting together
  only the newest counts, so a burst of readings sends at most one message per account.
  The status rules write one event per change of tier, so a tier is announced once per
  crossing, and again after a top-up and a second fall.
- ``relay.on`` with reason ``paid``: supply restored (one message per account and run), when
  the tenant's last supply message was the cut.
- ``rent.charged`` (rent or property fee deducted, ``app.domain.rent``): what, for which
  period, how much, and the balance after it.
- new sales (not reversed, within a day): the receipt with amount, fee and new balance; new
  monthly bills (``BillSnapshot`` rows of ``app.domain.bills.issue_bills``): bill ready.
- staff alerts (``STAFF_EVENTS``): one message per kind to each staff number, listing the
  meters; further alerts of a kind within ``STAFF_DIGEST_WINDOW`` wait and go as one digest.

Alarm, receipt and fee messages can carry an estimate of the days of credit left from the
last 7 days' average use at today's price (``estimate_days_left``).

Messages are written from templates per language (zh_CN default, en) that a manager can edit;
a tenant's language is their own preference, else the property's.  Quiet hours (property local
time) hold non-urgent messages until they end; the arrears / supply-cut message and urgent
staff alerts always go at once.

**Delivery** (``deliver``) claims one due message (queued -> sending), hands it to the
property's sender (Twilio or a GSM modem, ``app.domain.sms_senders``) with no transaction open,
and records the outcome: sent with the provider's id; back to queued with a growing delay after
a transient error; failed after a permanent error or ``MAX_ATTEMPTS``.  Twilio's delivery-status
callbacks move sent messages on to delivered or failed (``record_delivery_status``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from peewee import fn

from app.clock import local_naive, to_utc
from app.clock import zone as clock_zone
from app.db import after_commit, write_tx
from app.domain.actors import Actor
from app.domain.audit import audit
from app.domain.errors import NotFound, ValidationError
from app.domain.money import format_fen
from app.domain.sms_senders import (
    ModemSender,
    PermanentSendError,
    Sender,
    TransientSendError,
    TwilioSender,
)
from app.domain.tariffs import RATES, TariffBook, denominator, rate_interval
from app.i18n import tr
from app.models import Account, Event, LedgerAccount, Meter, Property, Reading, Room, Sale, Tenant
from app.models.sms import SmsMessage, SmsSettings, SmsTemplate, TenantSmsPreference

log = logging.getLogger(__name__)

LANGUAGES = ("zh_CN", "en")
SENDERS = ("none", "twilio", "modem")
MODEM_BAUDS = (9600, 19200, 38400, 57600, 115200)
WEBHOOK_PATH = "/sms/twilio/status"

TIER_RANK = {"opened": 0, "alarm1": 1, "alarm2": 2, "arrears": 3}
ALERT_TIERS = ("alarm1", "alarm2", "arrears")

# Event kind -> staff message kind.  reading.held is listed in the console only: a real surge
# keeps being held at every reading until someone releases it.
STAFF_EVENTS = {
    "meter.offline": "staff.offline",
    "meter.overload": "staff.overload",
    "reading.tamper": "staff.tamper",
    "command.failed": "staff.command_failed",
    "meter.balance_mismatch": "staff.balance_mismatch",
    "ledger.mismatch": "staff.ledger_mismatch",
}
# Shown on the alerts page only: a reading held for review (or waiting too long), work (a
# batch, a scheduled job) that stopped for good.
STAFF_ALERT_EVENTS = (*STAFF_EVENTS, "reading.held", "reading.held_long", "work.failed")
# Sent at once even in quiet hours: the tenant's supply is cut; a meter tripped or did not obey.
# The notice of a cut deferred to the morning goes at once too: it must arrive before the cut.
URGENT_KINDS = frozenset(
    {"arrears", "arrears_notice", "staff.overload", "staff.command_failed", "test"}
)

EVENT_MAX_AGE = dt.timedelta(hours=24)  # older events are marked handled, not announced
RECEIPT_MAX_AGE = dt.timedelta(hours=24)
STAFF_DIGEST_WINDOW = dt.timedelta(minutes=15)
ESTIMATE_WINDOW = dt.timedelta(days=7)
RETRY_DELAYS = (30, 60, 120, 240)  # seconds after failed attempts 1..4 (= the huey task's backoff)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
DUE_SLACK = dt.timedelta(seconds=5)
STUCK_AFTER = dt.timedelta(minutes=10)
MAX_BODY = 500
BATCH = 500

# The outbox state machine.  "sending" is held while the provider is being asked; "failed"
# goes back to "queued" only when staff resend it.
TRANSITIONS: dict[str, frozenset[str]] = {
    "queued": frozenset({"sending", "failed"}),
    "sending": frozenset({"sent", "queued", "failed"}),
    "sent": frozenset({"delivered", "failed"}),
    "failed": frozenset({"queued"}),
    "delivered": frozenset(),
    "skipped": frozenset(),
}
STATUSES = tuple(TRANSITIONS)

_TENANT = ("property", "tenant", "account", "room", "balance")
_STAFF = ("property", "count", "meters", "time")
PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    "alarm1": (*_TENANT, "threshold", "days_left"),
    "alarm2": (*_TENANT, "threshold", "days_left"),
    "arrears": _TENANT,
    "arrears_notice": (*_TENANT, "cut_at"),
    "arrears_grace": (*_TENANT, "limit"),
    "restored": _TENANT,
    "receipt": (*_TENANT, "amount", "fee", "credited", "receipt", "days_left"),
    "fee_deducted": (*_TENANT, "item", "period", "amount", "days_left"),
    "bill_ready": (*_TENANT, "month", "closing"),
    "days_left": ("days",),
    "days_left_under_one": (),
    "staff.offline": _STAFF,
    "staff.overload": _STAFF,
    "staff.tamper": _STAFF,
    "staff.command_failed": _STAFF,
    "staff.balance_mismatch": _STAFF,
    "staff.ledger_mismatch": ("property", "time"),
    "test": ("property",),
}
TEMPLATE_KINDS = tuple(PLACEHOLDERS)
# Phrases are pieces of other messages ({days_left}) and may be left empty.
PHRASE_KINDS = frozenset({"days_left", "days_left_under_one"})

DEFAULT_TEMPLATES: dict[str, dict[str, str]] = {
    "zh_CN": {
        "alarm1": "【{property}】{tenant}您好：您的账户{account}余额{balance}元，已低于一级报警金额{threshold}元"
        "{days_left}。请及时充值。",
        "alarm2": "【{property}】{tenant}您好：您的账户{account}余额仅{balance}元，已低于二级报警金额{threshold}元"
        "{days_left}。余额用完将自动断电，请尽快充值。",
        "arrears": "【{property}】{tenant}您好：您的账户{account}已欠费（余额{balance}元），已停止供电/供水。"
        "充值后自动恢复。",
        "arrears_notice": "【{property}】{tenant}您好：您的账户{account}已欠费（余额{balance}元），"
        "如未充值，将于{cut_at}停止供电/供水。",
        "arrears_grace": "【{property}】{tenant}您好：您的账户{account}已欠费（余额{balance}元），"
        "余额低于-{limit}元时将停止供电/供水，请尽快充值。",
        "restored": "【{property}】{tenant}您好：您的账户{account}已缴费，余额{balance}元，供电/供水已恢复。",
        "receipt": "【{property}】{tenant}您好：账户{account}充值{amount}元，服务费{fee}元，实际入账{credited}元，"
        "当前余额{balance}元{days_left}。收据号{receipt}。",
        "fee_deducted": "【{property}】{tenant}您好：账户{account}已扣除{item}（{period}）{amount}元，"
        "当前余额{balance}元{days_left}。",
        "bill_ready": "【{property}】{tenant}您好：账户{account}的{month}月度账单已出，期末余额{closing}元。"
        "详情请咨询物业。",
        "days_left": "，按近7天平均用量约可用{days}天",
        "days_left_under_one": "，按近7天平均用量已不足1天",
        "staff.offline": "【{property}】{count}块表计离线：{meters}（{time}）",
        "staff.overload": "【{property}】{count}块表计过载跳闸：{meters}（{time}）",
        "staff.tamper": "【{property}】{count}块表计读数倒退（疑似篡改或换表）：{meters}（{time}）",
        "staff.command_failed": "【{property}】{count}块表计通断命令未确认：{meters}（{time}）",
        "staff.balance_mismatch": "【{property}】{count}块内控表余额与平台账不符：{meters}（{time}）",
        "staff.ledger_mismatch": "【{property}】账本核对发现差异，请在控制台查看（{time}）",
        "test": "【{property}】这是一条测试短信，收到即说明短信发送正常。",
    },
    "en": {
        "alarm1": "[{property}] {tenant}: the balance of account {account} is {balance} yuan, below alarm 1 "
        "({threshold} yuan){days_left}. Please top up.",
        "alarm2": "[{property}] {tenant}: the balance of account {account} is only {balance} yuan, below alarm 2 "
        "({threshold} yuan){days_left}. Supply is cut when it runs out; please top up soon.",
        "arrears": "[{property}] {tenant}: account {account} is in arrears (balance {balance} yuan) and supply "
        "has been cut. It comes back automatically after payment.",
        "arrears_notice": "[{property}] {tenant}: account {account} is in arrears (balance {balance} yuan). "
        "Unless topped up, supply will be cut at {cut_at}.",
        "arrears_grace": "[{property}] {tenant}: account {account} is in arrears (balance {balance} yuan). "
        "Supply will be cut when the balance falls below -{limit} yuan; please top up soon.",
        "restored": "[{property}] {tenant}: payment received for account {account}, balance {balance} yuan. "
        "Supply is restored.",
        "receipt": "[{property}] {tenant}: account {account} topped up {amount} yuan, service fee {fee}, "
        "credited {credited}; balance {balance} yuan{days_left}. Receipt {receipt}.",
        "fee_deducted": "[{property}] {tenant}: {item} for {period}, {amount} yuan, deducted from account "
        "{account}; balance {balance} yuan{days_left}.",
        "bill_ready": "[{property}] {tenant}: the {month} bill of account {account} is ready; closing balance "
        "{closing} yuan. Ask the property office for details.",
        "days_left": ", about {days} day(s) left at the last 7 days' average use",
        "days_left_under_one": ", less than a day left at the last 7 days' average use",
        "staff.offline": "[{property}] {count} meter(s) offline: {meters} ({time})",
        "staff.overload": "[{property}] {count} meter(s) tripped on overload: {meters} ({time})",
        "staff.tamper": "[{property}] {count} meter(s) read lower than before (tamper or replaced?): "
        "{meters} ({time})",
        "staff.command_failed": "[{property}] {count} meter(s) did not confirm a supply command: {meters} ({time})",
        "staff.balance_mismatch": "[{property}] {count} meter-held balance(s) differ from the ledger: "
        "{meters} ({time})",
        "staff.ledger_mismatch": "[{property}] the ledger check found differences; see the console ({time})",
        "test": "[{property}] This is a test message: SMS sending works.",
    },
}

# What a recurring charge is called in a message when it has no name of its own.
ITEM_NAMES: dict[str, dict[str, str]] = {
    "zh_CN": {"rent": "房租", "property_fee": "物业费"},
    "en": {"rent": "rent", "property_fee": "property fee"},
}

# Example values for the template preview.
SAMPLE_VALUES: dict[str, dict[str, str]] = {
    "zh_CN": {
        "tenant": "张记餐饮",
        "item": "房租",
        "meters": "E00012, E00013",
        "month": "2026-10",
        "period": "2026-11-01~2026-11-30",
    },
    "en": {
        "tenant": "Blue Cafe",
        "item": "rent",
        "meters": "E00012, E00013",
        "month": "2026-10",
        "period": "2026-11-01~2026-11-30",
    },
}

_TOKEN = re.compile(r"\{([a-z_]+)\}")


# ---------------------------------------------------------------------------- settings


def settings_for(prop_id: int) -> SmsSettings:
    """The property's SMS settings, or the defaults (sending switched off) when none are saved."""
    found = SmsSettings.get_or_none(SmsSettings.property == prop_id)
    return found if found is not None else SmsSettings(property=prop_id)


def mask_secret(secret: str) -> str:
    """What the console may show of a secret: its last four characters."""
    if not secret:
        return ""
    return "••••" + secret[-4:] if len(secret) > 8 else "••••"


def _hhmm(text: str, field_name: str) -> int:
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", text.strip())
    if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise ValidationError(tr("'%(text)s' is not a time of day HH:MM", text=text), field_name)
    return int(match.group(1)) * 60 + int(match.group(2))


def format_minute(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _url(text: str, field_name: str) -> str:
    text = text.strip().rstrip("/")
    if text and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", text):
        raise ValidationError(tr("'%(text)s' is not an http(s) address", text=text), field_name)
    return text


def parse_phone_list(text: str, country_code: str, field_name: str) -> list[str]:
    """Numbers separated by commas, semicolons or new lines, each as E.164; refuses a bad one."""
    out: list[str] = []
    for raw in re.split(r"[,;，；\s]+", text or ""):
        if not raw:
            continue
        phone = normalise_phone(raw, country_code)
        if phone is None:
            raise ValidationError(tr("'%(phone)s' is not a phone number", phone=raw), field_name)
        if phone not in out:
            out.append(phone)
    return out


def save_settings(
    prop: Property, *, values: Mapping[str, str], actor: Actor, now: dt.datetime
) -> SmsSettings:
    """Store the property's SMS settings from form values (all text).

    Keys: sender, language, country_code, twilio_account_sid, twilio_auth_token (empty keeps
    the stored token), twilio_from, twilio_api_base_url, public_base_url, modem_port,
    modem_baud, quiet_start and quiet_end ("HH:MM"; both empty: no quiet hours), staff_phones.
    """
    actor.require("sms.manage")
    current = settings_for(prop.id)

    def get(key: str, default: str = "") -> str:
        return str(values.get(key, default) or "").strip()

    sender = get("sender", current.sender)
    if sender not in SENDERS:
        raise ValidationError(tr("choose how SMS are sent"), "sender")
    language = get("language", current.language)
    if language not in LANGUAGES:
        raise ValidationError(tr("choose a language"), "language")
    country_code = get("country_code", current.country_code).lstrip("+")
    if not re.fullmatch(r"\d{1,3}", country_code):
        raise ValidationError(
            tr("the country calling code is 1 to 3 digits, such as 86"), "country_code"
        )
    sid = get("twilio_account_sid", current.twilio_account_sid)
    token = get("twilio_auth_token") or current.twilio_auth_token
    from_ = get("twilio_from", current.twilio_from).replace(" ", "")
    if sid and not re.fullmatch(r"AC[0-9a-fA-F]{32}", sid):
        raise ValidationError(
            tr("a Twilio account SID is AC followed by 32 hexadecimal digits"), "twilio_account_sid"
        )
    if from_ and not re.fullmatch(r"\+\d{6,15}|MG[0-9a-fA-F]{32}", from_):
        raise ValidationError(
            tr("send from a number such as +14155550100 or a messaging service SID (MG...)"),
            "twilio_from",
        )
    if sender == "twilio":
        for key, value in (
            ("twilio_account_sid", sid),
            ("twilio_auth_token", token),
            ("twilio_from", from_),
        ):
            if not value:
                raise ValidationError(
                    tr("Twilio needs the account SID, the auth token and a sender"), key
                )
    api_base = _url(get("twilio_api_base_url", current.twilio_api_base_url), "twilio_api_base_url")
    public_base = _url(get("public_base_url", current.public_base_url), "public_base_url")
    port = get("modem_port", current.modem_port)
    try:
        baud = int(get("modem_baud", str(current.modem_baud)) or 115200)
    except ValueError:
        baud = 0
    if baud not in MODEM_BAUDS:
        raise ValidationError(tr("choose a modem speed"), "modem_baud")
    if sender == "modem" and not port:
        raise ValidationError(
            tr("name the modem's serial port, such as /dev/ttyUSB0"), "modem_port"
        )
    start_text = get("quiet_start", format_minute(current.quiet_start_min))
    end_text = get("quiet_end", format_minute(current.quiet_end_min))
    if not start_text and not end_text:
        quiet_start = quiet_end = 0
    else:
        quiet_start = _hhmm(start_text, "quiet_start")
        quiet_end = _hhmm(end_text, "quiet_end")
    staff = parse_phone_list(
        get("staff_phones", current.staff_phones), country_code, "staff_phones"
    )
    fields: dict[str, Any] = {
        "sender": sender,
        "language": language,
        "country_code": country_code,
        "twilio_account_sid": sid,
        "twilio_auth_token": token,
        "twilio_from": from_,
        "twilio_api_base_url": api_base,
        "public_base_url": public_base,
        "modem_port": port,
        "modem_baud": baud,
        "quiet_start_min": quiet_start,
        "quiet_end_min": quiet_end,
        "staff_phones": ",".join(staff),
    }
    with write_tx():
        row = SmsSettings.get_or_none(SmsSettings.property == prop.id)
        before = {k: getattr(row, k) for k in fields} if row is not None else {}
        if row is None:
            row = SmsSettings(property=prop.id)
        for key, value in fields.items():
            setattr(row, key, value)
        if sender != "none" and (
            row.active_since is None or before.get("sender", "none") == "none"
        ):
            row.active_since = now
        row.updated_at, row.updated_by = now, actor.name
        row.save()
        changed = {
            k: (mask_secret(str(v)) if k == "twilio_auth_token" else v)
            for k, v in fields.items()
            if before.get(k) != v
        }
        audit(actor, "sms.settings", row, now=now, **changed)
    return row


# ---------------------------------------------------------------------------- phones, language, quiet hours


def normalise_phone(raw: str, country_code: str = "86") -> str | None:
    """A phone number as E.164 (+8613800000000), or None when it cannot be one.  National
    numbers get ``country_code`` (a trunk prefix 0 is dropped); 0086... and 86 + 11 digits
    are taken as international already."""
    text = re.sub(r"[\s\-()]", "", raw or "")
    if text.startswith("00"):
        text = "+" + text[2:]
    if text.startswith("+"):
        digits = text[1:]
    elif country_code == "86" and len(text) == 13 and text.startswith("86"):
        digits = text
    else:
        digits = country_code + text.lstrip("0")
    if not digits.isdigit() or not 8 <= len(digits) <= 15:
        return None
    return "+" + digits


def tenant_phones(tenant: Tenant, country_code: str) -> tuple[list[str], list[str]]:
    """(usable E.164 numbers, entries that are not numbers) of a tenant, in order, no repeats."""
    good: list[str] = []
    bad: list[str] = []
    for raw in re.split(r"[,;，；\s]+", tenant.phones or ""):
        if not raw:
            continue
        phone = normalise_phone(raw, country_code)
        if phone is None:
            bad.append(raw)
        elif phone not in good:
            good.append(phone)
    return good, bad


def tenant_language(tenant_id: int, settings: SmsSettings) -> str:
    pref = TenantSmsPreference.get_or_none(TenantSmsPreference.tenant == tenant_id)
    return pref.language if pref is not None and pref.language in LANGUAGES else settings.language


def set_tenant_language(tenant: Tenant, *, language: str, actor: Actor, now: dt.datetime) -> None:
    """A tenant's SMS language ('' follows the property's)."""
    actor.require("sms.manage")
    if language and language not in LANGUAGES:
        raise ValidationError(tr("choose a language"), "language")
    with write_tx():
        pref = TenantSmsPreference.get_or_none(TenantSmsPreference.tenant == tenant.id)
        if pref is None:
            TenantSmsPreference.create(
                tenant=tenant.id, language=language, updated_at=now, updated_by=actor.name
            )
        else:
            TenantSmsPreference.update(
                language=language, updated_at=now, updated_by=actor.name
            ).where(TenantSmsPreference.id == pref.id).execute()
        audit(actor, "sms.tenant_language", tenant, now=now, language=language)


def in_quiet_hours(settings: SmsSettings, tz: ZoneInfo, now: dt.datetime) -> bool:
    start, end = settings.quiet_start_min, settings.quiet_end_min
    if start == end:
        return False
    local = local_naive(now, tz)
    minute = local.hour * 60 + local.minute
    if start < end:
        return start <= minute < end
    return minute >= start or minute < end


def quiet_hours_end(settings: SmsSettings, tz: ZoneInfo, now: dt.datetime) -> dt.datetime:
    """The next end of quiet hours after ``now``, as naive UTC."""
    local = local_naive(now, tz)
    end = local.replace(
        hour=settings.quiet_end_min // 60, minute=settings.quiet_end_min % 60, second=0
    )
    if end <= local:
        end += dt.timedelta(days=1)
    return to_utc(end, tz)


def _zone(prop_id: int, cache: dict[int, ZoneInfo] | None = None) -> ZoneInfo:
    if cache is not None and prop_id in cache:
        return cache[prop_id]
    zone = clock_zone(Property.get_by_id(prop_id))
    if cache is not None:
        cache[prop_id] = zone
    return zone


# ---------------------------------------------------------------------------- templates


def template_body(prop_id: int, kind: str, language: str) -> str:
    row = SmsTemplate.get_or_none(
        (SmsTemplate.property == prop_id)
        & (SmsTemplate.kind == kind)
        & (SmsTemplate.language == language)
    )
    return row.body if row is not None else DEFAULT_TEMPLATES[language][kind]


def render(body: str, values: Mapping[str, str]) -> str:
    """Fill ``{name}`` placeholders (an unknown one becomes empty)."""
    return _TOKEN.sub(lambda m: str(values.get(m.group(1), "")), body)


def check_template(kind: str, body: str) -> str:
    """The cleaned body, or ValidationError naming the problem."""
    if kind not in PLACEHOLDERS:
        raise NotFound(tr("no such message"), "kind")
    body = (body or "").replace("\r\n", "\n").strip()
    if not body and kind not in PHRASE_KINDS:
        raise ValidationError(tr("write the message"), "body")
    if len(body) > MAX_BODY:
        raise ValidationError(tr("a message is at most %(n)s characters", n=MAX_BODY), "body")
    allowed = PLACEHOLDERS[kind]
    for name in _TOKEN.findall(body):
        if name not in allowed:
            raise ValidationError(
                tr(
                    "{%(name)s} cannot be used here; use %(allowed)s",
                    name=name,
                    allowed=", ".join("{" + a + "}" for a in allowed) or "-",
                ),
                "body",
            )
    if "{" in _TOKEN.sub("", body) or "}" in _TOKEN.sub("", body):
        raise ValidationError(tr("braces are only for placeholders such as {balance}"), "body")
    return body


def save_template(
    prop: Property, *, kind: str, language: str, body: str, actor: Actor, now: dt.datetime
) -> SmsTemplate:
    """Store a manager's version of one message in one language."""
    actor.require("sms.manage")
    if language not in LANGUAGES:
        raise ValidationError(tr("choose a language"), "language")
    body = check_template(kind, body)
    with write_tx():
        row = SmsTemplate.get_or_none(
            (SmsTemplate.property == prop.id)
            & (SmsTemplate.kind == kind)
            & (SmsTemplate.language == language)
        )
        if row is None:
            row = SmsTemplate.create(
                property=prop.id,
                kind=kind,
                language=language,
                body=body,
                updated_at=now,
                updated_by=actor.name,
            )
        else:
            SmsTemplate.update(body=body, updated_at=now, updated_by=actor.name).where(
                SmsTemplate.id == row.id
            ).execute()
        audit(actor, "sms.template", row, now=now, kind=kind, language=language, body=body)
    return SmsTemplate.get_by_id(row.id)


def reset_template(
    prop: Property, *, kind: str, language: str, actor: Actor, now: dt.datetime
) -> None:
    """Go back to the built-in text."""
    actor.require("sms.manage")
    if kind not in PLACEHOLDERS or language not in LANGUAGES:
        raise NotFound(tr("no such message"), "kind")
    with write_tx():
        SmsTemplate.delete().where(
            (SmsTemplate.property == prop.id)
            & (SmsTemplate.kind == kind)
            & (SmsTemplate.language == language)
        ).execute()
        audit(actor, "sms.template_reset", prop, now=now, kind=kind, language=language)


def sample_values(prop: Property, kind: str, language: str) -> dict[str, str]:
    """Plausible values for previewing ``kind`` (the days-left phrase from the saved phrase)."""
    values = {
        "property": prop.name,
        "account": f"{prop.code}-00012",
        "room": "A-101",
        "balance": "38.50",
        "threshold": "50.00",
        "amount": "100.00",
        "fee": "3.00",
        "credited": "97.00",
        "receipt": "202611020000012",
        "closing": "125.40",
        "count": "2",
        "time": "11-02 21:30",
        "days": "4",
        **SAMPLE_VALUES[language],
    }
    if "days_left" in PLACEHOLDERS[kind]:
        values["days_left"] = render(template_body(prop.id, "days_left", language), {"days": "4"})
    return values


def preview_template(prop: Property, *, kind: str, language: str, body: str) -> str:
    """``body`` filled with sample values; ValidationError when it would not be accepted."""
    if language not in LANGUAGES:
        raise ValidationError(tr("choose a language"), "language")
    return render(check_template(kind, body), sample_values(prop, kind, language))


# ---------------------------------------------------------------------------- days of credit left


def _meter_tariff(meter: Meter, account: Account) -> int | None:
    if meter.tariff_id:
        return meter.tariff_id
    return account.tariff_electricity_id if meter.kind == "electricity" else account.tariff_water_id


def daily_cost(account: Account, now: dt.datetime) -> Fraction | None:
    """Fen per day the account's meters used over the last 7 days, priced at today's tariffs.

    Each meter's accepted consumption since the later of (now - 7 days, its first reading)
    is priced with the tariff version in force now and spread over that time.  A meter with
    less than a day of readings is left out; None when nothing is known.
    """
    tz = ZoneInfo(Property.get_by_id(account.property_id).timezone)
    window_start = now - ESTIMATE_WINDOW
    total = Fraction(0)
    known = False
    meters = list(Meter.select().where((Meter.account == account.id) & (Meter.status == "active")))
    tariff_ids = [t for t in (_meter_tariff(m, account) for m in meters) if t]
    book = TariffBook(tariff_ids)
    for m in meters:
        tariff_id = _meter_tariff(m, account)
        if tariff_id is None:
            continue
        spec = book.spec_at(tariff_id, now)
        first = Reading.select(fn.MIN(Reading.read_at)).where(Reading.meter == m.id).scalar()
        if spec is None or first is None:
            continue
        if isinstance(first, str):
            first = dt.datetime.fromisoformat(first)
        start = max(window_start, first)
        span = now - start
        seconds = span.days * 86400 + span.seconds
        if seconds < 86400:
            continue
        units = 0
        per_rate: dict[str, int] = defaultdict(int)
        rows = (
            Reading.select(Reading.consumption, Reading.rate_units)
            .where(
                (Reading.meter == m.id)
                & (Reading.read_at > start)
                & (Reading.read_at <= now)
                & Reading.status.in_(["accepted", "released"])
            )
            .tuples()
        )
        for consumption, rate_units in rows:
            units += consumption
            for rate, n in (json.loads(rate_units) if rate_units else {}).items():
                per_rate[rate] += int(n)
        known = True
        if not units:
            continue
        kind = book.kinds[tariff_id]
        by_register = (
            dict(per_rate) if kind == "tou" and per_rate and set(per_rate) <= set(RATES) else None
        )
        num, _, _ = rate_interval(
            kind,
            spec,
            book.utilities[tariff_id],
            units=units,
            start=start,
            end=now,
            tz=tz,
            rate_units=by_register,
            month_state=(m.month_key, m.month_units),
        )
        total += Fraction(num * 86400, denominator(m.kind) * seconds)
    return total if known else None


def estimate_days_left(account: Account, balance_fen: int, now: dt.datetime) -> int | None:
    """Whole days the balance lasts at the last 7 days' average use; None when unknown (no
    history yet, or no use at all)."""
    if balance_fen <= 0:
        return 0
    cost = daily_cost(account, now)
    if not cost:
        return None
    return int(Fraction(balance_fen) / cost)


# ---------------------------------------------------------------------------- dispatch


@dataclass
class DispatchReport:
    events: int = 0  # events marked handled
    messages: int = 0  # outbox rows written (queued or skipped)
    waiting: int = 0  # staff alerts held back for the next digest


@dataclass
class _Run:
    """One dispatch pass: caches and the rows it writes."""

    now: dt.datetime
    settings: dict[int, SmsSettings] = field(default_factory=dict)
    zones: dict[int, ZoneInfo] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)

    def settings_of(self, prop_id: int) -> SmsSettings:
        if prop_id not in self.settings:
            self.settings[prop_id] = settings_for(prop_id)
        return self.settings[prop_id]

    def add(
        self,
        settings: SmsSettings,
        *,
        audience: str,
        kind: str,
        recipient: str,
        language: str,
        body: str,
        cause: str,
        account: int | None = None,
        tenant: int | None = None,
        meter: int | None = None,
        event: int | None = None,
        sale: int | None = None,
        skipped: str = "",
    ) -> None:
        prop_id = settings.property_id
        urgent = kind in URGENT_KINDS
        due = self.now
        if not urgent and in_quiet_hours(settings, _zone(prop_id, self.zones), self.now):
            due = quiet_hours_end(settings, _zone(prop_id, self.zones), self.now)
        self.rows.append(
            {
                "property": prop_id,
                "audience": audience,
                "kind": kind,
                "account": account,
                "tenant": tenant,
                "meter": meter,
                "event": event,
                "sale": sale,
                "recipient": recipient,
                "language": language,
                "body": body,
                "urgent": urgent,
                "dedupe_key": f"{cause}:{recipient or '-'}"[:120],
                "status": "skipped" if skipped else "queued",
                "error_code": skipped,
                "error": "",
                "created_at": self.now,
                "next_attempt_at": due,
                "updated_at": self.now,
            }
        )


def _tenant_values(account: Account, balance_fen: int, prop: Property) -> dict[str, str]:
    room = Room.get_or_none(Room.id == account.room_id) if account.room_id else None
    return {
        "property": prop.name,
        "tenant": account.tenant.name,
        "account": account.number,
        "room": room.number if room is not None else "",
        "balance": format_fen(balance_fen),
    }


def _days_left_phrase(
    prop_id: int, language: str, account: Account, balance_fen: int, now: dt.datetime
) -> str:
    days = estimate_days_left(account, balance_fen, now)
    if days is None:
        return ""
    if days < 1:
        return render(template_body(prop_id, "days_left_under_one", language), {})
    return render(template_body(prop_id, "days_left", language), {"days": str(days)})


def _tenant_message(
    run: _Run,
    account: Account,
    kind: str,
    *,
    cause: str,
    extra: Mapping[str, str] | None = None,
    balance_fen: int | None = None,
    event: int | None = None,
    sale: int | None = None,
) -> None:
    """Outbox rows for one message to every phone of the account's tenant."""
    settings = run.settings_of(account.property_id)
    prop = Property.get_by_id(account.property_id)
    tenant = Tenant.get_by_id(account.tenant_id)
    language = tenant_language(tenant.id, settings)
    if balance_fen is None:
        balance_fen = LedgerAccount.get_by_id(account.wallet_id).balance_fen
    body_template = template_body(prop.id, kind, language)
    values = {**_tenant_values(account, balance_fen, prop), **(extra or {})}
    if "{days_left}" in body_template:
        values["days_left"] = _days_left_phrase(prop.id, language, account, balance_fen, run.now)
    body = render(body_template, values)
    phones, bad = tenant_phones(tenant, settings.country_code)
    common = {
        "audience": "tenant",
        "kind": kind,
        "language": language,
        "body": body,
        "cause": cause,
        "account": account.id,
        "tenant": tenant.id,
        "event": event,
        "sale": sale,
    }
    if not phones:
        run.add(settings, recipient="", skipped="bad_phone" if bad else "no_phone", **common)
    for phone in phones:
        run.add(settings, recipient=phone, **common)


def _staff_message(run: _Run, prop_id: int, kind: str, events: list[Event]) -> None:
    settings = run.settings_of(prop_id)
    prop = Property.get_by_id(prop_id)
    meter_ids = [e.meter_id for e in events if e.meter_id]
    serials: dict[int, str] = {}
    if meter_ids:
        serials.update(Meter.select(Meter.id, Meter.serial).where(Meter.id.in_(meter_ids)).tuples())
    names: list[str] = []
    for e in events:
        if not e.meter_id:
            continue
        name = serials.get(e.meter_id, str(e.meter_id))
        if kind == "staff.overload":
            data = json.loads(e.data or "{}")
            name = f"{name} {data.get('power_w', '?')}W/{data.get('limit_w', '?')}W"
        if name not in names:
            names.append(name)
    shown = ", ".join(names[:6]) + (f" +{len(names) - 6}" if len(names) > 6 else "")
    newest = max(e.created_at for e in events)
    values = {
        "property": prop.name,
        "count": str(len(names) or len(events)),
        "meters": shown,
        "time": local_naive(newest, _zone(prop_id, run.zones)).strftime("%m-%d %H:%M"),
    }
    body = render(template_body(prop_id, kind, settings.language), values)
    first = min(events, key=lambda e: e.id)
    for phone in parse_phone_list(settings.staff_phones, settings.country_code, "staff_phones"):
        run.add(
            settings,
            audience="staff",
            kind=kind,
            recipient=phone,
            language=settings.language,
            body=body,
            cause=f"ev:{first.id}",
            meter=first.meter_id if len(names) == 1 else None,
            event=first.id,
        )


def _told_cut(account_id: int) -> bool:
    """Was the tenant's last supply message the cut?  "Restored" answers a cut the tenant was
    told about: not a new account's first payment, nor a cut undone within the same minute."""
    last = (
        SmsMessage.select(SmsMessage.kind)
        .where(
            (SmsMessage.account == account_id)
            & SmsMessage.kind.in_(["arrears", "arrears_notice", "arrears_grace", "restored"])
        )
        .order_by(SmsMessage.id.desc())
        .first()
    )
    return last is not None and last.kind != "restored"


def _falling(event: Event) -> bool:
    tier = event.kind.split(".", 1)[1]
    before = json.loads(event.data or "{}").get("from", "opened")
    return TIER_RANK.get(tier, 0) > TIER_RANK.get(before, 0)


def _dispatch_batch(run: _Run, events: list[Event]) -> tuple[list[int], int]:
    """Turn a batch of events into rows; returns (ids to mark handled, staff alerts waiting)."""
    handled: list[int] = []
    waiting = 0
    latest_balance: dict[int, Event] = {}
    restored: dict[int, Event] = {}
    staff: dict[tuple[int, str], list[Event]] = defaultdict(list)
    for e in events:
        settings = run.settings_of(e.property_id)
        if settings.sender == "none" or e.created_at < run.now - EVENT_MAX_AGE:
            handled.append(e.id)
            continue
        if e.kind.startswith("balance.") and e.account_id:
            older = latest_balance.get(e.account_id)
            if older is not None:
                handled.append(older.id)  # superseded by a newer change of the same account
            latest_balance[e.account_id] = e
            continue
        if e.kind in STAFF_EVENTS:
            staff[(e.property_id, STAFF_EVENTS[e.kind])].append(e)
            continue
        handled.append(e.id)
        if (
            e.kind == "relay.on"
            and e.account_id
            and json.loads(e.data or "{}").get("reason") == "paid"
        ):
            restored.setdefault(e.account_id, e)
        elif e.kind == "rent.charged" and e.account_id:
            _rent_charged(run, e)
    for account_id, e in latest_balance.items():
        handled.append(e.id)
        tier = e.kind.split(".", 1)[1]
        if tier not in ALERT_TIERS or not _falling(e):
            continue
        account = Account.get_by_id(account_id)
        if account.status != tier:
            continue  # moved on since; its own event says so
        extra = {}
        kind = tier
        if tier in ("alarm1", "alarm2"):
            extra["threshold"] = format_fen(
                account.alarm1_fen if tier == "alarm1" else account.alarm2_fen
            )
        else:  # arrears: cut now, or later (the friendly window, the grace credit)
            data = json.loads(e.data or "{}")
            if data.get("cut_at"):
                kind = "arrears_notice"
                cut_at = dt.datetime.fromisoformat(data["cut_at"])
                zone = _zone(account.property_id, run.zones)
                extra["cut_at"] = local_naive(cut_at, zone).strftime("%m-%d %H:%M")
            elif data.get("grace_fen"):
                kind = "arrears_grace"
                extra["limit"] = format_fen(int(data["grace_fen"]))
        _tenant_message(run, account, kind, cause=f"ev:{e.id}", extra=extra, event=e.id)
    for account_id, e in restored.items():
        account = Account.get_by_id(account_id)
        if account.status not in ("arrears", "closed") and _told_cut(account_id):
            _tenant_message(run, account, "restored", cause=f"ev:{e.id}", event=e.id)
    for (prop_id, kind), group in staff.items():
        settings = run.settings_of(prop_id)
        if not settings.staff_phones:
            handled.extend(e.id for e in group)
            continue
        recent = (
            SmsMessage.select()
            .where(
                (SmsMessage.property == prop_id)
                & (SmsMessage.kind == kind)
                & (SmsMessage.created_at > run.now - STAFF_DIGEST_WINDOW)
            )
            .exists()
        )
        if recent:
            waiting += len(group)
            continue
        _staff_message(run, prop_id, kind, group)
        handled.extend(e.id for e in group)
    return handled, waiting


def _rent_charged(run: _Run, e: Event) -> None:
    """Rent or property fee deducted (``app.domain.rent`` writes the event)."""
    account = Account.get_by_id(e.account_id)
    data = json.loads(e.data or "{}")
    language = tenant_language(account.tenant_id, run.settings_of(account.property_id))
    item = str(data.get("name") or ITEM_NAMES[language].get(str(data.get("kind", "")), ""))
    period = f"{data.get('period_start', '')}~{data.get('period_end', '')}".strip("~")
    balance = data.get("balance_fen")
    extra = {"item": item, "period": period, "amount": format_fen(int(data.get("amount_fen", 0)))}
    _tenant_message(
        run,
        account,
        "fee_deducted",
        cause=f"ev:{e.id}",
        extra=extra,
        event=e.id,
        balance_fen=int(balance) if balance is not None else None,
    )


def _bills(run: _Run, enabled: list[int]) -> None:
    """Bill-ready messages for monthly bills issued within the last day."""
    from app.models.operations import BillSnapshot

    done = set()
    for (key,) in (
        SmsMessage.select(SmsMessage.dedupe_key)
        .where(
            (SmsMessage.kind == "bill_ready")
            & (SmsMessage.created_at > run.now - RECEIPT_MAX_AGE * 2)
        )
        .tuples()
    ):
        done.add(key.split(":")[1])
    snaps = (
        BillSnapshot.select(BillSnapshot, Account)
        .join(Account)
        .where(
            Account.property.in_(enabled)
            & (BillSnapshot.created_at > run.now - RECEIPT_MAX_AGE)
            & (BillSnapshot.created_at <= run.now)
        )
        .order_by(BillSnapshot.id)
    )
    for snap in snaps:
        if str(snap.id) in done or snap.created_at < (
            run.settings[snap.account.property_id].active_since or run.now
        ):
            continue
        data = json.loads(snap.data or "{}")
        month = int(data.get("month", snap.month))
        extra = {
            "month": f"{month // 100}-{month % 100:02d}",
            "closing": format_fen(int(data.get("closing_fen", 0))),
        }
        _tenant_message(run, snap.account, "bill_ready", cause=f"bill:{snap.id}", extra=extra)


def _receipts(run: _Run) -> None:
    """Receipts for new sales of properties that send SMS (one day back at most)."""
    for settings in SmsSettings.select().where(SmsSettings.sender != "none"):
        run.settings.setdefault(settings.property_id, settings)
    enabled = [p for p, settings in run.settings.items() if settings.sender != "none"]
    if not enabled:
        return
    sent = SmsMessage.select(SmsMessage.id).where(SmsMessage.sale == Sale.id)
    sales = (
        Sale.select()
        .where(
            Sale.property.in_(enabled)
            & (Sale.created_at > run.now - RECEIPT_MAX_AGE)
            & (Sale.created_at <= run.now)
            & Sale.reversal_entry.is_null()
            & ~fn.EXISTS(sent)
        )
        .order_by(Sale.id)
        .limit(BATCH)
    )
    for sale in sales:
        if sale.created_at < (run.settings[sale.property_id].active_since or run.now):
            continue
        account = Account.get_by_id(sale.account_id)
        extra = {
            "amount": format_fen(sale.amount_fen),
            "fee": format_fen(sale.fee_fen),
            "credited": format_fen(sale.net_fen),
            "receipt": sale.receipt_no or str(sale.id),
        }
        _tenant_message(
            run,
            account,
            "receipt",
            cause=f"sale:{sale.id}",
            extra=extra,
            balance_fen=sale.balance_after_fen,
            sale=sale.id,
        )
    _bills(run, enabled)


def _write(run: _Run) -> int:
    """Insert the run's rows whose dedupe key is new; returns how many."""
    rows, run.rows = run.rows, []
    if not rows:
        return 0
    keys = [r["dedupe_key"] for r in rows]
    seen: set[str] = set()
    for i in range(0, len(keys), 400):
        seen.update(
            k
            for (k,) in SmsMessage.select(SmsMessage.dedupe_key)
            .where(SmsMessage.dedupe_key.in_(keys[i : i + 400]))
            .tuples()
        )
    fresh = []
    for row in rows:
        if row["dedupe_key"] not in seen:
            seen.add(row["dedupe_key"])
            fresh.append(row)
    for i in range(0, len(fresh), 200):
        SmsMessage.insert_many(fresh[i : i + 200]).on_conflict_ignore().execute()
    return len(fresh)


def dispatch_events(now: dt.datetime) -> DispatchReport:
    """Turn new events and sales into outbox rows and mark the events handled.  Idempotent:
    a second run finds nothing new, and a row's dedupe key keeps a repeat from adding it."""
    report = DispatchReport()
    after_id = 0
    while True:
        with write_tx():
            run = _Run(now)
            events = list(
                Event.select()
                .where(
                    Event.handled_at.is_null() & (Event.id > after_id) & (Event.created_at <= now)
                )
                .order_by(Event.id)
                .limit(BATCH)
            )
            if not events:
                break
            after_id = events[-1].id
            handled, waiting = _dispatch_batch(run, events)
            report.messages += _write(run)
            if handled:
                for i in range(0, len(handled), 400):
                    Event.update(handled_at=now).where(Event.id.in_(handled[i : i + 400])).execute()
            report.events += len(handled)
            report.waiting += waiting
        if len(events) < BATCH:
            break
    with write_tx():
        run = _Run(now)
        _receipts(run)
        report.messages += _write(run)
    return report


_trigger: Callable[[], Any] | None = None


def set_dispatch_trigger(trigger: Callable[[], Any] | None) -> None:
    """What ``request_dispatch`` calls (the task queue installs one: enqueue a dispatch)."""
    global _trigger
    _trigger = trigger


def request_dispatch() -> None:
    """Ask for a dispatch right after the current transaction commits, so a receipt goes out
    in seconds rather than at the next minute's run.  Never fails the caller."""
    trigger = _trigger
    if trigger is None:
        return

    def fire() -> None:
        try:
            trigger()
        except Exception:  # noqa: BLE001 - the periodic dispatch catches up
            log.exception("could not request an SMS dispatch")

    after_commit(fire)


# ---------------------------------------------------------------------------- the outbox


def move(message_id: int, frm: str, to: str, **fields: Any) -> bool:
    """Move a message from ``frm`` to ``to`` if it is still in ``frm``; False when it was
    not (another worker or callback got there first).  Refuses moves the machine lacks."""
    if to not in TRANSITIONS.get(frm, ()):
        raise ValueError(f"an SMS cannot go from {frm} to {to}")
    return bool(
        SmsMessage.update(status=to, **fields)
        .where((SmsMessage.id == message_id) & (SmsMessage.status == frm))
        .execute()
    )


def retry_delay(attempts: int) -> dt.timedelta:
    """The wait after ``attempts`` failed attempts."""
    return dt.timedelta(seconds=RETRY_DELAYS[min(attempts, len(RETRY_DELAYS)) - 1])


def make_sender(settings: SmsSettings) -> Sender | None:
    if settings.sender == "twilio":
        callback = settings.public_base_url + WEBHOOK_PATH if settings.public_base_url else ""
        return TwilioSender(
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            settings.twilio_from,
            base_url=settings.twilio_api_base_url,
            status_callback=callback,
        )
    if settings.sender == "modem":
        return ModemSender(settings.modem_port, settings.modem_baud)
    return None


@dataclass(frozen=True)
class DeliveryOutcome:
    """What ``deliver`` did: the message's status afterwards, and whether to try again."""

    status: str
    retry: bool = False
    error: str = ""


def deliver(message_id: int, *, now: dt.datetime, sender: Sender | None = None) -> DeliveryOutcome:
    """Send one due message.  Safe to call twice or from two workers: only the caller that
    moves it from queued to sending sends it."""
    with write_tx():
        msg = SmsMessage.get_or_none(SmsMessage.id == message_id)
        if msg is None:
            return DeliveryOutcome("missing")
        if msg.status != "queued" or msg.next_attempt_at > now + DUE_SLACK:
            return DeliveryOutcome(msg.status)
        settings = settings_for(msg.property_id)
        if settings.sender == "none":
            move(
                msg.id,
                "queued",
                "failed",
                error_code="disabled",
                error="",
                failed_at=now,
                updated_at=now,
            )
            return DeliveryOutcome("failed", error="disabled")
        tz = _zone(msg.property_id)
        if not msg.urgent and in_quiet_hours(settings, tz, now):
            SmsMessage.update(
                next_attempt_at=quiet_hours_end(settings, tz, now), updated_at=now
            ).where(SmsMessage.id == msg.id).execute()
            return DeliveryOutcome("queued")
        attempts = msg.attempts + 1
        if not move(
            msg.id, "queued", "sending", attempts=attempts, sender=settings.sender, updated_at=now
        ):
            return DeliveryOutcome(SmsMessage.get_by_id(msg.id).status)
    sender = sender or make_sender(settings)
    if sender is None:
        return _record_failure(msg.id, attempts, "disabled", "", now, permanent=True)
    try:
        provider_id = sender.send(msg.recipient, msg.body)
    except PermanentSendError as exc:
        return _record_failure(msg.id, attempts, exc.code, exc.message, now, permanent=True)
    except TransientSendError as exc:
        return _record_failure(msg.id, attempts, exc.code, exc.message, now, permanent=False)
    except Exception as exc:  # noqa: BLE001 - a library surprise: record it and try again later
        log.exception("SMS %s: unexpected error from the %s sender", msg.id, settings.sender)
        return _record_failure(
            msg.id, attempts, "", f"{type(exc).__name__}: {exc}", now, permanent=False
        )
    with write_tx():
        move(
            msg.id,
            "sending",
            "sent",
            provider_id=provider_id[:64],
            sent_at=now,
            updated_at=now,
            error_code="",
            error="",
        )
    return DeliveryOutcome("sent")


def _record_failure(
    message_id: int, attempts: int, code: str, error: str, now: dt.datetime, *, permanent: bool
) -> DeliveryOutcome:
    with write_tx():
        if permanent or attempts >= MAX_ATTEMPTS:
            move(
                message_id,
                "sending",
                "failed",
                error_code=code[:32],
                error=error,
                failed_at=now,
                updated_at=now,
            )
            return DeliveryOutcome("failed", error=error)
        move(
            message_id,
            "sending",
            "queued",
            error_code=code[:32],
            error=error,
            updated_at=now,
            next_attempt_at=now + retry_delay(attempts),
        )
    return DeliveryOutcome("queued", retry=True, error=error)


def due_messages(now: dt.datetime, limit: int = 200) -> list[int]:
    """Messages to send now: urgent first, then oldest.  Messages left in ``sending`` for
    ``STUCK_AFTER`` (a worker died mid-send) are put back first; their attempt counts."""
    with write_tx():
        stuck = [
            m.id
            for m in SmsMessage.select(SmsMessage.id).where(
                (SmsMessage.status == "sending") & (SmsMessage.updated_at < now - STUCK_AFTER)
            )
        ]
        for mid in stuck:
            move(
                mid,
                "sending",
                "queued",
                error="interrupted while sending",
                updated_at=now,
                next_attempt_at=now,
            )
    return [
        m.id
        for m in SmsMessage.select(SmsMessage.id)
        .where((SmsMessage.status == "queued") & (SmsMessage.next_attempt_at <= now + DUE_SLACK))
        .order_by(SmsMessage.urgent.desc(), SmsMessage.id)
        .limit(limit)
    ]


TWILIO_FINAL = {"delivered": "delivered", "undelivered": "failed", "failed": "failed"}


def record_delivery_status(
    provider_id: str, status: str, *, error_code: str = "", now: dt.datetime
) -> SmsMessage | None:
    """A delivery report from the provider: sent -> delivered | failed.  Reports that arrive
    late or twice change nothing; None when the message is not ours."""
    msg = SmsMessage.get_or_none(SmsMessage.provider_id == provider_id) if provider_id else None
    if msg is None:
        return None
    target = TWILIO_FINAL.get(status)
    if target is None or msg.status != "sent":
        return msg
    with write_tx():
        if target == "delivered":
            move(msg.id, "sent", "delivered", delivered_at=now, updated_at=now)
        else:
            move(
                msg.id,
                "sent",
                "failed",
                failed_at=now,
                updated_at=now,
                error_code=(error_code or "")[:32],
                error=f"Twilio reported {status}"
                + (f" (error {error_code})" if error_code else ""),
            )
    return SmsMessage.get_by_id(msg.id)


def twilio_signer(
    account_sid: str, urls: Iterable[str], params: Any, signature: str
) -> SmsSettings | None:
    """The settings whose auth token signed this callback (``X-Twilio-Signature`` over the
    URL and the POST parameters, checked by the SDK's RequestValidator), or None: unsigned,
    forged, altered or from an account we do not use."""
    from twilio.request_validator import RequestValidator

    if not signature or not account_sid:
        return None
    candidates = [u for u in urls if u]
    for settings in SmsSettings.select().where(
        (SmsSettings.twilio_account_sid == account_sid) & (SmsSettings.twilio_auth_token != "")
    ):
        validator = RequestValidator(settings.twilio_auth_token)
        own = [
            settings.public_base_url + u[u.index(WEBHOOK_PATH) :]
            for u in candidates
            if settings.public_base_url and WEBHOOK_PATH in u
        ]
        if any(validator.validate(url, params, signature) for url in own + candidates):
            return settings
    return None


def requeue_message(message: SmsMessage, *, actor: Actor, now: dt.datetime) -> SmsMessage:
    """Staff resend a failed message: it goes back to the queue with fresh attempts."""
    actor.require("sms.manage")
    with write_tx():
        msg = SmsMessage.get_by_id(message.id)
        if msg.status != "failed":
            raise ValidationError(tr("only a failed message can be sent again"), "status")
        move(
            msg.id,
            "failed",
            "queued",
            attempts=0,
            next_attempt_at=now,
            updated_at=now,
            error_code="",
            error="",
        )
        audit(actor, "sms.resend", msg, now=now, recipient=msg.recipient, kind=msg.kind)
    return SmsMessage.get_by_id(message.id)


def queue_test_message(prop: Property, *, phone: str, actor: Actor, now: dt.datetime) -> SmsMessage:
    """A test message to ``phone`` through the property's sender (quiet hours do not apply)."""
    actor.require("sms.manage")
    settings = settings_for(prop.id)
    if settings.sender == "none":
        raise ValidationError(tr("choose how SMS are sent and save the settings first"), "sender")
    number = normalise_phone(phone, settings.country_code)
    if number is None:
        raise ValidationError(tr("'%(phone)s' is not a phone number", phone=phone), "phone")
    body = render(template_body(prop.id, "test", settings.language), {"property": prop.name})
    with write_tx():
        msg = SmsMessage.create(
            property=prop.id,
            audience="staff",
            kind="test",
            recipient=number,
            language=settings.language,
            body=body,
            urgent=True,
            dedupe_key=f"test:{uuid.uuid4().hex}",
            created_at=now,
            next_attempt_at=now,
            updated_at=now,
        )
        audit(actor, "sms.test", msg, now=now, recipient=number)
    return msg
