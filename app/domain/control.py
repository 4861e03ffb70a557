"""The command queue for field devices, and the decisions that feed it.

A meter's *desired* supply state lives on the meter (``relay_desired``, set by the balance
rules, keep-power, forced trips and overload).  ``plan_supply_commands`` turns every gap
between desired and confirmed state into one pending command; the collector sends pending
commands, confirms them by reading the state back, and records the outcome here.  Commands are
idempotent: a meter has at most one open supply command, and a newer decision supersedes an
older unconfirmed one.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from typing import Any

from app.db import write_tx
from app.domain.actors import SYSTEM, Actor
from app.domain.audit import audit
from app.domain.errors import ValidationError
from app.domain.leases import LEASE, abandoned
from app.i18n import tr
from app.models import Account, Command, Event, Meter

OPEN = ("pending", "sent")
SUPPLY_KINDS = ("relay_on", "relay_off", "valve_open", "valve_close")
RETRY_DELAYS = (5, 15, 60, 300)  # seconds between attempts; then the command fails
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1


def supply_kind(meter: Meter, on: bool) -> str:
    if meter.kind == "water":
        return "valve_open" if on else "valve_close"
    return "relay_on" if on else "relay_off"


def plan_supply_commands(
    meter_ids: Iterable[int] | None = None, *, now: dt.datetime
) -> list[Command]:
    """Queue a supply command for each active meter whose desired state differs from what
    it last confirmed and that has no open command for that state already.  Caller may hold
    write_tx(); opens its own otherwise."""
    with write_tx():
        # A gap counts once the meter reported its state, or once a decision was taken (a new
        # account at zero is tripped before its first poll).
        q = Meter.select().where(
            (Meter.status == "active")
            & (Meter.relay_desired != Meter.relay_confirmed)
            & ((Meter.relay_confirmed != "") | Meter.relay_changed_at.is_null(False))
        )
        if meter_ids is not None:
            ids = list(meter_ids)
            if not ids:
                return []
            q = q.where(Meter.id.in_(ids))
        meters = list(q)
        if not meters:
            return []
        open_cmds: dict[int, list[Command]] = {}
        for cmd in Command.select().where(
            Command.meter.in_([m.id for m in meters])
            & Command.status.in_(OPEN)
            & Command.kind.in_(SUPPLY_KINDS)
        ):
            open_cmds.setdefault(cmd.meter_id, []).append(cmd)
        created = []
        for m in meters:
            want = supply_kind(m, m.relay_desired == "on")
            existing = open_cmds.get(m.id, [])
            if any(c.kind == want for c in existing):
                continue
            stale = [c.id for c in existing]
            if stale:
                Command.update(status="superseded", result="replaced by a newer decision").where(
                    Command.id.in_(stale)
                ).execute()
            created.append(
                Command.create(
                    meter=m,
                    kind=want,
                    actor="system",
                    reason=m.relay_reason or "restore",
                    payload=json.dumps({"desired": m.relay_desired}),
                    created_at=now,
                    next_attempt_at=now,
                )
            )
    return created


def due_commands(meter_ids: Iterable[int], *, now: dt.datetime) -> list[Command]:
    """Open commands of these meters whose time has come and that no live sender holds."""
    ids = list(meter_ids)
    if not ids:
        return []
    return [
        c
        for c in Command.select()
        .where(Command.meter.in_(ids) & Command.status.in_(OPEN) & (Command.next_attempt_at <= now))
        .order_by(Command.id)
        if not c.owner or abandoned(c.owner, c.lease_until, now)
    ]


def take_command(command: Command, *, owner: str, now: dt.datetime) -> bool:
    """Claim a due command for ``owner`` before sending it (compare-and-set on its previous
    owner): two senders never send the same command at once, and a command whose sender died
    is taken over once that sender is seen gone or its lease ran out."""
    with write_tx():
        cmd = Command.get_or_none(Command.id == command.id)
        if cmd is None or cmd.status not in OPEN:
            return False
        if cmd.owner and cmd.owner != owner and not abandoned(cmd.owner, cmd.lease_until, now):
            return False
        taken = (
            Command.update(owner=owner, lease_until=now + LEASE)
            .where((Command.id == cmd.id) & Command.status.in_(OPEN) & (Command.owner == cmd.owner))
            .execute()
        )
    return taken == 1


def commands_waiting(*, now: dt.datetime) -> bool:
    """Whether any open command is due to be sent."""
    return (
        Command.select().where(Command.status.in_(OPEN) & (Command.next_attempt_at <= now)).exists()
    )


def release_abandoned_commands(*, now: dt.datetime) -> list[int]:
    """Open commands held by a sender that is gone: free them and make them due now (the
    next collection sends them again); returns their ids."""
    freed = []
    for cmd in Command.select().where(Command.status.in_(OPEN) & (Command.owner != "")):
        if not abandoned(cmd.owner, cmd.lease_until, now):
            continue
        with write_tx():
            n = (
                Command.update(owner="", lease_until=None, next_attempt_at=now)
                .where(
                    (Command.id == cmd.id) & Command.status.in_(OPEN) & (Command.owner == cmd.owner)
                )
                .execute()
            )
        if n:
            freed.append(cmd.id)
    return freed


def record_attempt(
    command: Command, *, ok: bool, confirmed_state: str | None, result: str, now: dt.datetime
) -> Command:
    """Store the outcome of sending ``command``; schedule a retry or give up with an alert."""
    with write_tx():
        cmd = Command.get_by_id(command.id)
        if cmd.status not in OPEN:
            return cmd  # superseded meanwhile
        attempts = cmd.attempts + 1
        meter = Meter.get_by_id(cmd.meter_id)
        # the attempt is over: whoever sent it no longer holds the command
        Command.update(owner="", lease_until=None).where(Command.id == cmd.id).execute()
        if ok:
            Command.update(
                status="confirmed",
                attempts=attempts,
                sent_at=cmd.sent_at or now,
                confirmed_at=now,
                result=result,
            ).where(Command.id == cmd.id).execute()
            if confirmed_state is not None:
                Meter.update(relay_confirmed=confirmed_state, relay_confirmed_at=now).where(
                    Meter.id == meter.id
                ).execute()
        elif attempts >= MAX_ATTEMPTS:
            Command.update(
                status="failed", attempts=attempts, sent_at=cmd.sent_at or now, result=result
            ).where(Command.id == cmd.id).execute()
            Event.create(
                kind="command.failed",
                property=meter.property_id,
                account=meter.account_id,
                meter=meter.id,
                created_at=now,
                data=json.dumps({"command": cmd.id, "kind": cmd.kind, "result": result}),
            )
        else:
            Command.update(
                status="sent",
                attempts=attempts,
                sent_at=cmd.sent_at or now,
                result=result,
                next_attempt_at=now + dt.timedelta(seconds=RETRY_DELAYS[attempts - 1]),
            ).where(Command.id == cmd.id).execute()
    return Command.get_by_id(cmd.id)


def record_confirmed_state(meter_id: int, state: str, *, now: dt.datetime) -> None:
    """What a poll saw the relay/valve doing."""
    Meter.update(relay_confirmed=state, relay_confirmed_at=now).where(
        Meter.id == meter_id
    ).execute()


def force_supply(meter: Meter, *, on: bool, actor: Actor, now: dt.datetime, reason: str) -> Meter:
    """Forced trip (拉闸) or restore prepaid control (恢复预付费) by staff.

    A forced trip holds whatever the balance; restoring hands control back to the balance
    rules (supply on unless the account is in arrears without keep-power).
    """
    actor.require("meter.control")
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError(tr("say why"), "reason")
    from app.domain.status import arrears_cut_due, keep_power_active

    with write_tx():
        meter = Meter.get_by_id(meter.id)
        if on:
            account = Account.get_by_id(meter.account_id) if meter.account_id else None
            arrears = account is not None and account.status == "arrears"
            cut = arrears and not keep_power_active(meter, now) and arrears_cut_due(account, now)
            desired = "off" if cut else "on"
            why = "arrears" if desired == "off" else ""
        else:
            desired, why = "off", "forced"
        Meter.update(relay_desired=desired, relay_reason=why, relay_changed_at=now).where(
            Meter.id == meter.id
        ).execute()
        Event.create(
            kind=f"relay.{desired}",
            property=meter.property_id,
            account=meter.account_id,
            meter=meter.id,
            created_at=now,
            data=json.dumps({"reason": why or "restored", "kind": meter.kind}),
        )
        audit(
            actor,
            "meter.force_off" if not on else "meter.restore_prepaid",
            meter,
            now=now,
            reason=reason,
        )
        plan_supply_commands([meter.id], now=now)
    return Meter.get_by_id(meter.id)


def overload_trip(meter_id: int, power_w: int, *, now: dt.datetime) -> None:
    """A meter drawing more than its power limit: trip it and alert staff."""
    with write_tx():
        meter = Meter.get_by_id(meter_id)
        if meter.relay_desired == "off" and meter.relay_reason == "overload":
            return
        Meter.update(relay_desired="off", relay_reason="overload", relay_changed_at=now).where(
            Meter.id == meter_id
        ).execute()
        Event.create(
            kind="meter.overload",
            property=meter.property_id,
            account=meter.account_id,
            meter=meter.id,
            created_at=now,
            data=json.dumps({"power_w": power_w, "limit_w": meter.power_limit_w}),
        )
        audit(
            SYSTEM,
            "meter.overload_trip",
            meter,
            now=now,
            power_w=power_w,
            limit_w=meter.power_limit_w,
        )
        plan_supply_commands([meter_id], now=now)


def queue_purchase(
    meter: Meter, *, amount_fen: int, actor: Actor, now: dt.datetime, key: str
) -> Command:
    """Meter-held balance: push a purchase to the meter with the next purchase count."""
    with write_tx():
        existing = Command.get_or_none(Command.idempotency_key == key)
        if existing is not None:
            return existing
        meter = Meter.get_by_id(meter.id)
        pending = (
            Command.select()
            .where(
                (Command.meter == meter) & (Command.kind == "purchase") & Command.status.in_(OPEN)
            )
            .count()
        )
        count = meter.purchase_count + pending + 1
        return Command.create(
            meter=meter,
            kind="purchase",
            actor=actor.name,
            reason="sale",
            payload=json.dumps({"amount_fen": amount_fen, "count": count}),
            idempotency_key=key,
            created_at=now,
            next_attempt_at=now,
        )


def queue_keep_power(
    meter: Meter, *, on: bool, actor: Actor, now: dt.datetime, reason: str
) -> Command:
    """Tell the meter itself to keep power (or release it), superseding an open opposite one."""
    with write_tx():
        kinds = ("keep_power", "keep_power_release")
        Command.update(status="superseded", result="replaced by a newer decision").where(
            (Command.meter == meter.id) & Command.kind.in_(kinds) & Command.status.in_(OPEN)
        ).execute()
        return Command.create(
            meter=meter.id,
            kind=kinds[0] if on else kinds[1],
            actor=actor.name,
            reason=reason[:200],
            created_at=now,
            next_attempt_at=now,
        )


def queue_read(meter: Meter, *, actor: Actor, now: dt.datetime) -> Command:
    """Read this meter in the next collection cycle whatever its poll interval or back-off.
    At most one open read request per meter."""
    actor.require("meter.control")
    with write_tx():
        existing = Command.get_or_none(
            (Command.meter == meter.id) & (Command.kind == "read") & Command.status.in_(OPEN)
        )
        if existing is not None:
            return existing
        return Command.create(
            meter=meter.id,
            kind="read",
            actor=actor.name,
            reason="read now",
            created_at=now,
            next_attempt_at=now,
        )


def payload(command: Command) -> dict[str, Any]:
    return json.loads(command.payload or "{}")
