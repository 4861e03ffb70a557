"""Work in progress owned by a worker: who runs a batch (``owner``) and until when that claim
holds (``lease_until``), so that work whose worker died is found and resumed."""

from peewee import *


def up(migrator, db):
    migrator.migrate(
        migrator.add_column("batch_run", "owner", CharField(max_length=80, default="")),
        migrator.add_column("batch_run", "lease_until", DateTimeField(null=True)),
        migrator.add_column("batch_run", "resumed", IntegerField(default=0)),
    )


def down(migrator, db):
    migrator.migrate(
        migrator.drop_column("batch_run", "resumed"),
        migrator.drop_column("batch_run", "lease_until"),
        migrator.drop_column("batch_run", "owner"),
    )
