"""A room's type (shop, office, dorm, common area), set when rooms are added or edited."""

from peewee import *


def up(migrator, db):
    migrator.migrate(migrator.add_column("room", "kind", CharField(max_length=8, default="shop")))


def down(migrator, db):
    migrator.migrate(migrator.drop_column("room", "kind"))
