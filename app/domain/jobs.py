"""Scheduled operations and their Job rows.

Each unit of scheduled work has a key and a ``Job`` row (started, finished, counts, error) that
managers see in the console.  ``run_job`` skips a key that finished ``ok`` and one that failed
``MAX_ATTEMPTS`` times (until a manager resets it); the work itself is idempotent as well (ledger
idempotency keys), so a run cut short is simply run again.

The runners below are what the periodic huey tasks call, with the clock passed in:

- ``run_water_daily``: per property, each local day to deduct (``water:{property}:{day}``);
- ``run_rent``: per property, once per local day (``rent:{property}:{day}``);
- ``run_apportionment``: per active group, the previous local month
  (``apportionment:{group}:{YYYY-MM}``), from the group's start month on;
- ``run_bills``: per property, the previous local month (``bills:{property}:{YYYY-MM}``).

A job being run has an ``owner`` (the worker) and a ``lease_until``: a second run leaves a job
alone while its owner lives, and takes it over once the owner's process is gone or its lease ran
out.  The sweep marks such a job ``interrupted`` and queues its task again (``requeue_jobs``),
so the console never shows a job running that no worker runs.

A failure is recorded on its Job and the other units still run.  Failures that are not a
``DomainError`` (a refusal with a message, e.g. rooms without an area) are re-raised as
``JobsFailed`` at the end so that huey retries the task.
"""

from __future__ import annotations

import datetime as dt
import json
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from app.clock import local_date, month_of, previous_month
from app.db import write_tx
from app.domain.actors import SYSTEM, Actor
from app.domain.apportionment import month_label, parse_month, post_apportionment
from app.domain.audit import audit
from app.domain.bills import issue_bills
from app.domain.errors import DomainError, ValidationError
from app.domain.leases import LEASE, abandoned, new_owner
from app.domain.rent import charge_due
from app.domain.water import day_key, days_due, deduct_water_day
from app.i18n import tr
from app.models import Event, Property
from app.models.operations import ApportionmentGroup, Job

KINDS = ("water.daily", "rent", "apportionment", "bills")
MAX_ATTEMPTS = 5
# How long a job's claim holds without its owner being seen to die (a dead owner on this box is
# noticed at once); long enough for the longest unit of work.
JOB_LEASE = dt.timedelta(minutes=30)
Clock = Callable[[], dt.datetime]
Work = Callable[[], dict[str, int]]


class JobsFailed(RuntimeError):
    """Some units of a scheduled run failed unexpectedly (recorded on their Job rows)."""


@dataclass
class RunSummary:
    """What one scheduled run did across its units."""

    ran: int = 0
    skipped: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def run_job(
    kind: str,
    key: str,
    work: Callable[[], dict[str, int]],
    *,
    clock: Clock,
    property_id: int | None = None,
) -> tuple[Job, bool]:
    """Run ``work`` under the Job ``key`` unless it finished before; returns (job, ran).

    A ``DomainError`` marks the job failed with its message; any other exception marks it
    failed with the traceback and is raised again.
    """
    owner = new_owner()
    with write_tx():
        job = Job.get_or_none(Job.key == key)
        if job is not None and (
            job.status == "ok" or (job.status == "failed" and job.attempts >= MAX_ATTEMPTS)
        ):
            return job, False
        started = clock()
        if (
            job is not None
            and job.status == "running"
            and not abandoned(job.owner, job.lease_until, started)
        ):
            return job, False  # a live worker runs it
        if job is None:
            job = Job.create(
                kind=kind,
                key=key,
                property=property_id,
                status="running",
                started_at=started,
                attempts=1,
                owner=owner,
                lease_until=started + JOB_LEASE,
            )
        else:
            taken = (
                Job.update(
                    status="running",
                    started_at=started,
                    finished_at=None,
                    attempts=Job.attempts + 1,
                    error="",
                    owner=owner,
                    lease_until=started + JOB_LEASE,
                )
                .where((Job.id == job.id) & (Job.status == job.status) & (Job.owner == job.owner))
                .execute()
            )
            if not taken:
                return Job.get_by_id(job.id), False
    try:
        counts = work()
    except DomainError as exc:
        _finish(job.id, owner, "failed", {}, exc.message, clock)
        return Job.get_by_id(job.id), True
    except Exception:
        _finish(job.id, owner, "failed", {}, traceback.format_exc()[-4000:], clock)
        raise
    _finish(job.id, owner, "ok", counts, "", clock)
    return Job.get_by_id(job.id), True


