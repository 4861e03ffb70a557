"""Setting up the site tree from the console: a property (the first one on an empty box),
rooms by pattern, and editing a room."""

from __future__ import annotations

from flask import Blueprint, abort, redirect, request, url_for

from app import clock
from app.domain.errors import DomainError
from app.domain.money import parse_percent_bp
from app.domain.rooms import (
    ROOM_KINDS,
    add_rooms,
    format_area,
    parse_area,
    plan_rooms,
    update_room,
)
from app.domain.site import create_property
from app.models import Building, Floor, Property, Room, utcnow
from app.web import (
    check_property,
    current_actor,
    htmx_redirect,
    login_required,
    render,
    visible_properties,
)

bp = Blueprint("sites", __name__, url_prefix="/sites")

ZONES = ("Asia/Shanghai", "Asia/Hong_Kong", "Asia/Macau", "Asia/Taipei", "Asia/Urumqi", "UTC")


def first_run() -> bool:
    """An empty box: no property yet."""
    return not Property.select().exists()


# ---------------------------------------------------------------------------- property


@bp.get("/properties/new")
@login_required("site.edit")
def property_new():
    return _property_page({"timezone": clock.default_zone().key, "service_fee": "0"})


def _property_page(form: dict, errors: dict | None = None, status: int = 200):
    return render(
        "sites/property_new.html",
        "property_form",
        form=form,
        errors=errors or {},
        zones=ZONES,
        first_run=first_run(),
    ), status


@bp.post("/properties/new")
@login_required("site.edit")
def property_create():
    form = request.form.to_dict()
    try:
        prop = create_property(
            code=form.get("code", ""),
            name=form.get("name", ""),
            timezone=form.get("timezone", "").strip() or None,
            service_fee_bp=parse_percent_bp(form.get("service_fee", "") or "0", "service_fee"),
            actor=current_actor(),
            now=utcnow(),
        )
    except DomainError as exc:
        field = "service_fee" if exc.field == "service_fee_bp" else exc.field or "code"
        return _property_page(form, {field: exc.message}, 422)
    return htmx_redirect(url_for("sites.rooms_new", property=prop.id, created=1))


# ---------------------------------------------------------------------------- rooms


def _property_arg() -> Property:
    raw = request.values.get("property", "")
    prop = visible_properties().where(Property.id == int(raw)).first() if raw.isdigit() else None
    if prop is None:
        prop = visible_properties().first()
    if prop is None:
        abort(404)
    return prop


def _rooms_page(prop: Property, form: dict, errors=None, plan=None, notice="", status=200):
    return render(
        "sites/rooms_new.html",
        "rooms_form",
        prop=prop,
        properties=list(visible_properties()),
        form=form,
        errors=errors or {},
        plan=plan,
        notice=notice,
        kinds=ROOM_KINDS,
        buildings=list(
            Building.select().where(Building.property == prop.id).order_by(Building.name)
        ),
    ), status


@bp.get("/rooms/new")
@login_required("site.edit")
def rooms_new():
    if first_run():
        return redirect(url_for("sites.property_new"))
    prop = _property_arg()
    created = request.args.get("created") == "1"
    return _rooms_page(
        prop,
        {"building": "A", "floors": "1-3", "rooms": "01-10", "area": "0", "kind": "shop"},
        notice="created" if created else "",
    )


@bp.post("/rooms/new")
@login_required("site.edit")
def rooms_create():
    prop = _property_arg()
    form = request.form.to_dict()
    try:
        plan = plan_rooms(
            prop,
            building=form.get("building", ""),
            floors=form.get("floors", ""),
            rooms=form.get("rooms", ""),
            area=form.get("area", "0"),
            kind=form.get("kind", "shop"),
        )
        if form.get("confirm") != "1" or plan.existing:
            return _rooms_page(prop, form, plan=plan, status=422 if plan.existing else 200)
        n = add_rooms(prop, plan, actor=current_actor(), now=utcnow())
    except DomainError as exc:
        return _rooms_page(prop, form, {exc.field or "rooms": exc.message}, status=422)
    return _rooms_page(prop, {**form, "confirm": ""}, notice=str(n))


@bp.get("/rooms/<int:room_id>/edit")
@login_required("site.edit")
def room_edit(room_id: int):
    room = _room_or_404(room_id)
    return _room_page(
        room, {"number": room.number, "area": format_area(room.area_cm2), "kind": room.kind}
    )


def _room_or_404(room_id: int) -> Room:
    room = (
        Room.select(Room, Floor, Building)
        .join(Floor)
        .join(Building)
        .where(Room.id == room_id)
        .first()
    )
    if room is None:
        abort(404)
    check_property(room.floor.building.property_id)
    return room


def _room_page(room: Room, form: dict, errors=None, status=200, saved=False):
    return render(
        "sites/room_edit.html",
        "room_form",
        room=room,
        form=form,
        errors=errors or {},
        kinds=ROOM_KINDS,
        saved=saved,
    ), status


@bp.post("/rooms/<int:room_id>/edit")
@login_required("site.edit")
def room_save(room_id: int):
    room = _room_or_404(room_id)
    form = request.form.to_dict()
    try:
        room = update_room(
            room,
            number=form.get("number", ""),
            area_cm2=parse_area(form.get("area", "0")),
            kind=form.get("kind", ""),
            actor=current_actor(),
            now=utcnow(),
        )
    except DomainError as exc:
        return _room_page(room, form, {exc.field or "number": exc.message}, 422)
    room = _room_or_404(room.id)
    return _room_page(
        room,
        {"number": room.number, "area": format_area(room.area_cm2), "kind": room.kind},
        saved=True,
    )


@bp.get("/")
@login_required("site.edit")
def index():
    if first_run():
        return redirect(url_for("sites.property_new"))
    return redirect(url_for("sites.rooms_new"))
