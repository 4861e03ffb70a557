"""Field devices: gateway link health, meter collection state, the command queue."""

from peewee import *


def up(migrator, db):
    class Meter(Model):
        class Meta:
            database = db
            table_name = "meter"

    class Command(Model):
        meter = ForeignKeyField(Meter, on_delete="RESTRICT")
        kind = CharField(max_length=20)
        payload = TextField(default="{}")
        actor = CharField(max_length=60)
        reason = CharField(max_length=200, default="")
        status = CharField(index=True, max_length=12, default="pending")
        idempotency_key = CharField(unique=True, null=True, max_length=100)
        created_at = DateTimeField()
        next_attempt_at = DateTimeField(index=True)
        sent_at = DateTimeField(null=True)
        confirmed_at = DateTimeField(null=True)
        attempts = IntegerField(default=0)
        result = TextField(default="")

        class Meta:
            database = db
            table_name = "command"

    db.create_tables([Command])

    migrator.migrate(
        migrator.add_column("gateway", "transport", CharField(max_length=12, default="serial"))
    )
    migrator.migrate(migrator.add_column("gateway", "online", BooleanField(default=True)))
    migrator.migrate(migrator.add_column("gateway", "last_ok_at", DateTimeField(null=True)))
    migrator.migrate(migrator.add_column("gateway", "frames_ok", BigIntegerField(default=0)))
    migrator.migrate(migrator.add_column("gateway", "frames_bad", BigIntegerField(default=0)))
    migrator.migrate(migrator.add_column("gateway", "timeouts", BigIntegerField(default=0)))
    migrator.migrate(
        migrator.add_column("meter", "poll_class", CharField(max_length=16, default="tenant"))
    )
    migrator.migrate(migrator.add_column("meter", "online", BooleanField(default=True)))
    migrator.migrate(migrator.add_column("meter", "missed_polls", IntegerField(default=0)))
    migrator.migrate(migrator.add_column("meter", "last_seen_at", DateTimeField(null=True)))
    migrator.migrate(migrator.add_column("meter", "backoff_until", DateTimeField(null=True)))
    migrator.migrate(migrator.add_column("meter", "capabilities", TextField(default="{}")))
    migrator.migrate(
        migrator.add_column("meter", "relay_confirmed", CharField(max_length=3, default=""))
    )
    migrator.migrate(migrator.add_column("meter", "relay_confirmed_at", DateTimeField(null=True)))
    migrator.migrate(migrator.add_column("meter", "power_limit_w", IntegerField(default=0)))
    migrator.migrate(migrator.add_column("meter", "last_power_w", IntegerField(null=True)))
    migrator.migrate(migrator.add_column("meter", "meter_balance_fen", BigIntegerField(null=True)))
    migrator.migrate(migrator.add_column("meter", "purchase_count", IntegerField(default=0)))


def down(migrator, db):
    migrator.migrate(migrator.drop_column("meter", "purchase_count"))
    migrator.migrate(migrator.drop_column("meter", "meter_balance_fen"))
    migrator.migrate(migrator.drop_column("meter", "last_power_w"))
    migrator.migrate(migrator.drop_column("meter", "power_limit_w"))
    migrator.migrate(migrator.drop_column("meter", "relay_confirmed_at"))
    migrator.migrate(migrator.drop_column("meter", "relay_confirmed"))
    migrator.migrate(migrator.drop_column("meter", "capabilities"))
    migrator.migrate(migrator.drop_column("meter", "backoff_until"))
    migrator.migrate(migrator.drop_column("meter", "last_seen_at"))
    migrator.migrate(migrator.drop_column("meter", "missed_polls"))
    migrator.migrate(migrator.drop_column("meter", "online"))
    migrator.migrate(migrator.drop_column("meter", "poll_class"))
    migrator.migrate(migrator.drop_column("gateway", "timeouts"))
    migrator.migrate(migrator.drop_column("gateway", "frames_bad"))
    migrator.migrate(migrator.drop_column("gateway", "frames_ok"))
    migrator.migrate(migrator.drop_column("gateway", "last_ok_at"))
    migrator.migrate(migrator.drop_column("gateway", "online"))
    migrator.migrate(migrator.drop_column("gateway", "transport"))
    migrator.migrate(migrator.drop_table("command"))
