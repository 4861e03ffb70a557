"""Usage rollups (用量汇总), kept as readings are rated so pages that show usage over weeks or
months never sum raw readings: per meter per local day, per meter per month, and per property
per day and utility."""

from __future__ import annotations

from peewee import (
    EXCLUDED,
    BigIntegerField,
    CharField,
    DateField,
    ForeignKeyField,
    IntegerField,
    fn,
)

from app.db import is_sqlite
from app.models.base import BaseModel
from app.models.property import Property
from app.models.site import Meter


class _Rollup(BaseModel):
    # Units after the multiplier: 0.01 kWh or litres.
    units = BigIntegerField(default=0)
    # Rated charge (water is deducted by the daily run but rated here the same way).
    charge_fen = BigIntegerField(default=0)

    @classmethod
    def add_many(cls, rows: list[dict], key: list) -> None:
        """Add units and charges to rows by their unique ``key``, creating missing ones: one
        statement per chunk.  MySQL names no conflict target (the unique key decides)."""
        if is_sqlite():
            update = {
                cls.units: cls.units + EXCLUDED.units,
                cls.charge_fen: cls.charge_fen + EXCLUDED.charge_fen,
            }
        else:
            update = {
                cls.units: cls.units + fn.VALUES(cls.units),
                cls.charge_fen: cls.charge_fen + fn.VALUES(cls.charge_fen),
            }
        for i in range(0, len(rows), 300):
            q = cls.insert_many(rows[i : i + 300])
            if is_sqlite():
                q = q.on_conflict(conflict_target=key, update=update)
            else:
                q = q.on_conflict(update=update)
            q.execute()


class DailyUsage(_Rollup):
    meter = ForeignKeyField(Meter, backref="daily_usage", on_delete="RESTRICT")
    # The local date (property time zone) of the readings that closed the intervals.
    day = DateField()
    # electricity | water (the meter's kind)
    utility = CharField(max_length=12)

    class Meta:
        indexes = ((("meter", "day"), True),)


class MonthlyUsage(_Rollup):
    meter = ForeignKeyField(Meter, backref="monthly_usage", on_delete="RESTRICT")
    # Local month as YYYYMM.
    month = IntegerField()
    utility = CharField(max_length=12)

    class Meta:
        indexes = ((("meter", "month"), True), (("month", "utility", "units"), False))


class SiteDailyUsage(_Rollup):
    """A property's usage per local day and utility (the overview's trend)."""

    property = ForeignKeyField(Property, backref="daily_usage", on_delete="RESTRICT")
    day = DateField()
    utility = CharField(max_length=12)

    class Meta:
        indexes = ((("property", "day", "utility"), True),)
