"""Job rows: every scheduled unit is recorded, finished units are skipped, failures are kept
and retried, and the periodic huey tasks run the same code."""

import datetime as dt
import json

import pytest

from app.domain import jobs as jobs_module
from app.domain.actors import SYSTEM, Actor
from app.domain.errors import PermissionDenied, ValidationError
from app.domain.jobs import MAX_ATTEMPTS, JobsFailed, reset_job, run_job, run_water_daily
from app.domain.sales import sell
from app.models.operations import Job
from tests.factories import make_site
from tests.operations.helpers import local, read
from workers.tasks import operations as tasks

T0 = dt.datetime(2026, 11, 3, 0, 0)


def clock():
    return T0


def test_a_finished_job_is_not_run_again(app):
    calls = []
    job, ran = run_job("rent", "k1", lambda: calls.append(1) or {"n": 1}, clock=clock)
    assert (
        ran and job.status == "ok" and json.loads(job.counts) == {"n": 1} and job.finished_at == T0
    )
    job, ran = run_job("rent", "k1", lambda: calls.append(1) or {"n": 1}, clock=clock)
    assert not ran and calls == [1] and job.attempts == 1


def test_a_refusal_is_recorded_and_retried_until_the_limit(app):
    def refuse():
        raise ValidationError("rooms have no area")

    for attempt in range(1, MAX_ATTEMPTS + 1):
        job, ran = run_job("apportionment", "k2", refuse, clock=clock)
        assert (
            ran
            and job.status == "failed"
            and job.error == "rooms have no area"
            and job.attempts == attempt
        )
    job, ran = run_job("apportionment", "k2", refuse, clock=clock)
    assert not ran
    with pytest.raises(PermissionDenied):
        reset_job(job, actor=Actor("c", "cashier"), now=T0)
    reset_job(job, actor=Actor("m", "manager"), now=T0)
    job, ran = run_job("apportionment", "k2", lambda: {"posted": 1}, clock=clock)
    assert ran and job.status == "ok" and job.error == ""
    with pytest.raises(ValidationError):
        reset_job(job, actor=SYSTEM, now=T0)  # only failed jobs


def test_an_unexpected_error_keeps_its_traceback_and_is_raised_for_huey_to_retry(app):
    def crash():
        raise ZeroDivisionError("boom")

    with pytest.raises(ZeroDivisionError):
        run_job("bills", "k3", crash, clock=clock)
    job = Job.get(Job.key == "k3")
    assert (
        job.status == "failed"
        and "ZeroDivisionError: boom" in job.error
        and "Traceback" in job.error
    )


def test_one_property_failing_does_not_stop_the_others(app, now, monkeypatch):
    a, b = make_site(now, code="P1"), make_site(now, code="P2")
    for s in (a, b):
        acct, (w,) = s.account(kinds=("water",))
        sell(
            acct,
            amount_fen=10000,
            method="cash",
            idempotency_key=f"k{s.prop.id}",
            actor=SYSTEM,
            now=now,
        )
        read(w, local("2026-11-02 15:00"), 100)
    real = jobs_module.deduct_water_day

    def flaky(prop, day, **kw):
        if prop.id == a.prop.id:
            raise RuntimeError("disk full")
        return real(prop, day, **kw)

    monkeypatch.setattr(jobs_module, "deduct_water_day", flaky)
    with pytest.raises(JobsFailed):
        run_water_daily(now=local("2026-11-03 00:10"))
    assert Job.get(Job.key == f"water:{a.prop.id}:2026-11-02").status == "failed"
    assert Job.get(Job.key == f"water:{b.prop.id}:2026-11-02").status == "ok"
    monkeypatch.setattr(jobs_module, "deduct_water_day", real)
    summary = run_water_daily(now=local("2026-11-03 01:10"))  # the retry
    assert (summary.ran, summary.skipped) == (1, 1)
    assert Job.get(Job.key == f"water:{a.prop.id}:2026-11-02").attempts == 2


def test_periodic_tasks_are_locked_declare_retries_and_record_jobs(site, now, monkeypatch):
    acct, (w,) = site.account(kinds=("water",))
    read(w, local("2026-11-02 15:00"), 100)
    monkeypatch.setattr(tasks, "utcnow", lambda: local("2026-12-01 03:00"))
    assert tasks.water_daily_task.call_local()["ran"] >= 1
    assert tasks.rent_task.call_local()["ran"] == 1
    assert tasks.apportionment_task.call_local() == {
        "ran": 0,
        "skipped": 0,
        "failed": 0,
        "errors": [],
    }
    assert tasks.bills_task.call_local()["ran"] == 1
    kinds = {j.kind for j in Job.select()}
    assert kinds == {"water.daily", "rent", "bills"}
    for task in (
        tasks.water_daily_task,
        tasks.rent_task,
        tasks.apportionment_task,
        tasks.bills_task,
    ):
        assert task.retries >= 1
    assert tasks.bills_task.call_local() == {"ran": 0, "skipped": 1, "failed": 0, "errors": []}
