"""A room's type (shop, office, dorm, common area), and a tenant's unified social credit code
or ID number."""

from peewee import *


def up(migrator, db):
    migrator.migrate(migrator.add_column("room", "kind", CharField(max_length=8, default="shop")))
    migrator.migrate(
        migrator.add_column("tenant", "id_number", CharField(max_length=30, default=""))
    )


def down(migrator, db):
    migrator.migrate(migrator.drop_column("room", "kind"))
    migrator.migrate(migrator.drop_column("tenant", "id_number"))
