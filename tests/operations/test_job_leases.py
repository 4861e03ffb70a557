"""Scheduled jobs have one owner at a time: a job whose worker died shows interrupted, is found
by the sweep and is resumed by its own key; a job a live worker runs is left alone."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

from app.domain.actors import SYSTEM
from app.domain.jobs import job_state, requeue_jobs, resume_job, run_job, run_rent
from app.domain.leases import new_owner
from app.domain.ledger import verify_ledger
from app.domain.rent import create_recurring_charge
from app.domain.sales import sell
from app.models import Entry, LedgerAccount
from app.models.operations import Job
from tests.operations.helpers import local

T0 = dt.datetime(2026, 11, 3, 0, 0)


def _dead_owner() -> str:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return f"{new_owner().split(':')[0]}:{proc.pid}:dead"


def test_a_job_a_live_worker_runs_is_not_started_again(app):
    Job.create(
        kind="rent",
        key="rent:1:2026-11-03",
        status="running",
        started_at=T0,
        attempts=1,
        owner=new_owner(),
        lease_until=T0 + dt.timedelta(minutes=5),
    )
    calls = []
    job, ran = run_job("rent", "rent:1:2026-11-03", lambda: calls.append(1) or {}, clock=lambda: T0)
    assert not ran and calls == [] and job_state(job, now=T0) == "running"
    assert requeue_jobs(now=T0) == []


def test_a_job_whose_worker_died_shows_interrupted_and_is_resumed_by_its_key(site, now):
    acct, _ = site.account()
    sell(acct, amount_fen=100000, method="cash", idempotency_key="f", actor=SYSTEM, now=now)
    charge = create_recurring_charge(
        acct,
        kind="rent",
        amount_fen=7000,
        schedule="days",
        interval_days=7,
        start_date=dt.date(2026, 11, 1),
        actor=SYSTEM,
        now=now,
    )
    at = local("2026-11-16 00:15")
    key = f"rent:{site.prop.id}:2026-11-16"
    # the worker was killed after taking the job, before it finished
    Job.create(
        kind="rent",
        key=key,
        property=site.prop.id,
        status="running",
        started_at=at,
        attempts=1,
        owner=_dead_owner(),
        lease_until=at + dt.timedelta(minutes=30),
    )
    job = Job.get(Job.key == key)
    assert job_state(job, now=at) == "interrupted"
    later = at + dt.timedelta(days=1)  # resumed the next day: still the day it was for
    assert requeue_jobs(now=later) == [job.id]
    assert Job.get_by_id(job.id).status == "interrupted"
    assert requeue_jobs(now=later) == []  # queued once
    wallets = sum(
        w.balance_fen
        for w in LedgerAccount.select().where(LedgerAccount.code.startswith("wallet:"))
    )
    summary = resume_job(job.id, now=later)
    assert summary.ran == 1
    done = Job.get_by_id(job.id)
    assert (done.status, done.attempts, json.loads(done.counts)["periods"]) == ("ok", 2, 3)
    assert Entry.select().where(Entry.idempotency_key.startswith(f"rent:{charge.id}:")).count() == 3
    after = sum(
        w.balance_fen
        for w in LedgerAccount.select().where(LedgerAccount.code.startswith("wallet:"))
    )
    assert after == wallets - 21000 and verify_ledger().ok
    assert resume_job(job.id, now=later).ran == 0  # finished: nothing to resume
    assert run_rent(now=at).skipped == 1


def test_a_job_that_failed_for_good_raises_a_staff_alert_with_the_reason(site):
    from app.domain.errors import ValidationError
    from app.domain.jobs import MAX_ATTEMPTS
    from app.models import Event

    def refuse():
        raise ValidationError("rooms have no area")

    for _ in range(MAX_ATTEMPTS):
        assert not Event.select().where(Event.kind == "work.failed").exists()
        run_job("bills", "bills:1:2026-10", refuse, clock=lambda: T0, property_id=site.prop.id)
    (event,) = Event.select().where(Event.kind == "work.failed")
    assert "rooms have no area" in event.data and "bills:1:2026-10" in event.data
