"""Review of held readings: an index on the reading status for the review queue and its count
in the top bar."""

from peewee import *


def up(migrator, db):
    migrator.migrate(migrator.add_index("reading", ("status",), False))


def down(migrator, db):
    migrator.migrate(migrator.drop_index("reading", "reading_status"))
