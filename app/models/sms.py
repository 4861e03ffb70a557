"""Tenant and staff SMS: per-property settings, editable message templates, each tenant's SMS
language, and the outbox.  ``SMS_MODELS`` lists the models in create order.

The outbox (``SmsMessage``) holds one row per message and recipient.  Its status moves
queued -> sending -> sent -> delivered | failed (see ``app.domain.sms.TRANSITIONS``);
``skipped`` rows record a message nobody could receive (the tenant has no usable phone).
"""

from __future__ import annotations

from peewee import (
    BooleanField,
    CharField,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    TextField,
)

from app.models.activity import Event, Sale
from app.models.base import BaseModel, utcnow
from app.models.property import Property
from app.models.site import Account, Meter, Tenant


class SmsSettings(BaseModel):
    """How a property sends SMS.  ``twilio_auth_token`` is a secret: the console shows only
    its last four characters and never sends it back to the browser."""

    property = ForeignKeyField(Property, unique=True, backref="sms_settings", on_delete="RESTRICT")
    # none | twilio | modem
    sender = CharField(max_length=10, default="none")
    # When sending was last switched on: sales and bills from before it get no message.
    active_since = DateTimeField(null=True)
    # Language of staff alerts and the default for tenants: zh_CN | en
    language = CharField(max_length=8, default="zh_CN")
    # Calling code put before national numbers ("86": 13800000000 -> +8613800000000).
    country_code = CharField(max_length=4, default="86")
    twilio_account_sid = CharField(max_length=64, default="", index=True)
    twilio_auth_token = CharField(max_length=128, default="")
    # A phone number (+1...) or a Messaging Service SID (MG...).
    twilio_from = CharField(max_length=40, default="")
    # Empty: Twilio's own API.  Set to reach a compatible relay (and in tests, a local server).
    twilio_api_base_url = CharField(max_length=200, default="")
    # The address Twilio reaches this box on; empty: no delivery-status callbacks are asked for.
    public_base_url = CharField(max_length=200, default="")
    modem_port = CharField(max_length=120, default="")
    modem_baud = IntegerField(default=115200)
    # Quiet hours in the property's local time, minutes after midnight; equal: none.
    quiet_start_min = IntegerField(default=22 * 60)
    quiet_end_min = IntegerField(default=8 * 60)
    # Comma-separated numbers that receive staff alerts.
    staff_phones = CharField(max_length=400, default="")
    updated_at = DateTimeField(default=utcnow)
    updated_by = CharField(max_length=60, default="")


class SmsTemplate(BaseModel):
    """A manager's version of one message in one language (the built-in text otherwise)."""

    property = ForeignKeyField(Property, backref="sms_templates", on_delete="RESTRICT")
    kind = CharField(max_length=32)
    language = CharField(max_length=8)
    body = TextField()
    updated_at = DateTimeField(default=utcnow)
    updated_by = CharField(max_length=60, default="")

    class Meta:
        indexes = ((("property", "kind", "language"), True),)


class TenantSmsPreference(BaseModel):
    """The language a tenant's messages are written in ('' follows the property)."""

    tenant = ForeignKeyField(Tenant, unique=True, backref="sms_preference", on_delete="RESTRICT")
    language = CharField(max_length=8, default="")
    updated_at = DateTimeField(default=utcnow)
    updated_by = CharField(max_length=60, default="")


class SmsMessage(BaseModel):
    """One message to one phone number: the outbox row and its delivery history."""

    property = ForeignKeyField(Property, backref="sms_messages", on_delete="RESTRICT")
    # tenant | staff
    audience = CharField(max_length=8)
    # Template kind: alarm1, alarm2, arrears, restored, receipt, fee_deducted, bill_ready,
    # staff.offline, staff.overload ..., test.
    kind = CharField(max_length=32, index=True)
    account = ForeignKeyField(Account, null=True, backref="sms_messages", on_delete="RESTRICT")
    tenant = ForeignKeyField(Tenant, null=True, backref="sms_messages", on_delete="RESTRICT")
    meter = ForeignKeyField(Meter, null=True, backref="sms_messages", on_delete="RESTRICT")
    # What caused it: an event, or a sale for a receipt.
    event = ForeignKeyField(Event, null=True, backref="sms_messages", on_delete="RESTRICT")
    sale = ForeignKeyField(Sale, null=True, backref="sms_messages", on_delete="RESTRICT")
    recipient = CharField(max_length=32, index=True)
    language = CharField(max_length=8)
    body = TextField()
    # Urgent messages (arrears / supply cut, overload) ignore quiet hours.
    urgent = BooleanField(default=False)
    # One row per cause and phone, e.g. "ev:123:+8613800000000": dispatching twice adds nothing.
    dedupe_key = CharField(max_length=120, unique=True)
    # queued | sending | sent | delivered | failed | skipped
    status = CharField(max_length=10, default="queued", index=True)
    # twilio | modem: who took the message.
    sender = CharField(max_length=10, default="")
    provider_id = CharField(max_length=64, null=True, index=True)
    error_code = CharField(max_length=32, default="")
    error = TextField(default="")
    attempts = IntegerField(default=0)
    created_at = DateTimeField(default=utcnow, index=True)
    next_attempt_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)
    sent_at = DateTimeField(null=True)
    delivered_at = DateTimeField(null=True)
    failed_at = DateTimeField(null=True)

    class Meta:
        indexes = ((("status", "next_attempt_at"), False),)


SMS_MODELS: list = [SmsSettings, SmsTemplate, TenantSmsPreference, SmsMessage]
