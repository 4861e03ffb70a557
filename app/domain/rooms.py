"""The site tree's places: buildings, floors and rooms created one by one or by pattern
("Building A, floors 1-5, rooms 01-20") and edited later, each change audited with before
and after."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from app.db import write_tx
from app.domain.actors import Actor
from app.domain.audit import audit, field_changes
from app.domain.errors import NotFound, ValidationError
from app.domain.site import floor_level
from app.i18n import tr
from app.models import Building, Floor, Property, Room

ROOM_KINDS = ("shop", "office", "dorm", "common")
MAX_PATTERN_ROOMS = 5000
MAX_AREA_CM2 = 10_000_000_000  # 1,000,000 m² in cm²


def _name(value: Any, field_name: str, limit: int) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        raise ValidationError(tr("this cannot be empty"), field_name)
    if len(text) > limit:
        raise ValidationError(tr("at most %(n)s characters", n=limit), field_name)
    return text


def parse_area(text: Any, field_name: str = "area") -> int:
    """'35.5' m² -> 355000 cm² (the unit rooms store); plain ASCII digits, at most two
    decimals."""
    raw = str(text if text is not None else "").strip() or "0"
    if not raw.isascii() or raw.count(".") > 1 or not raw.replace(".", "").isdigit():
        raise ValidationError(tr("an area in m² such as 35.5"), field_name)
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ValidationError(tr("an area in m² such as 35.5"), field_name) from None
    if value.as_tuple().exponent < -2:  # type: ignore[operator]
        raise ValidationError(tr("an area has at most two decimals"), field_name)
    cm2 = int(value * 100) * 100
    if cm2 > MAX_AREA_CM2:
        raise ValidationError(tr("an area in m² such as 35.5"), field_name)
    return cm2


def format_area(area_cm2: int) -> str:
    """355000 -> '35.50' (m²)."""
    return str(Decimal(int(area_cm2)).scaleb(-4).quantize(Decimal("0.01")))


def parse_range(text: Any, field_name: str) -> list[str]:
    """'1-5' -> ['1'..'5']; '01-20' -> ['01'..'20'] (the width of the first bound kept);
    'B1, 1-3' -> ['B1', '1', '2', '3']."""
    names: list[str] = []
    for part in str(text or "").replace("，", ",").split(","):
        part = part.strip()
        if not part:
            continue
        low, sep, high = part.partition("-")
        if sep and low.strip().isdigit() and high.strip().isdigit():
            low, high = low.strip(), high.strip()
            a, b = int(low), int(high)
            if b < a or b - a >= MAX_PATTERN_ROOMS:
                raise ValidationError(tr("'%(part)s' is not a range", part=part), field_name)
            width = len(low) if low.startswith("0") else 0
            names.extend(str(n).zfill(width) for n in range(a, b + 1))
        else:
            names.append(_name(part, field_name, 40))
    if not names:
        raise ValidationError(tr("give numbers such as 1-5 or 01-20"), field_name)
    return names


def create_building(prop: Property, *, name: str, actor: Actor, now: dt.datetime) -> Building:
    actor.require("site.edit")
    name = _name(name, "name", 80)
    with write_tx():
        if (
            Building.select()
            .where((Building.property == prop.id) & (Building.name == name))
            .exists()
        ):
            raise ValidationError(tr("building %(name)s exists", name=name), "name")
        building = Building.create(property=prop.id, name=name)
        audit(actor, "building.create", building, now=now, property=prop.id, name=name)
    return building


def create_floor(
    building: Building, *, name: str, actor: Actor, now: dt.datetime, level: int | None = None
) -> Floor:
    actor.require("site.edit")
    name = _name(name, "name", 40)
    level = floor_level(name) if level is None else level
    if not isinstance(level, int) or isinstance(level, bool) or not -20 <= level <= 300:
        raise ValidationError(tr("a floor level from -20 to 300"), "level")
    with write_tx():
        if Floor.select().where((Floor.building == building.id) & (Floor.name == name)).exists():
            raise ValidationError(tr("floor %(name)s exists in this building", name=name), "name")
        floor = Floor.create(building=building.id, name=name, level=level)
        audit(actor, "floor.create", floor, now=now, building=building.id, name=name)
    return floor


def _check_kind(kind: Any) -> str:
    if kind not in ROOM_KINDS:
        raise ValidationError(tr("a room type is shop, office, dorm or common"), "kind")
    return str(kind)


def create_room(
    floor: Floor,
    *,
    number: str,
    actor: Actor,
    now: dt.datetime,
    area_cm2: int = 0,
    kind: str = "shop",
) -> Room:
    actor.require("site.edit")
    number = _name(number, "number", 40)
    kind = _check_kind(kind)
    if not isinstance(area_cm2, int) or not 0 <= area_cm2 <= MAX_AREA_CM2:
        raise ValidationError(tr("an area in m² such as 35.5"), "area")
    with write_tx():
        if Room.select().where((Room.floor == floor.id) & (Room.number == number)).exists():
            raise ValidationError(
                tr("room %(number)s exists on this floor", number=number), "number"
            )
        room = Room.create(floor=floor.id, number=number, area_cm2=area_cm2, kind=kind)
        audit(actor, "room.create", room, now=now, floor=floor.id, number=number, kind=kind)
    return room


@dataclass
class RoomPlan:
    """Rooms to add by pattern: (floor name, room number) in order, and those that exist."""

    building: str
    rooms: list[tuple[str, str]] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    area_cm2: int = 0
    kind: str = "shop"

    @property
    def count(self) -> int:
        return len(self.rooms)


def plan_rooms(
    prop: Property, *, building: str, floors: str, rooms: str, area: Any = "0", kind: str = "shop"
) -> RoomPlan:
    """The rooms a pattern makes: on each floor of ``floors``, the numbers of ``rooms`` prefixed
    by the floor ("1-5" x "01-20" -> 101 ... 520); nothing is written."""
    building = _name(building, "building", 80)
    floor_names = parse_range(floors, "floors")
    room_names = parse_range(rooms, "rooms")
    if len(floor_names) * len(room_names) > MAX_PATTERN_ROOMS:
        raise ValidationError(tr("at most %(n)s rooms at once", n=MAX_PATTERN_ROOMS), "rooms")
    plan = RoomPlan(building=building, area_cm2=parse_area(area), kind=_check_kind(kind))
    plan.rooms = [(f, f"{f}{r}") for f in floor_names for r in room_names]
    taken = {
        (f, n)
        for f, n in Room.select(Floor.name, Room.number)
        .join(Floor)
        .join(Building)
        .where((Building.property == prop.id) & (Building.name == building))
        .tuples()
    }
    plan.existing = [n for f, n in plan.rooms if (f, n) in taken]
    return plan


def add_rooms(prop: Property, plan: RoomPlan, *, actor: Actor, now: dt.datetime) -> int:
    """Write a pattern's rooms (creating the building and floors by name), all or nothing."""
    actor.require("site.edit")
    if plan.existing:
        raise ValidationError(
            tr(
                "%(n)s of these rooms exist already, e.g. %(room)s",
                n=len(plan.existing),
                room=plan.existing[0],
            ),
            "rooms",
        )
    with write_tx():
        b, _ = Building.get_or_create(property=prop.id, name=plan.building)
        floors: dict[str, Floor] = {}
        for floor_name, _number in plan.rooms:
            if floor_name not in floors:
                floors[floor_name], _ = Floor.get_or_create(
                    building=b, name=floor_name, defaults={"level": floor_level(floor_name)}
                )
        rows = [
            {"floor": floors[f].id, "number": n, "area_cm2": plan.area_cm2, "kind": plan.kind}
            for f, n in plan.rooms
        ]
        for i in range(0, len(rows), 500):
            Room.insert_many(rows[i : i + 500]).execute()
        audit(
            actor,
            "room.create_many",
            b,
            now=now,
            building=plan.building,
            rooms=len(rows),
            first=plan.rooms[0][1],
            last=plan.rooms[-1][1],
            kind=plan.kind,
        )
    return len(rows)


