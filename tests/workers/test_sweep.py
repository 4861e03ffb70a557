"""The sweep (huey immediate mode here): a batch, a job and a command whose worker died are all
picked up again in one pass."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

from app.domain.actors import SYSTEM, Actor
from app.domain.batch import start_batch
from app.domain.control import force_supply
from app.domain.leases import LEASE, new_owner
from app.domain.rent import create_recurring_charge
from app.domain.sales import sell
from app.models import BatchRun, Command
from app.models.operations import Job
from workers.tasks.sweep import sweep


def _dead_owner() -> str:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return f"{new_owner().split(':')[0]}:{proc.pid}:dead"


def test_one_sweep_resumes_a_batch_a_job_and_frees_a_command_whose_worker_died(site, now):
    far = dt.datetime(2100, 1, 1)  # leases still valid: only the dead owner tells
    ids = [site.account(initial=100_00)[1][0].id for _ in range(3)]
    run = start_batch("trip", ids, actor=Actor("e", "electrician"), now=now, params={"reason": "t"})
    BatchRun.update(owner=_dead_owner(), lease_until=far, position=1).where(
        BatchRun.id == run.id
    ).execute()
    acct, (m,) = site.account()
    sell(acct, amount_fen=100000, method="cash", idempotency_key="f", actor=SYSTEM, now=now)
    create_recurring_charge(
        acct,
        kind="rent",
        amount_fen=7000,
        schedule="days",
        interval_days=7,
        start_date=dt.date(2026, 11, 1),
        end_date=dt.date(2026, 11, 16),
        actor=SYSTEM,
        now=now,
    )
    job = Job.create(
        kind="rent",
        key=f"rent:{site.prop.id}:2026-11-16",
        property=site.prop.id,
        status="running",
        started_at=now,
        attempts=1,
        owner=_dead_owner(),
        lease_until=far,
    )
    force_supply(m, on=False, actor=Actor("e", "electrician"), now=now, reason="t")
    cmd = Command.get((Command.meter == m.id) & (Command.status == "pending"))
    Command.update(owner=_dead_owner(), lease_until=far + LEASE).where(
        Command.id == cmd.id
    ).execute()

    queued = sweep(starting=True)

    assert queued["batches"] == [run.id] and queued["jobs"] == [job.id]
    assert queued["commands"] == [cmd.id]
    done = BatchRun.get_by_id(run.id)
    assert (done.status, done.position, done.done, done.resumed) == ("done", 3, 2, 1)
    assert Job.get_by_id(job.id).status == "ok"
    assert Command.get_by_id(cmd.id).owner == ""
    assert sweep() == {"batches": [], "jobs": [], "commands": []}
