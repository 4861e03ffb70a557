"""Batch actions on many meters: read now, trip, restore prepaid, keep power / release, push
price, push thresholds.

``start_batch`` checks the permission and the parameters once and records a ``BatchRun``;
``run_batch`` (called by the worker task) performs the items in chunks through the same domain
functions a single-meter action uses, recording progress and per-item failures after each chunk.
A run is claimed by one worker at a time (``owner`` and ``lease_until``, see
``app.domain.leases``).  Each chunk's items and the move of ``position`` past them commit in one
transaction, and the move is a compare-and-set on (owner, position): a run killed at any point
carries on from ``position`` exactly once, and a second copy of the same run acts on nothing.
``requeue_abandoned`` (called by the sweep) finds runs whose worker died.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable
from typing import Any

from app.db import write_tx
from app.domain.accounts import set_keep_power
from app.domain.actors import Actor
from app.domain.audit import audit
from app.domain.control import force_supply, queue_read
from app.domain.errors import DomainError, NotFound, ValidationError
from app.domain.leases import LEASE, abandoned, new_owner
from app.domain.money import parse_yuan
from app.domain.status import refresh_accounts
from app.i18n import tr
from app.models import Account, BatchRun, Event, Meter, Tariff

# action -> permission it needs (besides batch.run)
ACTIONS: dict[str, str] = {
    "read": "meter.control",
    "trip": "meter.control",
    "restore": "meter.control",
    "keep_power": "meter.keep_power",
    "release": "meter.keep_power",
    "push_price": "meter.settings",
    "push_thresholds": "meter.settings",
}
NEEDS_REASON = ("trip", "restore", "keep_power")
CHUNK = 25
MAX_ITEMS = 20000


def _clean_params(action: str, params: dict[str, Any]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    if action in NEEDS_REASON:
        reason = str(params.get("reason", "") or "").strip()[:200]
        if not reason:
            raise ValidationError(tr("say why"), "reason")
        clean["reason"] = reason
    elif action == "release":
        clean["reason"] = str(params.get("reason", "") or "").strip()[:200]
    if action == "push_price":
        raw = str(params.get("tariff_id", "") or "")
        tariff = Tariff.get_or_none(Tariff.id == int(raw)) if raw.isdigit() else None
        if tariff is None:
            raise ValidationError(tr("choose a tariff"), "tariff_id")
        clean["tariff_id"] = tariff.id
    if action == "push_thresholds":
        alarm1 = parse_yuan(params.get("alarm1", ""), "alarm1", allow_zero=True)
        alarm2 = parse_yuan(params.get("alarm2", ""), "alarm2", allow_zero=True)
        if alarm2 > alarm1:
            raise ValidationError(tr("alarm 2 must not be above alarm 1"), "alarm2")
        clean.update(alarm1_fen=alarm1, alarm2_fen=alarm2)
    return clean


def start_batch(
    action: str,
    meter_ids: Iterable[int],
    *,
    actor: Actor,
    now: dt.datetime,
    params: dict[str, Any] | None = None,
) -> BatchRun:
    """Record a batch run; the caller queues ``run_batch`` for it after this returns."""
    if action not in ACTIONS:
        raise ValidationError(tr("unknown batch action"), "action")
    actor.require("batch.run")
    actor.require(ACTIONS[action])
    ids = list(dict.fromkeys(int(i) for i in meter_ids))
    if not ids:
        raise ValidationError(tr("select at least one meter"), "meter_id")
    if len(ids) > MAX_ITEMS:
        raise ValidationError(tr("at most %(n)s meters in one batch", n=MAX_ITEMS), "meter_id")
    clean = _clean_params(action, params or {})
    with write_tx():
        run = BatchRun.create(
            action=action,
            params=json.dumps(clean),
            meter_ids=json.dumps(ids),
            total=len(ids),
            created_by=actor.name,
            created_role=actor.role,
            created_at=now,
            lease_until=now + LEASE,
        )
        audit(actor, "batch.start", run, now=now, batch_action=action, total=len(ids), **clean)
    return run


def _push_price(meter: Meter, *, actor: Actor, now: dt.datetime, tariff_id: int) -> None:
    tariff = Tariff.get_by_id(tariff_id)
    if tariff.property_id != meter.property_id or tariff.utility != meter.kind:
        raise ValidationError(tr("that tariff does not fit this meter"), "tariff_id")
    if meter.prepaid_mode == "meter":
        # The box does not rate a meter that holds its own balance, and no driver can write
        # prices into one yet: say so rather than report a push that did not happen.
        raise ValidationError(
            tr("this meter keeps its own balance; its prices cannot be pushed yet"), "tariff_id"
        )
    with write_tx():
        Meter.update(tariff=tariff.id).where(Meter.id == meter.id).execute()
        audit(actor, "meter.price_push", meter, now=now, tariff=tariff.id)


def _push_thresholds(
    meter: Meter, *, actor: Actor, now: dt.datetime, alarm1_fen: int, alarm2_fen: int
) -> None:
    if not meter.account_id:
        raise ValidationError(tr("the meter has no account"), "meter_id")
    with write_tx():
        Account.update(alarm1_fen=alarm1_fen, alarm2_fen=alarm2_fen).where(
            Account.id == meter.account_id
        ).execute()
        refresh_accounts([meter.account_id], now=now)
        audit(
            actor,
            "account.thresholds",
            Account.get_by_id(meter.account_id),
            now=now,
            alarm1_fen=alarm1_fen,
            alarm2_fen=alarm2_fen,
            meter=meter.id,
        )


def _perform(
    action: str, meter: Meter, params: dict[str, Any], *, actor: Actor, now: dt.datetime
) -> None:
    if meter.status != "active" and action != "push_price":
        raise ValidationError(tr("the meter is not in service"), "meter_id")
    reason = params.get("reason", "")
    steps: dict[str, Callable[[], Any]] = {
        "read": lambda: queue_read(meter, actor=actor, now=now),
        "trip": lambda: force_supply(meter, on=False, actor=actor, now=now, reason=reason),
        "restore": lambda: force_supply(meter, on=True, actor=actor, now=now, reason=reason),
        "keep_power": lambda: set_keep_power(meter, on=True, actor=actor, now=now, reason=reason),
        "release": lambda: set_keep_power(meter, on=False, actor=actor, now=now, reason=reason),
        "push_price": lambda: _push_price(
            meter, actor=actor, now=now, tariff_id=params["tariff_id"]
        ),
        "push_thresholds": lambda: _push_thresholds(
            meter,
            actor=actor,
            now=now,
            alarm1_fen=params["alarm1_fen"],
            alarm2_fen=params["alarm2_fen"],
        ),
    }
    steps[action]()


def _claim(run_id: int, owner: str, *, now: dt.datetime) -> bool:
    """Take the run for ``owner`` unless a live worker holds it (compare-and-set)."""
    with write_tx():
        run = BatchRun.get_or_none(BatchRun.id == run_id)
        if run is None or run.status != "running":
            return False
        if run.owner and not abandoned(run.owner, run.lease_until, now):
            return False
        taken = (
            BatchRun.update(
                owner=owner,
                lease_until=now + LEASE,
                resumed=BatchRun.resumed + (1 if run.owner else 0),  # took over from a dead one
            )
            .where(
                (BatchRun.id == run_id)
                & (BatchRun.status == "running")
                & (BatchRun.owner == run.owner)
                & (BatchRun.position == run.position)
            )
            .execute()
        )
    return taken == 1


def _release(run_id: int, owner: str) -> None:
    """Give the claim back (the attempt stopped on an error; a retry may take it at once)."""
    with write_tx():
        BatchRun.update(owner="").where(
            (BatchRun.id == run_id) & (BatchRun.owner == owner)
        ).execute()


def run_batch(
    run_id: int,
    *,
    now: dt.datetime,
    chunk: int = CHUNK,
    clock: Callable[[], dt.datetime] | None = None,
) -> BatchRun:
    """Perform the remaining items of a run; safe to call again on a finished or broken run,
    and while another worker runs it (this call then does nothing)."""
    run = BatchRun.get_or_none(BatchRun.id == run_id)
    if run is None:
        raise NotFound(tr("no such batch"))
    if run.status != "running":
        return run
    clock = clock or (lambda: now)
    owner = new_owner()
    if not _claim(run_id, owner, now=clock()):
        return BatchRun.get_by_id(run_id)
    try:
        while _run_chunk(run, owner, chunk=chunk, now=clock()):
            pass
    except BaseException:
        _release(run_id, owner)
        raise
    return BatchRun.get_by_id(run.id)


def _run_chunk(run: BatchRun, owner: str, *, chunk: int, now: dt.datetime) -> bool:
    """Perform the next chunk; False when there is nothing left for this owner to do."""
    actor = Actor(run.created_by, run.created_role)
    params = json.loads(run.params or "{}")
    ids: list[int] = json.loads(run.meter_ids or "[]")
    with write_tx():
        fresh = BatchRun.get_by_id(run.id)
        mine = (BatchRun.id == run.id) & (BatchRun.owner == owner) & (BatchRun.status == "running")
        position = fresh.position
        if fresh.owner != owner or fresh.status != "running":
            return False
        if position >= len(ids):
            BatchRun.update(status="done", finished_at=now, lease_until=None).where(mine).execute()
            return False
        part = ids[position : position + chunk]
        # Move the position first: the row is now locked by this transaction, and a second copy
        # of the run that read the same position finds it gone and stops.
        moved = (
            BatchRun.update(position=position + len(part), lease_until=now + LEASE)
            .where(mine & (BatchRun.position == position))
            .execute()
        )
        if moved != 1:
            return False
        meters = {m.id: m for m in Meter.select().where(Meter.id.in_(part))}
        ok, failures = 0, []
        for mid in part:
            meter = meters.get(mid)
            try:
                if meter is None:
                    raise NotFound(tr("no such meter"))
                with write_tx():  # a savepoint: a refused item leaves nothing behind
                    _perform(run.action, meter, params, actor=actor, now=now)
                ok += 1
            except DomainError as exc:
                failures.append(
                    {"meter_id": mid, "serial": meter.serial if meter else "", "error": exc.message}
                )
        listed = json.loads(fresh.failures or "[]") + failures
        BatchRun.update(
            done=BatchRun.done + ok,
            failed=BatchRun.failed + len(failures),
            failures=json.dumps(listed, ensure_ascii=False),
        ).where(BatchRun.id == run.id).execute()
    return True


def requeue_abandoned(*, now: dt.datetime) -> list[int]:
    """Running batches whose worker died or whose lease ran out: hand them back to the queue
    (owner cleared, a fresh lease for the wait) and return their ids for the caller to queue."""
    ids = []
    for run in BatchRun.select().where(BatchRun.status == "running").order_by(BatchRun.id):
        if not abandoned(run.owner, run.lease_until, now):
            continue
        with write_tx():
            taken = (
                BatchRun.update(
                    owner="",
                    lease_until=now + LEASE,
                    resumed=BatchRun.resumed + (1 if run.owner else 0),
                )
                .where(
                    (BatchRun.id == run.id)
                    & (BatchRun.status == "running")
                    & (BatchRun.owner == run.owner)
                    & (BatchRun.position == run.position)
                )
                .execute()
            )
        if taken:
            ids.append(run.id)
    return ids


def batch_state(run: BatchRun, *, now: dt.datetime) -> str:
    """What to tell staff: ``interrupted`` when its worker is gone (the sweep will resume it),
    ``resuming`` when it waits in the queue to carry on, ``queued`` before it first starts."""
    if run.status != "running":
        return run.status
    if run.owner:
        return "interrupted" if abandoned(run.owner, run.lease_until, now) else "running"
    return "resuming" if run.resumed else "queued"


def fail_batch(run_id: int, error: str, *, now: dt.datetime) -> None:
    """The run itself broke (not one item): stop it and say why."""
    with write_tx():
        run = BatchRun.get_by_id(run_id)
        listed = json.loads(run.failures or "[]") + [
            {"meter_id": None, "serial": "", "error": error[:500]}
        ]
        stopped = (
            BatchRun.update(
                status="failed", finished_at=now, failures=json.dumps(listed, ensure_ascii=False)
            )
            .where((BatchRun.id == run_id) & (BatchRun.status == "running"))
            .execute()
        )
        ids = json.loads(run.meter_ids or "[]")
        first = Meter.get_or_none(Meter.id == ids[0]) if ids else None
        if stopped and first is not None:  # staff see it among the alerts, with the reason
            Event.create(
                kind="work.failed",
                property=first.property_id,
                created_at=now,
                data=json.dumps(
                    {
                        "work": "batch",
                        "id": run_id,
                        "action": run.action,
                        "position": run.position,
                        "total": run.total,
                        "error": error[:500],
                    },
                    ensure_ascii=False,
                ),
            )


def failures(run: BatchRun) -> list[dict[str, Any]]:
    return json.loads(run.failures or "[]")
