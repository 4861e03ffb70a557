"""Commissioning the field devices from the console and the API: editing a gateway (audited
with before and after), checking that its TCP link opens, and registering a run of meters by
bus address."""

from __future__ import annotations

import datetime as dt
import socket
import time
from dataclasses import dataclass
from typing import Any

from app.db import write_tx
from app.domain.actors import Actor
from app.domain.audit import audit, field_changes
from app.domain.errors import NotFound, ValidationError
from app.domain.site import create_meter, new_gateway
from app.i18n import tr
from app.models import Gateway, Meter, Property

TRANSPORTS = ("serial", "modbus-tcp")
PARITIES = ("N", "E", "O")
MAX_RANGE = 500
GATEWAY_FIELDS = ("name", "host", "port", "baud", "parity", "timeout_ms", "transport", "enabled")


def update_gateway(gateway: Gateway, *, actor: Actor, now: dt.datetime, **changes: Any) -> Gateway:
    """Change a gateway's name, address, serial settings, timeout, transport or whether it is
    polled; only the given fields change, a bad value changes nothing."""
    actor.require("site.edit")
    unknown = set(changes) - set(GATEWAY_FIELDS)
    if unknown:
        name = sorted(unknown)[0]
        raise ValidationError(tr("unknown field '%(name)s'", name=name), name)
    with write_tx():
        current = Gateway.get_or_none(Gateway.id == gateway.id)
        if current is None:
            raise NotFound(tr("no such gateway"), "gateway")
        values = {name: getattr(current, name) for name in GATEWAY_FIELDS}
        values.update(changes)
        row, _detail = new_gateway(
            current.property,
            name=values["name"],
            host=values["host"],
            port=values["port"],
            baud=values["baud"],
            now=now,
        )
        values["name"], values["host"] = row["name"], row["host"]
        if values["parity"] not in PARITIES:
            raise ValidationError(tr("parity is N, E or O"), "parity")
        timeout = values["timeout_ms"]
        if not isinstance(timeout, int) or isinstance(timeout, bool) or not 50 <= timeout <= 30000:
            raise ValidationError(tr("the timeout is 50-30000 ms"), "timeout_ms")
        if values["transport"] not in TRANSPORTS:
            raise ValidationError(tr("the transport is serial or modbus-tcp"), "transport")
        if not isinstance(values["enabled"], bool):
            raise ValidationError(tr("a yes or no setting"), "enabled")
        changed = field_changes(current, values)
        if not changed:
            return current
        if (
            Gateway.select()
            .where(
                (Gateway.host == values["host"])
                & (Gateway.port == values["port"])
                & (Gateway.id != current.id)
            )
            .exists()
        ):
            raise ValidationError(
                tr(
                    "a gateway at %(host)s:%(port)s exists",
                    host=values["host"],
                    port=values["port"],
                ),
                "host",
            )
        Gateway.update(**values).where(Gateway.id == current.id).execute()
        audit(actor, "gateway.update", current, now=now, changed=changed)
    return Gateway.get_by_id(gateway.id)


@dataclass(frozen=True)
class LinkCheck:
    ok: bool
    millis: int
    message: str


def check_link(gateway: Gateway, *, timeout: float | None = None) -> LinkCheck:
    """Open (and close) the gateway's TCP connection: what a person means by "test".  Reads
    and writes nothing on the bus."""
    seconds = timeout if timeout is not None else max(gateway.timeout_ms, 50) / 1000
    started = time.monotonic()
    try:
        with socket.create_connection((gateway.host, gateway.port), timeout=seconds):
            pass
    except OSError as exc:
        millis = int((time.monotonic() - started) * 1000)
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        return LinkCheck(False, millis, reason)
    return LinkCheck(True, int((time.monotonic() - started) * 1000), "connected")


def address_run(first: str, count: int) -> list[str]:
    """``count`` consecutive bus addresses from ``first``, keeping its width
    ('000000000001', 3 -> ...01, ...02, ...03)."""
    first = (first or "").strip()
    if not first.isascii() or not first.isdigit():
        raise ValidationError(tr("a bus address is digits"), "address")
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_RANGE:
        raise ValidationError(tr("1 to %(n)s meters at once", n=MAX_RANGE), "count")
    start, width = int(first), len(first)
    addresses = [str(start + i).zfill(width) for i in range(count)]
    if len(addresses[-1]) > width:
        raise ValidationError(tr("the addresses run past %(width)s digits", width=width), "count")
    return addresses


