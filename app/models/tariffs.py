"""Tariffs and their effective-dated versions.  Prices are integers in 1/10000 yuan per
kWh (electricity) or per m3 (water); the version's ``spec`` is JSON (see domain.tariffs)."""

from __future__ import annotations

from peewee import BooleanField, CharField, DateTimeField, ForeignKeyField, TextField

from app.models.base import BaseModel, utcnow
from app.models.property import Property


class Tariff(BaseModel):
    property = ForeignKeyField(Property, backref="tariffs", on_delete="RESTRICT")
    name = CharField(max_length=80)
    # electricity | water
    utility = CharField(max_length=12)
    # flat | tou | tiered
    kind = CharField(max_length=8)
    active = BooleanField(default=True)
    created_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("property", "name"), True),)


class TariffVersion(BaseModel):
    tariff = ForeignKeyField(Tariff, backref="versions", on_delete="RESTRICT")
    effective_from = DateTimeField()
    spec = TextField()
    # Set when an admin accepted a price above the compliance cap.
    override_reason = TextField(default="")
    created_by = CharField(max_length=60)
    created_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("tariff", "effective_from"), True),)