def update_room(room: Room, *, actor: Actor, now: dt.datetime, **changes: Any) -> Room:
    """Change a room's number, area (``area_cm2``) or type (``kind``); audited with before and
    after.  Only the given fields change; a bad value changes nothing."""
    actor.require("site.edit")
    unknown = set(changes) - {"number", "area_cm2", "kind"}
    if unknown:
        raise ValidationError(
            tr("unknown field '%(name)s'", name=sorted(unknown)[0]), sorted(unknown)[0]
        )
    with write_tx():
        current = Room.get_or_none(Room.id == room.id)
        if current is None:
            raise NotFound(tr("no such room"), "room")
        values = {"number": current.number, "area_cm2": current.area_cm2, "kind": current.kind}
        if "number" in changes:
            values["number"] = _name(changes["number"], "number", 40)
        if "area_cm2" in changes:
            area = changes["area_cm2"]
            if not isinstance(area, int) or isinstance(area, bool) or not 0 <= area <= MAX_AREA_CM2:
                raise ValidationError(tr("an area in m² such as 35.5"), "area")
            values["area_cm2"] = area
        if "kind" in changes:
            values["kind"] = _check_kind(changes["kind"])
        changed = field_changes(current, values)
        if not changed:
            return current
        if "number" in changed and (
            Room.select()
            .where(
                (Room.floor == current.floor_id)
                & (Room.number == values["number"])
                & (Room.id != current.id)
            )
            .exists()
        ):
            raise ValidationError(
                tr("room %(number)s exists on this floor", number=values["number"]), "number"
            )
        Room.update(**values).where(Room.id == current.id).execute()
        audit(actor, "room.update", current, now=now, changed=changed)
    return Room.get_by_id(room.id)
