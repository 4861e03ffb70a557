"""Scheduled operations: job runs, recurring charges (rent / property fee), common-area
apportionment and issued monthly bills.  ``OPERATIONS_MODELS`` lists them in create order.

Money is integer fen, energy is the meter's unit after the multiplier (0.01 kWh, litres),
months are ``YYYYMM`` integers in the property's local calendar.
"""

from __future__ import annotations

from peewee import (
    BigIntegerField,
    BooleanField,
    CharField,
    DateField,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    TextField,
)

from app.models.base import BaseModel, utcnow
from app.models.ledger import Entry
from app.models.property import Property
from app.models.site import Account, Meter
from app.models.tariffs import Tariff


class Job(BaseModel):
    """One run of a scheduled operation (water day, rent day, apportionment month, bills).

    ``key`` names the unit of work (``water:3:2026-11-02``); a key that finished ``ok`` is never
    run again.  running -> ok | failed; a failed job is retried by the next run of its task
    until ``attempts`` reaches the limit, or when a manager resets it.
    """

    # water.daily | rent | apportionment | bills
    kind = CharField(max_length=32, index=True)
    key = CharField(max_length=100, unique=True)
    property = ForeignKeyField(Property, null=True, backref="jobs", on_delete="RESTRICT")
    # running | interrupted | ok | failed
    status = CharField(max_length=12, index=True)
    started_at = DateTimeField(index=True)
    finished_at = DateTimeField(null=True)
    attempts = IntegerField(default=0)
    # What the run did, JSON such as {"accounts": 12, "amount_fen": 34500}.
    counts = TextField(default="{}")
    error = TextField(default="")
    # The worker running it and until when that claim holds (``app.domain.leases``).
    owner = CharField(max_length=80, default="")
    lease_until = DateTimeField(null=True)


class RecurringCharge(BaseModel):
    """Rent or property fee (房租/物业费) deducted from an account's wallet on a schedule.

    ``monthly``: a period starts on ``day_of_month`` each month (clamped to the month's last
    day); ``days``: every ``interval_days`` days from ``start_date``.  Each period is charged in
    advance on its first day.  ``end_date`` is the last day charged (inclusive).
    """

    property = ForeignKeyField(Property, backref="recurring_charges", on_delete="RESTRICT")
    account = ForeignKeyField(Account, backref="recurring_charges", on_delete="RESTRICT")
    # rent | property_fee
    kind = CharField(max_length=12)
    name = CharField(max_length=80, default="")
    amount_fen = BigIntegerField()
    # monthly | days
    schedule = CharField(max_length=8)
    day_of_month = IntegerField(null=True)
    interval_days = IntegerField(null=True)
    start_date = DateField()
    end_date = DateField(null=True)
    # Charge a partial first (and last) period by days instead of in full.
    prorate = BooleanField(default=True)
    # First day of the last period charged.
    last_period = DateField(null=True)
    active = BooleanField(default=True)
    created_by = CharField(max_length=60)
    created_at = DateTimeField(default=utcnow)


class ApportionmentGroup(BaseModel):
    """A master meter whose use (``master``) or line loss (``loss``: master minus the linked
    sub-meters) is rated each month and split to member accounts by ``rule``."""

    property = ForeignKeyField(Property, backref="apportionment_groups", on_delete="RESTRICT")
    name = CharField(max_length=80)
    master_meter = ForeignKeyField(Meter, backref="apportionment_groups", on_delete="RESTRICT")
    # master | loss
    mode = CharField(max_length=8)
    # area | consumption | fixed
    rule = CharField(max_length=12)
    tariff = ForeignKeyField(Tariff, backref="apportionment_groups", on_delete="RESTRICT")
    # First month (YYYYMM) the scheduled job apportions.
    start_month = IntegerField()
    active = BooleanField(default=True)
    created_by = CharField(max_length=60)
    created_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("property", "name"), True),)


class ApportionmentMember(BaseModel):
    """An account sharing a group's cost; ``weight`` is its share under the fixed rule."""

    group = ForeignKeyField(ApportionmentGroup, backref="members", on_delete="RESTRICT")
    account = ForeignKeyField(Account, backref="apportionment_memberships", on_delete="RESTRICT")
    weight = BigIntegerField(default=0)

    class Meta:
        indexes = ((("group", "account"), True),)


class ApportionmentSubMeter(BaseModel):
    """A tenant meter downstream of a loss group's master meter."""

    group = ForeignKeyField(ApportionmentGroup, backref="sub_meters", on_delete="RESTRICT")
    meter = ForeignKeyField(Meter, backref="apportionment_links", on_delete="RESTRICT")

    class Meta:
        indexes = ((("group", "meter"), True),)


class ApportionmentRun(BaseModel):
    """A posted month of a group: what was measured, rated and charged (one per month)."""

    group = ForeignKeyField(ApportionmentGroup, backref="runs", on_delete="RESTRICT")
    month = IntegerField()
    mode = CharField(max_length=8)
    rule = CharField(max_length=12)
    master_units = BigIntegerField()
    sub_units = BigIntegerField(default=0)
    units = BigIntegerField()
    amount_fen = BigIntegerField()
    weight_total = BigIntegerField()
    # Tariff, version and pricing of the shared energy, JSON.
    detail = TextField(default="{}")
    digest = CharField(max_length=64)
    entry = ForeignKeyField(Entry, null=True, unique=True, on_delete="RESTRICT")
    created_by = CharField(max_length=60)
    created_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("group", "month"), True),)


class ApportionmentPart(BaseModel):
    """One account's share of a posted run."""

    run = ForeignKeyField(ApportionmentRun, backref="parts", on_delete="RESTRICT")
    account = ForeignKeyField(Account, backref="apportionment_parts", on_delete="RESTRICT")
    weight = BigIntegerField()
    units = BigIntegerField()
    amount_fen = BigIntegerField()

    class Meta:
        indexes = ((("run", "account"), True),)


class BillSnapshot(BaseModel):
    """A monthly bill (月度账单) as issued: canonical JSON and its SHA-256.  Regenerating the
    bill from the ledger gives the same digest."""

    account = ForeignKeyField(Account, backref="bills", on_delete="RESTRICT")
    month = IntegerField()
    digest = CharField(max_length=64)
    data = TextField()
    created_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("account", "month"), True),)


OPERATIONS_MODELS: list = [
    Job,
    RecurringCharge,
    ApportionmentGroup,
    ApportionmentMember,
    ApportionmentSubMeter,
    ApportionmentRun,
    ApportionmentPart,
    BillSnapshot,
]
