"""Daily usage rollups per meter, and covering indexes for takings per period."""
from peewee import *


def up(migrator, db):
    class Meter(Model):
        class Meta:
            database = db
            table_name = 'meter'

    class DailyUsage(Model):
        meter = ForeignKeyField(Meter, on_delete='RESTRICT')
        day = DateField()
        utility = CharField(max_length=12)
        units = BigIntegerField(default=0)
        charge_fen = BigIntegerField(default=0)
        class Meta:
            database = db
            table_name = 'daily_usage'
            indexes = ((('meter', 'day'), True), (('day', 'utility', 'meter', 'units'), False))
    db.create_tables([DailyUsage])

    migrator.migrate(
        migrator.add_index('sale', ('created_at', 'amount_fen'), False),
        migrator.add_index('sale', ('reversed_at', 'amount_fen'), False),
    )


def down(migrator, db):
    migrator.migrate(
        migrator.drop_index('sale', 'sale_reversed_at_amount_fen'),
        migrator.drop_index('sale', 'sale_created_at_amount_fen'),
        migrator.drop_table('daily_usage'),
    )