def _finish(
    job_id: int, owner: str, status: str, counts: dict[str, int], error: str, clock: Clock
) -> None:
    with write_tx():
        finished = (
            Job.update(
                status=status,
                finished_at=clock(),
                counts=json.dumps(counts, sort_keys=True),
                error=error,
                lease_until=None,
            )
            .where((Job.id == job_id) & (Job.owner == owner))
            .execute()
        )
        job = Job.get_by_id(job_id)
        if finished and status == "failed" and job.attempts >= MAX_ATTEMPTS and job.property_id:
            # no further automatic attempt: staff see it among the alerts, with the reason
            Event.create(
                kind="work.failed",
                property=job.property_id,
                created_at=clock(),
                data=json.dumps(
                    {"work": "job", "id": job.id, "key": job.key, "error": error[-500:]},
                    ensure_ascii=False,
                ),
            )


def job_state(job: Job, *, now: dt.datetime) -> str:
    """The status to show: a running job whose worker is gone is ``interrupted``."""
    if job.status == "running" and abandoned(job.owner, job.lease_until, now):
        return "interrupted"
    return job.status


def requeue_jobs(*, now: dt.datetime) -> list[int]:
    """Mark running jobs whose worker is gone ``interrupted``; returns the ids of the jobs for
    the caller to queue ``resume_job`` for (an interrupted job waiting in the queue is queued
    again only once its wait has run out)."""
    ids: list[int] = []
    for job in Job.select().where(Job.status.in_(("running", "interrupted"))).order_by(Job.id):
        if job.status == "running":
            if not abandoned(job.owner, job.lease_until, now):
                continue
            with write_tx():
                Job.update(
                    status="interrupted",
                    error=tr("its worker stopped while it ran; it is being resumed"),
                    lease_until=now + LEASE,
                ).where(
                    (Job.id == job.id) & (Job.status == "running") & (Job.owner == job.owner)
                ).execute()
        elif job.lease_until is not None and job.lease_until > now:
            continue  # queued again a moment ago
        else:
            with write_tx():
                Job.update(lease_until=now + LEASE).where(
                    (Job.id == job.id) & (Job.status == "interrupted")
                ).execute()
        ids.append(job.id)
    return ids


def reset_job(job: Job, *, actor: Actor, now: dt.datetime) -> Job:
    """Let a failed job run again with the next run of its task (attempts start over)."""
    actor.require("operations.run")
    with write_tx():
        job = Job.get_by_id(job.id)
        if job.status != "failed":
            raise ValidationError(tr("only a failed job can be run again"), "job")
        Job.update(attempts=0).where(Job.id == job.id).execute()
        audit(actor, "job.reset", job, now=now, key=job.key)
    return Job.get_by_id(job.id)


def _unit(
    summary: RunSummary,
    kind: str,
    key: str,
    work: Callable[[], dict[str, int]],
    *,
    clock: Clock,
    property_id: int | None,
) -> None:
    try:
        job, ran = run_job(kind, key, work, clock=clock, property_id=property_id)
    except Exception as exc:  # noqa: BLE001 - recorded on the Job; the other units still run
        summary.failed += 1
        summary.errors.append(f"{key}: {type(exc).__name__}: {exc}")
        return
    if not ran:
        summary.skipped += 1
    elif job.status == "failed":
        summary.failed += 1
    else:
        summary.ran += 1


def _raise_unexpected(summary: RunSummary) -> RunSummary:
    if summary.errors:
        raise JobsFailed("; ".join(summary.errors))
    return summary


def _water_work(prop: Property, day: dt.date, *, actor: Actor, now: dt.datetime) -> Work:
    def work() -> dict[str, int]:
        res = deduct_water_day(prop, day, actor=actor, now=now)
        return {
            "accounts": res.accounts,
            "readings": res.readings,
            "amount_fen": res.amount_fen,
            "posted": int(res.created),
        }

    return work


def _rent_work(prop: Property, today: dt.date, *, actor: Actor, now: dt.datetime) -> Work:
    return lambda: charge_due(prop, today=today, actor=actor, now=now).counts()


