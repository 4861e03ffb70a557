import datetime as dt
import os

import pytest

from app.domain.accounts import set_keep_power
from app.domain.actors import SYSTEM, Actor
from app.domain.sales import sell
from app.models import Meter, Reading
from workers import huey
from workers.queue import make_huey
from workers.tasks.control import expire_keep_power_task
from workers.tasks.readings import ingest_readings

REDIS_URL = os.environ.get("MD_TEST_REDIS_URL", "")


def test_ingest_task_rates_readings_and_is_safe_to_retry(site, now):
    assert huey.immediate
    acct, (meter,) = site.account()
    rows = [
        {"meter_id": meter.id, "read_at": (now + dt.timedelta(hours=1)).isoformat(), "total": 500}
    ]
    assert ingest_readings(rows).get() == {"accepted": 1}
    assert ingest_readings(rows).get() == {"duplicate": 1}
    assert Reading.select().where(Reading.meter == meter).count() == 2


def test_keep_power_expiry_runs_as_a_periodic_task(site, now):
    acct, (meter,) = site.account()
    sell(acct, amount_fen=100, method="cash", idempotency_key="a", actor=SYSTEM, now=now)
    past = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(hours=2)
    set_keep_power(
        meter,
        on=True,
        reason="test",
        until=past + dt.timedelta(hours=1),
        actor=Actor("e", "electrician"),
        now=past,
    )
    assert expire_keep_power_task.call_local() == 1
    assert not Meter.get_by_id(meter.id).keep_power


@pytest.mark.skipif(not REDIS_URL, reason="MD_TEST_REDIS_URL not set")
def test_ingest_task_round_trips_through_redis(site, now):
    queue = make_huey({"REDIS_URL": REDIS_URL, "HUEY_IMMEDIATE": False, "STATE_DIR": "/tmp"})
    queue.flush()
    task_fn = queue.task()(ingest_readings.func)
    acct, (meter,) = site.account()
    result = task_fn(
        [{"meter_id": meter.id, "read_at": (now + dt.timedelta(hours=1)).isoformat(), "total": 700}]
    )
    assert queue.pending_count() == 1
    queue.execute(queue.dequeue())
    assert result.get() == {"accepted": 1}
    assert Meter.get_by_id(meter.id).last_total == 700
    queue.flush()
