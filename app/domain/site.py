"""Building the site tree: properties, buildings, floors, rooms, tenants, gateways, meters."""

from __future__ import annotations

import datetime as dt
from typing import Any

from app import clock
from app.db import write_tx
from app.domain.actors import Actor
from app.domain.audit import audit
from app.domain.errors import ValidationError
from app.domain.ledger import ensure_system_accounts
from app.domain.status import OPENING_POLICIES
from app.i18n import tr
from app.models import Building, Floor, Gateway, Meter, Property, Room, Tenant

METER_KINDS = ("electricity", "water")
PROTOCOLS = ("dlt645-2007", "dlt645-1997", "modbus-rtu-tcp", "modbus-tcp", "cjt188", "mqtt")
PREPAID_MODES = ("platform", "meter")


def _required(value: str | None, field: str, label: str) -> str:
    value = (value or "").strip()
    if not value:
        raise ValidationError(tr("%(what)s is required", what=label), field)
    return value


def create_property(
    *,
    code: str,
    name: str,
    actor: Actor,
    now: dt.datetime,
    catalog_price: int | None = None,
    water_catalog_price: int | None = None,
    service_fee_bp: int = 0,
    timezone: str | None = None,
    voltage_class: str = "",
) -> Property:
    """A new property; its time zone defaults to the box's (configuration ``TIMEZONE``)."""
    actor.require("site.edit")
    code = _required(code, "code", tr("a property code"))
    name = _required(name, "name", tr("a property name"))
    _check_fee_bp(service_fee_bp)
    timezone = timezone or clock.default_zone().key
    if not clock.is_zone(timezone):
        raise ValidationError(tr("'%(zone)s' is not a time zone", zone=timezone), "timezone")
    with write_tx():
        if Property.select().where(Property.code == code).exists():
            raise ValidationError(tr("property code '%(code)s' is taken", code=code), "code")
        prop = Property.create(
            code=code,
            name=name,
            catalog_price=catalog_price,
            water_catalog_price=water_catalog_price,
            service_fee_bp=service_fee_bp,
            timezone=timezone,
            voltage_class=voltage_class,
            created_at=now,
        )
        ensure_system_accounts(prop)
        audit(actor, "property.create", prop, now=now, code=code, name=name)
    return prop


MAX_FEE_BP = 2000
LANGUAGES = ("zh_CN", "en")
SETTINGS_FIELDS = (
    "name",
    "address",
    "contact",
    "catalog_price",
    "water_catalog_price",
    "service_fee_bp",
    "default_alarm1_fen",
    "default_alarm2_fen",
    "default_credit_limit_fen",
    "timezone",
    "language",
    "opening_policy",
    "opening_grace_hours",
    "friendly_cut",
    "no_cut_start_min",
    "no_cut_end_min",
    "no_cut_weekends",
    "no_cut_days",
    "grace_credit_fen",
)


def _check_fee_bp(service_fee_bp: int) -> None:
    if not isinstance(service_fee_bp, int) or not 0 <= service_fee_bp <= MAX_FEE_BP:
        raise ValidationError(
            tr("the service-fee ratio must be between 0 % and 20 %"), "service_fee_bp"
        )


def _check_length(value: str, field: str, limit: int) -> str:
    value = (value or "").strip()
    if len(value) > limit:
        raise ValidationError(tr("at most %(n)s characters", n=limit), field)
    return value