def _apportionment_work(
    group: ApportionmentGroup, month: int, *, actor: Actor, now: dt.datetime
) -> Work:
    def work() -> dict[str, int]:
        run, created = post_apportionment(group, month, actor=actor, now=now)
        return {
            "posted": int(created),
            "amount_fen": run.amount_fen,
            "units": run.units,
            "accounts": run.parts.count(),
        }

    return work


def _bills_work(prop: Property, month: int, *, actor: Actor, now: dt.datetime) -> Work:
    return lambda: issue_bills(prop, month=month, actor=actor, now=now)


def run_water_daily(
    *, now: dt.datetime, clock: Clock | None = None, actor: Actor = SYSTEM
) -> RunSummary:
    """Deduct each finished local day's water, per property (catching up missed days)."""
    clock = clock or (lambda: now)
    summary = RunSummary()
    for prop in Property.select().order_by(Property.id):
        for day in days_due(prop, now=now):
            _unit(
                summary,
                "water.daily",
                day_key(prop.id, day),
                _water_work(prop, day, actor=actor, now=now),
                clock=clock,
                property_id=prop.id,
            )
    return _raise_unexpected(summary)


def run_rent(*, now: dt.datetime, clock: Clock | None = None, actor: Actor = SYSTEM) -> RunSummary:
    """Charge the rent and fees due by today (local), once a day per property."""
    clock = clock or (lambda: now)
    summary = RunSummary()
    for prop in Property.select().order_by(Property.id):
        today = local_date(now, prop)
        _unit(
            summary,
            "rent",
            f"rent:{prop.id}:{today.isoformat()}",
            _rent_work(prop, today, actor=actor, now=now),
            clock=clock,
            property_id=prop.id,
        )
    return _raise_unexpected(summary)


def run_apportionment(
    *, now: dt.datetime, clock: Clock | None = None, actor: Actor = SYSTEM
) -> RunSummary:
    """Post the previous local month of each active group (from its start month on)."""
    clock = clock or (lambda: now)
    summary = RunSummary()
    groups = (
        ApportionmentGroup.select(ApportionmentGroup, Property)
        .join(Property)
        .where(ApportionmentGroup.active == True)
        .order_by(ApportionmentGroup.id)
    )
    for group in groups:
        month = previous_month(month_of(now, group.property))
        if month < group.start_month:
            continue
        _unit(
            summary,
            "apportionment",
            f"apportionment:{group.id}:{month_label(month)}",
            _apportionment_work(group, month, actor=actor, now=now),
            clock=clock,
            property_id=group.property_id,
        )
    return _raise_unexpected(summary)


def run_bills(*, now: dt.datetime, clock: Clock | None = None, actor: Actor = SYSTEM) -> RunSummary:
    """Issue the previous local month's bills, per property."""
    clock = clock or (lambda: now)
    summary = RunSummary()
    for prop in Property.select().order_by(Property.id):
        month = previous_month(month_of(now, prop))
        _unit(
            summary,
            "bills",
            f"bills:{prop.id}:{month_label(month)}",
            _bills_work(prop, month, actor=actor, now=now),
            clock=clock,
            property_id=prop.id,
        )
    return _raise_unexpected(summary)


def resume_job(
    job_id: int, *, now: dt.datetime, clock: Clock | None = None, actor: Actor = SYSTEM
) -> RunSummary:
    """Run again the unit of work of an interrupted job, named by its key (the day or month it
    was for, which may no longer be the one its task would pick today)."""
    clock = clock or (lambda: now)
    summary = RunSummary()
    job = Job.get_or_none(Job.id == job_id)
    if job is None or job.status not in ("running", "interrupted"):
        return summary
    _, owner_id, when = job.key.split(":", 2)
    if job.kind == "apportionment":
        group = ApportionmentGroup.get_by_id(int(owner_id))
        work = _apportionment_work(group, parse_month(when), actor=actor, now=now)
        prop_id = group.property_id
    else:
        prop = Property.get_by_id(int(owner_id))
        prop_id = prop.id
        if job.kind == "water.daily":
            work = _water_work(prop, dt.date.fromisoformat(when), actor=actor, now=now)
        elif job.kind == "rent":
            work = _rent_work(prop, dt.date.fromisoformat(when), actor=actor, now=now)
        else:
            work = _bills_work(prop, parse_month(when), actor=actor, now=now)
    _unit(summary, job.kind, job.key, work, clock=clock, property_id=prop_id)
    return _raise_unexpected(summary)
