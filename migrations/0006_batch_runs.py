"""Batch actions on many meters: one row per run with its progress and failures."""

from peewee import *


def up(migrator, db):
    class BatchRun(Model):
        action = CharField(max_length=20)
        params = TextField(default="{}")
        meter_ids = TextField(default="[]")
        total = IntegerField(default=0)
        position = IntegerField(default=0)
        done = IntegerField(default=0)
        failed = IntegerField(default=0)
        failures = TextField(default="[]")
        status = CharField(index=True, max_length=10, default="running")
        created_by = CharField(max_length=60)
        created_role = CharField(max_length=12)
        created_at = DateTimeField(index=True)
        finished_at = DateTimeField(null=True)

        class Meta:
            database = db
            table_name = "batch_run"

    db.create_tables([BatchRun])