def _check_disconnection(values: dict[str, Any]) -> None:
    """The friendly-disconnection settings; ``no_cut_days`` is normalised to sorted ISO dates
    separated by spaces."""
    for name in ("friendly_cut", "no_cut_weekends"):
        if not isinstance(values[name], bool):
            raise ValidationError(tr("a yes or no setting"), name)
    for name in ("no_cut_start_min", "no_cut_end_min"):
        minute = values[name]
        if not isinstance(minute, int) or isinstance(minute, bool) or not 0 <= minute < 24 * 60:
            raise ValidationError(tr("a time of day from 00:00 to 23:59"), name)
    grace = values["grace_credit_fen"]
    if not isinstance(grace, int) or isinstance(grace, bool) or not 0 <= grace <= 100_000_00:
        raise ValidationError(tr("the grace credit is 0 to 100,000 yuan"), "grace_credit_fen")
    days = set()
    for word in str(values["no_cut_days"] or "").replace(",", " ").replace("，", " ").split():
        try:
            days.add(dt.date.fromisoformat(word))
        except ValueError:
            raise ValidationError(
                tr("'%(word)s' is not a date (YYYY-MM-DD)", word=word), "no_cut_days"
            ) from None
    if len(days) > 366:
        raise ValidationError(tr("at most 366 dates"), "no_cut_days")
    values["no_cut_days"] = " ".join(d.isoformat() for d in sorted(days))


def update_property_settings(
    prop: Property, *, actor: Actor, now: dt.datetime, **fields: Any
) -> Property:
    """Change a property's settings: name, address, contact, catalog prices (1/10000 yuan per
    kWh / m3, ``None`` for unknown), the service-fee ratio (basis points), the thresholds new
    accounts start with (fen), time zone, language, and what happens to the supply of an account
    opened without a payment (``opening_policy`` grace/off, ``opening_grace_hours``).  Only the given fields change; a bad
    value raises ``ValidationError`` naming the field and nothing is written."""
    actor.require("site.edit")
    unknown = set(fields) - set(SETTINGS_FIELDS)
    if unknown:
        raise ValidationError(
            tr("unknown setting '%(name)s'", name=sorted(unknown)[0]), sorted(unknown)[0]
        )
    current = Property.get_by_id(prop.id)
    values = {name: getattr(current, name) for name in SETTINGS_FIELDS}
    values.update(fields)
    values["name"] = _required(values["name"], "name", tr("a property name"))
    values["name"] = _check_length(values["name"], "name", 120)
    values["address"] = _check_length(values["address"], "address", 200)
    values["contact"] = _check_length(values["contact"], "contact", 120)
    for name in ("catalog_price", "water_catalog_price"):
        price = values[name]
        if price is not None and (not isinstance(price, int) or not 0 < price <= 100_000_000):
            raise ValidationError(tr("a price is positive with at most four decimals"), name)
    _check_fee_bp(values["service_fee_bp"])
    for name in ("default_alarm1_fen", "default_alarm2_fen", "default_credit_limit_fen"):
        if not isinstance(values[name], int) or values[name] < 0:
            raise ValidationError(tr("a threshold cannot be negative"), name)
    if values["default_alarm1_fen"] < values["default_alarm2_fen"]:
        raise ValidationError(
            tr("alarm 1 must be at or above alarm 2, and both at or above zero"),
            "default_alarm1_fen",
        )
    if not clock.is_zone(values["timezone"]):
        raise ValidationError(
            tr("'%(zone)s' is not a time zone", zone=values["timezone"]), "timezone"
        )
    if values["opening_policy"] not in OPENING_POLICIES:
        raise ValidationError(tr("an opening policy is 'grace' or 'off'"), "opening_policy")
    hours = values["opening_grace_hours"]
    if not isinstance(hours, int) or isinstance(hours, bool) or not 0 <= hours <= 720:
        raise ValidationError(tr("the opening grace is 0 to 720 hours"), "opening_grace_hours")
    _check_disconnection(values)
    if values["language"] not in LANGUAGES:
        raise ValidationError(
            tr("unknown language '%(language)s'", language=values["language"]), "language"
        )
    changed = {
        name: [getattr(current, name), values[name]]
        for name in SETTINGS_FIELDS
        if getattr(current, name) != values[name]
    }
    if not changed:
        return current
    with write_tx():
        Property.update({getattr(Property, name): values[name] for name in changed}).where(
            Property.id == prop.id
        ).execute()
        audit(actor, "property.settings", current, now=now, changed=changed)
    return Property.get_by_id(prop.id)


