"""Usage rollups (per meter per day, per meter per month, per property per day) and covering
indexes for takings per period."""

from peewee import *


def up(migrator, db):
    class Meter(Model):
        class Meta:
            database = db
            table_name = "meter"

    class Property(Model):
        class Meta:
            database = db
            table_name = "property"

    class DailyUsage(Model):
        units = BigIntegerField(default=0)
        charge_fen = BigIntegerField(default=0)
        meter = ForeignKeyField(Meter, on_delete="RESTRICT")
        day = DateField()
        utility = CharField(max_length=12)

        class Meta:
            database = db
            table_name = "daily_usage"
            indexes = ((("meter", "day"), True),)

    db.create_tables([DailyUsage])

    class MonthlyUsage(Model):
        units = BigIntegerField(default=0)
        charge_fen = BigIntegerField(default=0)
        meter = ForeignKeyField(Meter, on_delete="RESTRICT")
        month = IntegerField()
        utility = CharField(max_length=12)

        class Meta:
            database = db
            table_name = "monthly_usage"
            indexes = ((("meter", "month"), True), (("month", "utility", "units"), False))

    db.create_tables([MonthlyUsage])

    class SiteDailyUsage(Model):
        units = BigIntegerField(default=0)
        charge_fen = BigIntegerField(default=0)
        property = ForeignKeyField(Property, on_delete="RESTRICT")
        day = DateField()
        utility = CharField(max_length=12)

        class Meta:
            database = db
            table_name = "site_daily_usage"
            indexes = ((("property", "day", "utility"), True),)

    db.create_tables([SiteDailyUsage])

    migrator.migrate(
        migrator.add_index("sale", ("created_at", "amount_fen"), False),
        migrator.add_index("sale", ("reversed_at", "amount_fen"), False),
    )


def down(migrator, db):
    migrator.migrate(
        migrator.drop_index("sale", "sale_reversed_at_amount_fen"),
        migrator.drop_index("sale", "sale_created_at_amount_fen"),
        migrator.drop_table("site_daily_usage"),
        migrator.drop_table("monthly_usage"),
        migrator.drop_table("daily_usage"),
    )
