"""The site tree and the things in it: property, building, floor, room, tenant, account,
gateway, meter."""

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
from app.models.ledger import LedgerAccount
from app.models.property import Property
from app.models.tariffs import Tariff


class Building(BaseModel):
    property = ForeignKeyField(Property, backref="buildings", on_delete="RESTRICT")
    name = CharField(max_length=80)

    class Meta:
        indexes = ((("property", "name"), True),)


class Floor(BaseModel):
    building = ForeignKeyField(Building, backref="floors", on_delete="RESTRICT")
    name = CharField(max_length=40)
    level = IntegerField(default=0)

    class Meta:
        indexes = ((("building", "name"), True),)


class Room(BaseModel):
    floor = ForeignKeyField(Floor, backref="rooms", on_delete="RESTRICT")
    number = CharField(max_length=40)
    # Floor area in cm² (1 m² = 10,000; used by apportionment by area).
    area_cm2 = BigIntegerField(default=0)
    # shop | office | dorm | common
    kind = CharField(max_length=8, default="shop")

    class Meta:
        indexes = ((("floor", "number"), True),)


class Tenant(BaseModel):
    property = ForeignKeyField(Property, backref="tenants", on_delete="RESTRICT")
    name = CharField(max_length=120, index=True)
    # Comma-separated mobile numbers for SMS.
    phones = CharField(max_length=200, default="")
    contact = CharField(max_length=120, default="")
    # Unified social credit code (a business) or ID card number (a person).
    id_number = CharField(max_length=30, default="")
    note = TextField(default="")
    created_at = DateTimeField(default=utcnow)


class Account(BaseModel):
    """A paying account (户): one wallet, one or more meters."""

    property = ForeignKeyField(Property, backref="accounts", on_delete="RESTRICT")
    tenant = ForeignKeyField(Tenant, backref="accounts", on_delete="RESTRICT")
    room = ForeignKeyField(Room, null=True, backref="accounts", on_delete="RESTRICT")
    number = CharField(max_length=32, unique=True)
    # not_opened | awaiting (opened, awaiting the first payment) | opened | alarm1 | alarm2 |
    # arrears | closed
    status = CharField(max_length=16, default="not_opened", index=True)
    alarm1_fen = BigIntegerField(default=5000)
    alarm2_fen = BigIntegerField(default=2000)
    # Overdraft allowed before arrears (0: arrears at zero).
    credit_limit_fen = BigIntegerField(default=0)
    tariff_electricity = ForeignKeyField(Tariff, null=True, on_delete="RESTRICT")
    tariff_water = ForeignKeyField(
        Tariff, null=True, on_delete="RESTRICT", backref="water_accounts"
    )
    wallet = ForeignKeyField(LedgerAccount, unique=True, on_delete="RESTRICT")
    opened_at = DateTimeField(null=True)
    closed_at = DateTimeField(null=True)
    status_changed_at = DateTimeField(null=True)
    # End of the opening grace of an account awaiting its first payment (None: supply off
    # until then).
    awaiting_until = DateTimeField(null=True)


class Gateway(BaseModel):
    property = ForeignKeyField(Property, backref="gateways", on_delete="RESTRICT")
    name = CharField(max_length=80)
    host = CharField(max_length=120)
    port = IntegerField()
    baud = IntegerField(default=9600)
    parity = CharField(max_length=1, default="E")
    timeout_ms = IntegerField(default=1000)
    enabled = BooleanField(default=True)
    # serial: raw RS-485 bytes over TCP (DL/T 645, CJ/T 188, Modbus-RTU); modbus-tcp: MBAP
    transport = CharField(max_length=12, default="serial")
    created_at = DateTimeField(default=utcnow)
    # Link health, kept by the collector.
    online = BooleanField(default=True)
    last_ok_at = DateTimeField(null=True)
    frames_ok = BigIntegerField(default=0)
    frames_bad = BigIntegerField(default=0)
    timeouts = BigIntegerField(default=0)

    class Meta:
        indexes = ((("host", "port"), True),)


class Meter(BaseModel):
    property = ForeignKeyField(Property, backref="meters", on_delete="RESTRICT")
    account = ForeignKeyField(Account, null=True, backref="meters", on_delete="RESTRICT")
    room = ForeignKeyField(Room, null=True, backref="meters", on_delete="RESTRICT")
    # electricity | water
    kind = CharField(max_length=12, index=True)
    serial = CharField(max_length=40, unique=True)
    # dlt645-2007 | dlt645-1997 | modbus-rtu-tcp | modbus-tcp | cjt188 | mqtt
    protocol = CharField(max_length=20, default="dlt645-2007")
    address = CharField(max_length=20, default="")
    gateway = ForeignKeyField(Gateway, null=True, backref="meters", on_delete="RESTRICT")
    profile = CharField(max_length=40, default="")
    # CT ratio / multiplier applied to register deltas.
    multiplier = IntegerField(default=1)
    # Register wraps to zero at this value (electricity in 0.01 kWh, water in litres).
    register_modulus = BigIntegerField(default=100_000_000)
    # platform: the box deducts; meter: the meter holds the balance (内控).
    prepaid_mode = CharField(max_length=10, default="platform")
    # stock | active | removed
    status = CharField(max_length=10, default="stock", index=True)
    tariff = ForeignKeyField(Tariff, null=True, backref="meters", on_delete="RESTRICT")
    # Largest plausible rate (electricity: W of load, water: litres per hour); a larger
    # delta over an interval is held for review.
    max_rate = IntegerField(default=100_000)
    # Desired supply state (relay on/off, valve open/closed) and why.
    relay_desired = CharField(max_length=3, default="on")
    relay_reason = CharField(max_length=20, default="")
    relay_changed_at = DateTimeField(null=True)
    keep_power = BooleanField(default=False)
    keep_power_by = CharField(max_length=60, default="")
    keep_power_reason = CharField(max_length=200, default="")
    keep_power_until = DateTimeField(null=True)
    installed_at = DateTimeField(null=True)
    removed_at = DateTimeField(null=True)
    # Rating state: the last accepted reading and the carried sub-fen remainder.
    last_read_at = DateTimeField(null=True)
    last_total = BigIntegerField(null=True)
    last_t1 = BigIntegerField(null=True)
    last_t2 = BigIntegerField(null=True)
    last_t3 = BigIntegerField(null=True)
    last_t4 = BigIntegerField(null=True)
    carry = BigIntegerField(default=0)
    # Month-to-date consumption (units after multiplier) for tiered tariffs.
    month_key = IntegerField(default=0)
    month_units = BigIntegerField(default=0)
    # Collection: poll class (interval from configuration), link health, learned capabilities.
    poll_class = CharField(max_length=16, default="tenant")
    online = BooleanField(default=True)
    missed_polls = IntegerField(default=0)
    last_seen_at = DateTimeField(null=True)
    backoff_until = DateTimeField(null=True)
    capabilities = TextField(default="{}")
    # What the meter last confirmed (relay/valve), its power, its own balance (meter mode).
    relay_confirmed = CharField(max_length=3, default="")
    relay_confirmed_at = DateTimeField(null=True)
    power_limit_w = IntegerField(default=0)
    last_power_w = IntegerField(null=True)
    meter_balance_fen = BigIntegerField(null=True)
    purchase_count = IntegerField(default=0)
