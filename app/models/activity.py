"""What happens to accounts and meters: sales, readings, events, audit, staff and tokens."""

from __future__ import annotations

from peewee import (
    BigIntegerField,
    BooleanField,
    CharField,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    TextField,
)

from app.models.base import BaseModel, utcnow
from app.models.ledger import Entry
from app.models.property import Property
from app.models.site import Account, Meter


class Sale(BaseModel):
    property = ForeignKeyField(Property, backref="sales", on_delete="RESTRICT")
    account = ForeignKeyField(Account, backref="sales", on_delete="RESTRICT")
    # electricity | water (售电 / 售水); both credit the account's one wallet.
    utility = CharField(max_length=12, default="electricity")
    # cash | card | wechat | alipay | transfer
    method = CharField(max_length=10)
    amount_fen = BigIntegerField()
    fee_fen = BigIntegerField()
    net_fen = BigIntegerField()
    fee_bp = IntegerField()
    idempotency_key = CharField(max_length=100, unique=True)
    receipt_no = CharField(max_length=32, null=True, unique=True)
    entry = ForeignKeyField(Entry, unique=True, on_delete="RESTRICT")
    operator = CharField(max_length=60)
    created_at = DateTimeField(default=utcnow, index=True)
    balance_after_fen = BigIntegerField()
    reversal_entry = ForeignKeyField(
        Entry, null=True, unique=True, backref="reversed_sale", on_delete="RESTRICT"
    )
    reversed_at = DateTimeField(null=True)
    reversed_by = CharField(max_length=60, default="")
    reverse_reason = TextField(default="")

    class Meta:
        # Covering indexes for takings over a period (the overview sums sales and reversals).
        indexes = ((("created_at", "amount_fen"), False), (("reversed_at", "amount_fen"), False))


class Reading(BaseModel):
    meter = ForeignKeyField(Meter, backref="readings", on_delete="RESTRICT")
    read_at = DateTimeField()
    # Raw registers as the meter reports them (0.01 kWh or litres, before the multiplier).
    total = BigIntegerField()
    t1 = BigIntegerField(null=True)
    t2 = BigIntegerField(null=True)
    t3 = BigIntegerField(null=True)
    t4 = BigIntegerField(null=True)
    # baseline | accepted | out_of_order | tamper | held | released | ignored, and after review
    # of a held or tamper reading: rejected | reviewed (indexed for the review queue)
    status = CharField(max_length=12, index=True)
    # Units after the multiplier charged with this reading.
    consumption = BigIntegerField(default=0)
    charge_fen = BigIntegerField(default=0)
    # Units per rate for this consumption, JSON such as {"peak": 120, "flat": 30}.
    rate_units = CharField(max_length=120, default="")
    entry = ForeignKeyField(Entry, null=True, backref="readings", on_delete="RESTRICT")
    source = CharField(max_length=20, default="")
    note = CharField(max_length=200, default="")
    created_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("meter", "read_at"), True),)


class Command(BaseModel):
    """A command for a field device: relay/valve, keep-power, purchase push, time sync.

    pending -> sent -> confirmed | failed; superseded when a newer command for the same meter
    and purpose replaces it before it was confirmed.  A sender claims it (``owner``) for the
    time of one attempt; a command whose sender died is sent again.
    """

    meter = ForeignKeyField(Meter, backref="commands", on_delete="RESTRICT")
    # relay_off | relay_on | keep_power | keep_power_release | valve_close | valve_open |
    # purchase | time_sync | read (read now)
    kind = CharField(max_length=20)
    payload = TextField(default="{}")
    actor = CharField(max_length=60)
    reason = CharField(max_length=200, default="")
    status = CharField(max_length=12, default="pending", index=True)
    idempotency_key = CharField(max_length=100, null=True, unique=True)
    created_at = DateTimeField(default=utcnow)
    next_attempt_at = DateTimeField(default=utcnow, index=True)
    sent_at = DateTimeField(null=True)
    confirmed_at = DateTimeField(null=True)
    attempts = IntegerField(default=0)
    result = TextField(default="")
    # The sender holding it while it is on the wire, and until when (``app.domain.leases``).
    owner = CharField(max_length=80, default="")
    lease_until = DateTimeField(null=True)


class Event(BaseModel):
    """Something other parts react to: balance tiers, desired relay changes, staff alerts."""

    kind = CharField(max_length=32, index=True)
    property = ForeignKeyField(Property, backref="events", on_delete="RESTRICT")
    account = ForeignKeyField(Account, null=True, backref="events", on_delete="RESTRICT")
    meter = ForeignKeyField(Meter, null=True, backref="events", on_delete="RESTRICT")
    created_at = DateTimeField(default=utcnow, index=True)
    data = TextField(default="{}")
    handled_at = DateTimeField(null=True)


class User(BaseModel):
    username = CharField(max_length=60, unique=True)
    password_hash = CharField(max_length=255)
    full_name = CharField(max_length=120, default="")
    # admin | manager | cashier | electrician | viewer
    role = CharField(max_length=12)
    active = BooleanField(default=True)
    failed_logins = IntegerField(default=0)
    locked_until = DateTimeField(null=True)
    created_at = DateTimeField(default=utcnow)
    last_login_at = DateTimeField(null=True)


class UserProperty(BaseModel):
    """The properties a staff user may see; a user without any row sees every property."""

    user = ForeignKeyField(User, backref="property_links", on_delete="CASCADE")
    property = ForeignKeyField(Property, backref="user_links", on_delete="CASCADE")

    class Meta:
        indexes = ((("user", "property"), True),)


class ApiToken(BaseModel):
    name = CharField(max_length=80)
    token_hash = CharField(max_length=64, unique=True)
    role = CharField(max_length=12)
    created_at = DateTimeField(default=utcnow)
    last_used_at = DateTimeField(null=True)
    revoked = BooleanField(default=False)


class AuditLog(BaseModel):
    at = DateTimeField(default=utcnow, index=True)
    actor = CharField(max_length=60, index=True)
    action = CharField(max_length=40, index=True)
    object_type = CharField(max_length=30)
    object_id = CharField(max_length=40)
    detail = TextField(default="{}")
