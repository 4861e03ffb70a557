"""Batch actions on many meters (read now, trip, restore prepaid, keep power...): one row per
run, with its progress, so the console can poll it and staff can leave and come back."""

from __future__ import annotations

from peewee import CharField, DateTimeField, IntegerField, TextField

from app.models.base import BaseModel, utcnow


class BatchRun(BaseModel):
    """running -> done (every item tried; some may have failed) | failed (the run itself broke).

    ``meter_ids`` is the JSON list of items in order; ``position`` is how many of them have been
    tried, so a re-run carries on where the last one stopped.  ``failures`` is a JSON list of
    ``{"meter_id", "serial", "error"}``.

    ``owner`` is the worker running it (empty while it waits in the queue) and ``lease_until``
    how long that claim holds; a worker renews it after each chunk.  A running batch whose lease
    ran out, or whose owner's process is gone, was interrupted: the sweep queues it again and
    ``resumed`` counts how often that happened.
    """

    # read | trip | restore | keep_power | release | push_price | push_thresholds
    action = CharField(max_length=20)
    params = TextField(default="{}")
    meter_ids = TextField(default="[]")
    total = IntegerField(default=0)
    position = IntegerField(default=0)
    done = IntegerField(default=0)
    failed = IntegerField(default=0)
    failures = TextField(default="[]")
    # running | done | failed
    status = CharField(max_length=10, default="running", index=True)
    created_by = CharField(max_length=60)
    created_role = CharField(max_length=12)
    created_at = DateTimeField(default=utcnow, index=True)
    finished_at = DateTimeField(null=True)
    owner = CharField(max_length=80, default="")
    lease_until = DateTimeField(null=True)
    resumed = IntegerField(default=0)
