"""Batch actions on many meters: read now, trip, restore prepaid, keep power / release, push
price, push thresholds.

``start_batch`` checks the permission and the parameters once and records a ``BatchRun``;
``run_batch`` (called by the worker task) performs the items in chunks through the same domain
functions a single-meter action uses, recording progress and per-item failures after each chunk.
A run that stopped half-way carries on from ``position`` when run again; items in the chunk that
was interrupted are tried again, which the item actions tolerate (they set a desired state).
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
from app.domain.money import parse_yuan
from app.domain.status import refresh_accounts
from app.i18n import tr
from app.models import Account, BatchRun, Meter, Tariff

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


def run_batch(run_id: int, *, now: dt.datetime, chunk: int = CHUNK) -> BatchRun:
    """Perform the remaining items of a run; safe to call again on a finished or broken run."""
    run = BatchRun.get_or_none(BatchRun.id == run_id)
    if run is None:
        raise NotFound(tr("no such batch"))
    if run.status != "running":
        return run
    actor = Actor(run.created_by, run.created_role)
    params = json.loads(run.params or "{}")
    ids: list[int] = json.loads(run.meter_ids or "[]")
    position = run.position
    while position < len(ids):
        part = ids[position : position + chunk]
        meters = {m.id: m for m in Meter.select().where(Meter.id.in_(part))}
        ok, failures = 0, []
        for mid in part:
            meter = meters.get(mid)
            try:
                if meter is None:
                    raise NotFound(tr("no such meter"))
                _perform(run.action, meter, params, actor=actor, now=now)
                ok += 1
            except DomainError as exc:
                failures.append(
                    {"meter_id": mid, "serial": meter.serial if meter else "", "error": exc.message}
                )
        position += len(part)
        with write_tx():
            fresh = BatchRun.get_by_id(run.id)
            listed = json.loads(fresh.failures or "[]") + failures
            BatchRun.update(
                position=position,
                done=fresh.done + ok,
                failed=fresh.failed + len(failures),
                failures=json.dumps(listed, ensure_ascii=False),
            ).where(BatchRun.id == run.id).execute()
    with write_tx():
        BatchRun.update(status="done", finished_at=now).where(
            (BatchRun.id == run.id) & (BatchRun.status == "running")
        ).execute()
    return BatchRun.get_by_id(run.id)


def fail_batch(run_id: int, error: str, *, now: dt.datetime) -> None:
    """The run itself broke (not one item): stop it and say why."""
    with write_tx():
        run = BatchRun.get_by_id(run_id)
        listed = json.loads(run.failures or "[]") + [
            {"meter_id": None, "serial": "", "error": error[:500]}
        ]
        BatchRun.update(
            status="failed", finished_at=now, failures=json.dumps(listed, ensure_ascii=False)
        ).where((BatchRun.id == run_id) & (BatchRun.status == "running")).execute()


def failures(run: BatchRun) -> list[dict[str, Any]]:
    return json.loads(run.failures or "[]")
