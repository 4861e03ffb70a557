"""Work in progress owned by a worker: who runs a batch, a scheduled job or sends a meter
command (``owner``) and until
when that claim holds (``lease_until``), so that work whose worker died is found and resumed;
a job can be ``interrupted`` (a longer status column)."""

from peewee import *


def up(migrator, db):
    migrator.migrate(
        migrator.add_column("batch_run", "owner", CharField(max_length=80, default="")),
        migrator.add_column("batch_run", "lease_until", DateTimeField(null=True)),
        migrator.add_column("batch_run", "resumed", IntegerField(default=0)),
        migrator.add_column("job", "owner", CharField(max_length=80, default="")),
        migrator.add_column("job", "lease_until", DateTimeField(null=True)),
        migrator.alter_column_type("job", "status", CharField(max_length=12)),
        migrator.add_column("command", "owner", CharField(max_length=80, default="")),
        migrator.add_column("command", "lease_until", DateTimeField(null=True)),
    )


def down(migrator, db):
    migrator.migrate(
        migrator.drop_column("command", "lease_until"),
        migrator.drop_column("command", "owner"),
        migrator.alter_column_type("job", "status", CharField(max_length=10)),
        migrator.drop_column("job", "lease_until"),
        migrator.drop_column("job", "owner"),
        migrator.drop_column("batch_run", "resumed"),
        migrator.drop_column("batch_run", "lease_until"),
        migrator.drop_column("batch_run", "owner"),
    )