def floor_level(name: str) -> int:
    """The level a new floor gets from its name: the number it is ("-1", "12"), else 0."""
    return int(name) if name.lstrip("-").isdigit() else 0


def new_room(
    *, building: str, floor: str, number: str, area_cm2: int = 0
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A new room checked: its row (without the floor, which the caller finds or creates by
    name) and the detail of its ``room.create`` audit row.  ``add_room`` and the Excel import
    both build rooms here."""
    building = _required(building, "building", tr("a building"))
    floor = _required(floor, "floor", tr("a floor"))
    number = _required(number, "number", tr("a room number"))
    return (
        {"number": number, "area_cm2": area_cm2},
        {"building": building, "floor": floor, "number": number},
    )


def add_room(
    prop: Property,
    *,
    building: str,
    floor: str,
    number: str,
    area_cm2: int = 0,
    actor: Actor,
    now: dt.datetime,
) -> Room:
    """Add a room, creating its building and floor by name where needed."""
    actor.require("site.edit")
    row, detail = new_room(building=building, floor=floor, number=number, area_cm2=area_cm2)
    building, floor, number = detail["building"], detail["floor"], detail["number"]
    with write_tx():
        b, _ = Building.get_or_create(property=prop, name=building)
        f, _ = Floor.get_or_create(building=b, name=floor, defaults={"level": floor_level(floor)})
        if Room.select().where((Room.floor == f) & (Room.number == number)).exists():
            raise ValidationError(
                tr(
                    "room %(number)s exists on %(building)s %(floor)s",
                    number=number,
                    building=building,
                    floor=floor,
                ),
                "number",
            )
        room = Room.create(floor=f, **row)
        audit(actor, "room.create", room, now=now, **detail)
    return room


def clean_phones(phones: str | None) -> str:
    """Mobile numbers separated by commas (，; accepted), spaces and dashes dropped; refuses
    anything that is not 6-15 digits with an optional +."""
    clean = []
    for phone in (phones or "").replace("，", ",").replace(";", ",").split(","):
        phone = phone.strip().replace(" ", "").replace("-", "")
        if not phone:
            continue
        digits = phone[1:] if phone.startswith("+") else phone
        if not digits.isascii() or not digits.isdigit() or not 6 <= len(digits) <= 15:
            raise ValidationError(tr("'%(phone)s' is not a phone number", phone=phone), "phones")
        clean.append(phone)
    if len(",".join(clean)) > 200:
        raise ValidationError(tr("at most %(n)s characters", n=200), "phones")
    return ",".join(clean)


def create_tenant(
    prop: Property,
    *,
    name: str,
    phones: str = "",
    contact: str = "",
    actor: Actor,
    now: dt.datetime,
) -> Tenant:
    actor.require("account.open")
    name = _required(name, "name", tr("a tenant name"))
    with write_tx():
        tenant = Tenant.create(
            property=prop,
            name=name,
            phones=clean_phones(phones),
            contact=(contact or "").strip(),
            created_at=now,
        )
        audit(actor, "tenant.create", tenant, now=now, name=name)
    return tenant


def new_gateway(
    prop: Property, *, name: str, host: str, port: int, baud: int = 9600, now: dt.datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A new gateway checked: its row and the detail of its ``gateway.create`` audit row.
    ``create_gateway`` and the Excel import both build gateways here."""
    name = _required(name, "name", tr("a gateway name"))
    host = _required(host, "host", tr("a host"))
    if not isinstance(port, int) or not 0 < port < 65536:
        raise ValidationError(tr("the port must be 1-65535"), "port")
    if baud not in (1200, 2400, 4800, 9600, 19200, 38400, 115200):
        raise ValidationError(tr("%(baud)s is not a serial baud rate", baud=baud), "baud")
    return (
        {
            "property": prop,
            "name": name,
            "host": host,
            "port": port,
            "baud": baud,
            "created_at": now,
        },
        {"host": host, "port": port},
    )


def create_gateway(
    prop: Property,
    *,
    name: str,
    host: str,
    port: int,
    baud: int = 9600,
    actor: Actor,
    now: dt.datetime,
) -> Gateway:
    actor.require("site.edit")
    row, detail = new_gateway(prop, name=name, host=host, port=port, baud=baud, now=now)
    with write_tx():
        if (
            Gateway.select()
            .where((Gateway.host == row["host"]) & (Gateway.port == row["port"]))
            .exists()
        ):
            raise ValidationError(
                tr("a gateway at %(host)s:%(port)s exists", host=row["host"], port=row["port"]),
                "host",
            )
        gw = Gateway.create(**row)
        audit(actor, "gateway.create", gw, now=now, **detail)
    return gw


def new_meter(
    prop: Property,
    *,
    serial: str,
    kind: str,
    protocol: str = "dlt645-2007",
    address: str = "",
    gateway: Gateway | int | None = None,
    room: Room | int | None = None,
    multiplier: int = 1,
    prepaid_mode: str = "platform",
    register_modulus: int = 100_000_000,
    max_rate: int | None = None,
    profile: str = "",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A new meter checked: its row (in stock, bus address defaulting to the serial, the
    kind's rate limit) and the detail of its ``meter.create`` audit row.  ``create_meter`` and
    the Excel import both build meters here."""
    serial = _required(serial, "serial", tr("a meter serial"))
    if kind not in METER_KINDS:
        raise ValidationError(tr("unknown meter kind '%(kind)s'", kind=kind), "kind")
    if protocol not in PROTOCOLS:
        raise ValidationError(tr("unknown protocol '%(protocol)s'", protocol=protocol), "protocol")
    if prepaid_mode not in PREPAID_MODES:
        raise ValidationError(
            tr("unknown prepaid mode '%(mode)s'", mode=prepaid_mode), "prepaid_mode"
        )
    if not isinstance(multiplier, int) or not 1 <= multiplier <= 10000:
        raise ValidationError(tr("the multiplier (CT ratio) must be 1-10000"), "multiplier")
    if max_rate is None:
        max_rate = 100_000 if kind == "electricity" else 10_000  # W, or litres per hour
    row = {
        "property": prop,
        "serial": serial,
        "kind": kind,
        "protocol": protocol,
        "address": address or serial,
        "gateway": gateway,
        "room": room,
        "multiplier": multiplier,
        "prepaid_mode": prepaid_mode,
        "register_modulus": register_modulus,
        "max_rate": max_rate,
        "profile": profile,
        "status": "stock",
    }
    return row, {"serial": serial, "kind": kind}


def create_meter(
    prop: Property,
    *,
    serial: str,
    kind: str,
    actor: Actor,
    now: dt.datetime,
    protocol: str = "dlt645-2007",
    address: str = "",
    gateway: Gateway | None = None,
    room: Room | None = None,
    multiplier: int = 1,
    prepaid_mode: str = "platform",
    register_modulus: int = 100_000_000,
    max_rate: int | None = None,
    profile: str = "",
) -> Meter:
    """Register a meter in stock (not yet attached to an account)."""
    actor.require("site.edit")
    row, detail = new_meter(
        prop,
        serial=serial,
        kind=kind,
        protocol=protocol,
        address=address,
        gateway=gateway,
        room=room,
        multiplier=multiplier,
        prepaid_mode=prepaid_mode,
        register_modulus=register_modulus,
        max_rate=max_rate,
        profile=profile,
    )
    with write_tx():
        if Meter.select().where(Meter.serial == row["serial"]).exists():
            raise ValidationError(
                tr("meter serial '%(serial)s' exists", serial=row["serial"]), "serial"
            )
        meter = Meter.create(**row)
        audit(actor, "meter.create", meter, now=now, **detail)
    return meter
