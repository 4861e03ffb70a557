"""Usage rollups (用量汇总), kept as readings are rated so pages that show usage over weeks or
months never sum raw readings: per meter per local day, per meter per month, and per property
per day and utility."""

from __future__ import annotations

import datetime as dt

from peewee import (
    BigIntegerField,
    CharField,
    DateField,
    ForeignKeyField,
    IntegerField,
    fn,
)

from app.db import db, is_sqlite
from app.models.base import BaseModel
from app.models.property import Property
from app.models.site import Meter


class _Rollup(BaseModel):
    # Units after the multiplier: 0.01 kWh or litres.
    units = BigIntegerField(default=0)
    # Rated charge (water is deducted by the daily run but rated here the same way).
    charge_fen = BigIntegerField(default=0)

    @classmethod
    def add_many(cls, columns: tuple[str, ...], key: tuple[str, ...], rows: list[tuple]) -> None:
        """Add units and charges to rows by their unique ``key`` columns, creating missing
        ones.  ``rows`` hold values for ``columns`` (which include ``units`` and
        ``charge_fen``).  SQLite: one prepared upsert over all rows; MySQL: multi-row
        upserts, which name no conflict target (the unique key decides)."""
        if not rows:
            return
        if is_sqlite():
            names = ", ".join(f'"{c}"' for c in columns)
            marks = ", ".join("?" * len(columns))
            sql = (
                f'INSERT INTO "{cls._meta.table_name}" ({names}) VALUES ({marks}) '
                f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET "
                '"units" = "units" + excluded."units", "charge_fen" = "charge_fen" + excluded."charge_fen"'
            )
            db.cursor().executemany(sql, [tuple(_sqlite_value(v) for v in row) for row in rows])
            return
        update = {
            cls.units: cls.units + fn.VALUES(cls.units),
            cls.charge_fen: cls.charge_fen + fn.VALUES(cls.charge_fen),
        }
        fields = [cls._meta.columns[c] for c in columns]
        for i in range(0, len(rows), 500):
            cls.insert_many(rows[i : i + 500], fields=fields).on_conflict(update=update).execute()


def _sqlite_value(value: object) -> object:
    return value.isoformat() if isinstance(value, dt.date) else value


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
