"""Opening without a first payment: the account waits for it (supply kept on for a grace
period or kept off, per property) instead of falling into arrears at once.  Friendly
disconnection: per property, no arrears trip in a night window or on marked days (the cut
waits for the window's end), and an optional grace credit before the trip."""

from peewee import *


def up(migrator, db):
    migrator.migrate(migrator.add_column("account", "awaiting_until", DateTimeField(null=True)))
    migrator.migrate(
        migrator.add_column("property", "opening_policy", CharField(max_length=8, default="grace"))
    )
    migrator.migrate(
        migrator.add_column("property", "opening_grace_hours", IntegerField(default=24))
    )
    for name, field in (
        ("friendly_cut", BooleanField(default=False)),
        ("no_cut_start_min", IntegerField(default=20 * 60)),
        ("no_cut_end_min", IntegerField(default=8 * 60)),
        ("no_cut_weekends", BooleanField(default=False)),
        ("no_cut_days", TextField(default="")),
        ("grace_credit_fen", BigIntegerField(default=0)),
    ):
        migrator.migrate(migrator.add_column("property", name, field))


def down(migrator, db):
    migrator.migrate(migrator.drop_column("account", "awaiting_until"))
    migrator.migrate(migrator.drop_column("property", "opening_policy"))
    migrator.migrate(migrator.drop_column("property", "opening_grace_hours"))
    for name in (
        "friendly_cut",
        "no_cut_start_min",
        "no_cut_end_min",
        "no_cut_weekends",
        "no_cut_days",
        "grace_credit_fen",
    ):
        migrator.migrate(migrator.drop_column("property", name))
