"""Opening without a first payment: the account waits for it (supply kept on for a grace
period or kept off, per property) instead of falling into arrears at once."""

from peewee import *


def up(migrator, db):
    migrator.migrate(migrator.add_column("account", "awaiting_until", DateTimeField(null=True)))
    migrator.migrate(
        migrator.add_column("property", "opening_policy", CharField(max_length=8, default="grace"))
    )
    migrator.migrate(
        migrator.add_column("property", "opening_grace_hours", IntegerField(default=24))
    )


def down(migrator, db):
    migrator.migrate(migrator.drop_column("account", "awaiting_until"))
    migrator.migrate(migrator.drop_column("property", "opening_policy"))
    migrator.migrate(migrator.drop_column("property", "opening_grace_hours"))