def register_meters(
    prop: Property,
    *,
    kind: str,
    protocol: str,
    first_address: str,
    count: int,
    serial_prefix: str,
    gateway: Gateway | None,
    actor: Actor,
    now: dt.datetime,
    multiplier: int = 1,
) -> list[Meter]:
    """Register ``count`` meters at consecutive bus addresses on one gateway, in stock, each
    serial the prefix and its address; all or nothing."""
    actor.require("site.edit")
    if gateway is not None and gateway.property_id != prop.id:
        raise ValidationError(tr("the gateway belongs to another property"), "gateway")
    addresses = address_run(first_address, count)
    prefix = (serial_prefix or "").strip()
    with write_tx():
        return [
            create_meter(
                prop,
                serial=f"{prefix}{address}",
                kind=kind,
                protocol=protocol,
                address=address,
                gateway=gateway,
                multiplier=multiplier,
                actor=actor,
                now=now,
            )
            for address in addresses
        ]


METER_FIELDS = ("address", "gateway", "multiplier", "max_rate", "power_limit_w", "poll_class")


@dataclass(frozen=True)
class MeterChange:
    """What an edit of a meter would change, shown before it is confirmed.  A new multiplier
    counts from the meter's last accepted reading: the consumption since then is charged with
    it (``effective_from``, ``effective_total``)."""

    changed: dict[str, list[Any]]
    moves_money: bool
    effective_from: dt.datetime | None
    effective_total: int | None


def _meter_values(current: Meter, changes: dict[str, Any]) -> dict[str, Any]:
    unknown = set(changes) - set(METER_FIELDS)
    if unknown:
        name = sorted(unknown)[0]
        raise ValidationError(tr("unknown field '%(name)s'", name=name), name)
    values = {
        name: getattr(current, name if name != "gateway" else "gateway_id") for name in METER_FIELDS
    }
    values.update(changes)
    address = values["address"]
    if not isinstance(address, str) or not address.strip() or len(address.strip()) > 20:
        raise ValidationError(tr("a bus address of 1-20 characters"), "address")
    values["address"] = address.strip()
    gateway = values["gateway"]
    if gateway is not None:
        gw = Gateway.get_or_none(Gateway.id == gateway) if isinstance(gateway, int) else None
        if gw is None or gw.property_id != current.property_id:
            raise ValidationError(tr("choose a gateway of the meter's property"), "gateway")
    for name, low, high in (
        ("multiplier", 1, 10000),
        ("max_rate", 1, 100_000_000),
        ("power_limit_w", 0, 10_000_000),
    ):
        value = values[name]
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ValidationError(
                tr("a whole number from %(low)s to %(high)s", low=low, high=high), name
            )
    poll = values["poll_class"]
    if (
        not isinstance(poll, str)
        or not poll
        or len(poll) > 16
        or not poll.replace("_", "").isalnum()
    ):
        raise ValidationError(tr("a poll class such as tenant or public"), "poll_class")
    return values


def preview_meter_change(meter: Meter, **changes: Any) -> MeterChange:
    """Check an edit and say what it would change; nothing is written."""
    current = Meter.get_by_id(meter.id)
    values = _meter_values(current, changes)
    before = {
        **{n: getattr(current, n) for n in METER_FIELDS if n != "gateway"},
        "gateway": current.gateway_id,
    }
    changed = {n: [before[n], v] for n, v in values.items() if before[n] != v}
    money = "multiplier" in changed
    return MeterChange(
        changed,
        money,
        current.last_read_at if money else None,
        current.last_total if money else None,
    )


def update_meter(meter: Meter, *, actor: Actor, now: dt.datetime, **changes: Any) -> Meter:
    """Change a meter's bus address, gateway, multiplier (CT ratio), plausible rate, power limit
    or poll class; audited with before and after (a multiplier with the reading it counts
    from).  Only the given fields change; a bad value changes nothing."""
    actor.require("site.edit")
    with write_tx():
        plan = preview_meter_change(meter, **changes)
        if not plan.changed:
            return Meter.get_by_id(meter.id)
        update = {
            (Meter.gateway if name == "gateway" else getattr(Meter, name)): after
            for name, (_before, after) in plan.changed.items()
        }
        Meter.update(update).where(Meter.id == meter.id).execute()
        detail: dict[str, Any] = {"changed": plan.changed}
        if plan.moves_money:
            detail["effective_from"] = plan.effective_from
            detail["effective_total"] = plan.effective_total
        audit(actor, "meter.update", Meter.get_by_id(meter.id), now=now, **detail)
    return Meter.get_by_id(meter.id)
