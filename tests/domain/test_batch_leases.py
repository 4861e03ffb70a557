"""Batch runs have one owner at a time: a second copy of a run acts on nothing, a run whose
worker died is found by the sweep and carries on from its position exactly once."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

from app.domain.actors import Actor
from app.domain.batch import (
    _claim,
    _run_chunk,
    batch_state,
    requeue_abandoned,
    run_batch,
    start_batch,
)
from app.domain.leases import LEASE, abandoned, new_owner, owner_alive
from app.models import AuditLog, BatchRun, Meter

ELECTRICIAN = Actor("e", "electrician")


def _dead_owner() -> str:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    host = new_owner().split(":")[0]
    return f"{host}:{proc.pid}:dead"


def _trip_batch(site, n: int) -> BatchRun:
    ids = [site.account(initial=100_00)[1][0].id for _ in range(n)]
    return start_batch("trip", ids, actor=ELECTRICIAN, now=site.now, params={"reason": "t"})


def test_an_owner_on_this_box_whose_process_is_gone_has_abandoned_its_work(now):
    assert owner_alive(new_owner())
    assert not owner_alive(_dead_owner())
    assert owner_alive("other-box:1:x")  # another box: only its lease can tell
    assert not abandoned(new_owner(), now + LEASE, now)
    assert abandoned(_dead_owner(), now + LEASE, now)
    assert abandoned("other-box:1:x", now, now) and not abandoned("other-box:1:x", now + LEASE, now)


def test_a_run_held_by_a_live_worker_is_left_alone_by_a_second_copy(site, now):
    run = _trip_batch(site, 3)
    assert _claim(run.id, new_owner(), now=now)
    assert run_batch(run.id, now=now).position == 0
    assert not _claim(run.id, new_owner(), now=now)
    assert batch_state(BatchRun.get_by_id(run.id), now=now) == "running"


def test_a_copy_that_lost_its_claim_cannot_move_the_position(site, now):
    run = _trip_batch(site, 4)
    first, second = new_owner(), new_owner()
    assert _claim(run.id, first, now=now)
    assert _run_chunk(BatchRun.get_by_id(run.id), first, chunk=2, now=now)
    later = now + LEASE + dt.timedelta(seconds=1)  # the first copy stalled past its lease
    assert _claim(run.id, second, now=later)
    assert not _run_chunk(BatchRun.get_by_id(run.id), first, chunk=2, now=later)
    assert BatchRun.get_by_id(run.id).position == 2
    assert _run_chunk(BatchRun.get_by_id(run.id), second, chunk=2, now=later)
    assert not _run_chunk(BatchRun.get_by_id(run.id), second, chunk=2, now=later)  # done
    done = BatchRun.get_by_id(run.id)
    assert (done.status, done.position, done.done) == ("done", 4, 4)
    assert AuditLog.select().where(AuditLog.action == "meter.force_off").count() == 4


def test_a_batch_killed_mid_way_is_requeued_by_the_sweep_and_resumes_from_its_position(site, now):
    run = _trip_batch(site, 5)
    ids = [int(i) for i in run.meter_ids.strip("[]").split(",")]
    owner = new_owner()
    assert _claim(run.id, owner, now=now)
    assert _run_chunk(BatchRun.get_by_id(run.id), owner, chunk=2, now=now)
    # the worker dies: its owner id now names a process that is gone
    BatchRun.update(owner=_dead_owner()).where(BatchRun.id == run.id).execute()
    assert batch_state(BatchRun.get_by_id(run.id), now=now) == "interrupted"
    assert requeue_abandoned(now=now) == [run.id]
    assert requeue_abandoned(now=now) == []  # queued once, not on every sweep
    assert batch_state(BatchRun.get_by_id(run.id), now=now) == "resuming"
    done = run_batch(run.id, now=now)
    assert (done.status, done.position, done.done, done.resumed) == ("done", 5, 5, 1)
    assert Meter.select().where(Meter.id.in_(ids) & (Meter.relay_desired == "off")).count() == 5
    assert AuditLog.select().where(AuditLog.action == "meter.force_off").count() == 5
    assert batch_state(done, now=now) == "done"


def test_a_queued_batch_whose_task_was_lost_is_queued_again_once_its_wait_runs_out(site, now):
    run = _trip_batch(site, 1)
    assert batch_state(run, now=now) == "queued"
    assert requeue_abandoned(now=now) == []
    assert requeue_abandoned(now=now + LEASE) == [run.id]
    assert BatchRun.get_by_id(run.id).resumed == 0


def test_a_batch_that_cannot_finish_raises_a_staff_alert_with_the_reason(site, now, client):
    from app.domain.batch import fail_batch
    from app.models import Event

    run = _trip_batch(site, 2)
    fail_batch(run.id, "OperationalError: disk I/O error", now=now)
    fail_batch(run.id, "again", now=now)  # already stopped: no second alert
    (event,) = Event.select().where(Event.kind == "work.failed")
    assert event.property_id == site.prop.id and "disk I/O error" in event.data
    assert BatchRun.get_by_id(run.id).status == "failed"
