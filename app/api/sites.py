"""The site tree through the API: properties, buildings, floors and rooms, created and read
(and rooms changed) through the same domain functions as the console."""

from __future__ import annotations

from typing import Any

from flask import jsonify

from app.api.views import _actor, _body, _page, auth, bp
from app.domain.errors import NotFound, ValidationError
from app.domain.money import parse_percent_bp
from app.domain.rooms import create_building, create_floor, create_room, format_area, parse_area
from app.domain.rooms import update_room as update_room_record
from app.domain.site import create_property
from app.i18n import tr
from app.models import Building, Floor, Property, Room, utcnow
from app.web import property_scope


def _visible(query, field):
    """Token-holders see every property until tokens are bound to properties."""
    scope = property_scope()
    return query if scope is None else query.where(field.in_(sorted(scope) or [0]))


def _id(body: dict, name: str) -> int:
    value = body.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**63:
        raise ValidationError(tr("%(name)s is a whole number", name=name), name)
    return value


def _text(body: dict, name: str, default: str | None = None) -> str:
    value = body.get(name, default)
    if not isinstance(value, str):
        raise ValidationError(tr("%(name)s is a string", name=name), name)
    return value


def property_json(p: Property) -> dict[str, Any]:
    return {"id": p.id, "code": p.code, "name": p.name, "timezone": p.timezone}


def building_json(b: Building) -> dict[str, Any]:
    return {"id": b.id, "property_id": b.property_id, "name": b.name}


def floor_json(f: Floor) -> dict[str, Any]:
    return {"id": f.id, "building_id": f.building_id, "name": f.name, "level": f.level}


def room_json(r: Room) -> dict[str, Any]:
    return {
        "id": r.id,
        "floor_id": r.floor_id,
        "number": r.number,
        "area": format_area(r.area_cm2),
        "kind": r.kind,
    }


@bp.get("/properties")
@auth("account.view")
def properties():
    query = _visible(Property.select().order_by(Property.id), Property.id)
    return jsonify({"items": [property_json(p) for p in query]})


@bp.post("/properties")
@auth("site.edit")
def properties_create():
    body = _body()
    fee = body.get("service_fee", "0")
    prop = create_property(
        code=_text(body, "code"),
        name=_text(body, "name"),
        timezone=_text(body, "timezone", "") or None,
        service_fee_bp=parse_percent_bp(fee, "service_fee"),
        actor=_actor(),
        now=utcnow(),
    )
    return jsonify(property_json(prop)), 201


def _property(property_id: int) -> Property:
    prop = _visible(Property.select().where(Property.id == property_id), Property.id).first()
    if prop is None:
        raise NotFound(tr("no such property"), "property_id")
    return prop


@bp.get("/buildings")
@auth("account.view")
def buildings():
    limit, offset = _page()
    query = _visible(Building.select().order_by(Building.id), Building.property)
    return jsonify({"items": [building_json(b) for b in query.limit(limit).offset(offset)]})


@bp.post("/buildings")
@auth("site.edit")
def buildings_create():
    body = _body()
    prop = _property(_id(body, "property_id"))
    building = create_building(prop, name=_text(body, "name"), actor=_actor(), now=utcnow())
    return jsonify(building_json(building)), 201


def _building(building_id: int) -> Building:
    building = _visible(
        Building.select().where(Building.id == building_id), Building.property
    ).first()
    if building is None:
        raise NotFound(tr("no such building"), "building_id")
    return building


@bp.get("/floors")
@auth("account.view")
def floors():
    limit, offset = _page()
    query = _visible(
        Floor.select(Floor, Building).join(Building).order_by(Floor.id), Building.property
    )
    return jsonify({"items": [floor_json(f) for f in query.limit(limit).offset(offset)]})


@bp.post("/floors")
@auth("site.edit")
def floors_create():
    body = _body()
    building = _building(_id(body, "building_id"))
    level = body.get("level")
    if level is not None and (not isinstance(level, int) or isinstance(level, bool)):
        raise ValidationError(tr("%(name)s is a whole number", name="level"), "level")
    floor = create_floor(
        building, name=_text(body, "name"), level=level, actor=_actor(), now=utcnow()
    )
    return jsonify(floor_json(floor)), 201


def _rooms_query():
    return _visible(
        Room.select(Room, Floor, Building).join(Floor).join(Building), Building.property
    )


def _floor(floor_id: int) -> Floor:
    floor = _visible(
        Floor.select(Floor, Building).join(Building).where(Floor.id == floor_id),
        Building.property,
    ).first()
    if floor is None:
        raise NotFound(tr("no such floor"), "floor_id")
    return floor


@bp.get("/rooms")
@auth("account.view")
def rooms():
    limit, offset = _page()
    query = _rooms_query().order_by(Room.id).limit(limit).offset(offset)
    return jsonify({"items": [room_json(r) for r in query]})


@bp.post("/rooms")
@auth("site.edit")
def rooms_create():
    body = _body()
    floor = _floor(_id(body, "floor_id"))
    room = create_room(
        floor,
        number=_text(body, "number"),
        area_cm2=parse_area(_text(body, "area", "0"), "area"),
        kind=_text(body, "kind", "shop"),
        actor=_actor(),
        now=utcnow(),
    )
    return jsonify(room_json(room)), 201


def _room(room_id: int) -> Room:
    room = _rooms_query().where(Room.id == room_id).first()
    if room is None:
        raise NotFound(tr("no such room"), "room_id")
    return room


@bp.get("/rooms/<int:room_id>")
@auth("account.view")
def room_get(room_id: int):
    return jsonify(room_json(_room(room_id)))


@bp.patch("/rooms/<int:room_id>")
@auth("site.edit")
def room_update(room_id: int):
    room = _room(room_id)
    body = _body()
    unknown = set(body) - {"number", "area", "kind"}
    if unknown:
        name = sorted(unknown)[0]
        raise ValidationError(tr("unknown field '%(name)s'", name=name), name)
    changes: dict[str, Any] = {}
    if "number" in body:
        changes["number"] = _text(body, "number")
    if "area" in body:
        changes["area_cm2"] = parse_area(_text(body, "area"), "area")
    if "kind" in body:
        changes["kind"] = _text(body, "kind")
    room = update_room_record(room, actor=_actor(), now=utcnow(), **changes)
    return jsonify(room_json(room))
