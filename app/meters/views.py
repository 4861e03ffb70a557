"""Meters registered from the console: one, or a run of consecutive bus addresses on a
gateway (the meters grid and a meter's page are in ``app.console``)."""

from __future__ import annotations

from flask import Blueprint, request

from app.domain.devices import preview_meter_change, register_meters, update_meter
from app.domain.errors import DomainError, ValidationError
from app.domain.site import METER_KINDS, PROTOCOLS
from app.gateways.views import whole
from app.i18n import tr
from app.models import Gateway, Meter, Property, utcnow
from app.web import (
    current_actor,
    login_required,
    owned_or_404,
    property_scope,
    render,
    visible_properties,
)

bp = Blueprint("meters", __name__, url_prefix="/meters")


def _gateways():
    query = Gateway.select().order_by(Gateway.name)
    scope = property_scope()
    return query if scope is None else query.where(Gateway.property.in_(sorted(scope) or [0]))


def _page(form: dict, errors=None, added=None, status: int = 200):
    return render(
        "meters/new.html",
        "meters_form",
        form=form,
        errors=errors or {},
        added=added or [],
        gateways=list(_gateways()),
        properties=list(visible_properties()),
        kinds=METER_KINDS,
        protocols=[p for p in PROTOCOLS if p != "mqtt"],
    ), status


@bp.get("/new")
@login_required("site.edit")
def new():
    return _page(
        {
            "gateway": request.args.get("gateway", ""),
            "kind": "electricity",
            "protocol": "dlt645-2007",
            "address": "000000000001",
            "count": "1",
            "multiplier": "1",
        }
    )


@bp.post("/new")
@login_required("site.edit")
def create():
    form = request.form.to_dict()
    try:
        raw = form.get("gateway", "")
        gateway = _gateways().where(Gateway.id == int(raw)).first() if raw.isdigit() else None
        if raw and gateway is None:
            raise ValidationError(tr("choose a gateway"), "gateway")
        if gateway is not None:
            prop = Property.get_by_id(gateway.property_id)
        else:
            pid = form.get("property", "")
            prop = (
                visible_properties().where(Property.id == int(pid)).first()
                if pid.isdigit()
                else None
            )
            if prop is None:
                raise ValidationError(tr("choose a property"), "property")
        meters = register_meters(
            prop,
            kind=form.get("kind", ""),
            protocol=form.get("protocol", ""),
            first_address=form.get("address", ""),
            count=whole(form, "count", "1"),
            serial_prefix=form.get("serial_prefix", ""),
            gateway=gateway,
            multiplier=whole(form, "multiplier", "1"),
            actor=current_actor(),
            now=utcnow(),
        )
    except DomainError as exc:
        return _page(form, {exc.field or "address": exc.message}, status=422)
    return _page(form, added=meters)


def _meter_form(meter: Meter) -> dict:
    return {
        "address": meter.address,
        "gateway": str(meter.gateway_id or ""),
        "multiplier": str(meter.multiplier),
        "max_rate": str(meter.max_rate),
        "power_limit_w": str(meter.power_limit_w),
        "poll_class": meter.poll_class,
    }


def _edit_page(meter, form, errors=None, plan=None, status=200, saved=False):
    gateways = list(_gateways().where(Gateway.property == meter.property_id))
    return render(
        "meters/edit.html",
        "meter_form",
        meter=meter,
        form=form,
        errors=errors or {},
        plan=plan,
        saved=saved,
        gateways=gateways,
    ), status


@bp.get("/<int:meter_id>/edit")
@login_required("site.edit")
def edit(meter_id: int):
    meter = owned_or_404(Meter, meter_id)
    return _edit_page(meter, _meter_form(meter))


@bp.post("/<int:meter_id>/edit")
@login_required("site.edit")
def save(meter_id: int):
    """Check the edit; a change of multiplier is shown with the reading it counts from and
    needs a second, confirming submit."""
    meter = owned_or_404(Meter, meter_id)
    form = request.form.to_dict()
    try:
        raw_gateway = (form.get("gateway") or "").strip()
        changes = {
            "address": form.get("address", ""),
            "gateway": int(raw_gateway) if raw_gateway.isdigit() else None,
            "multiplier": whole(form, "multiplier"),
            "max_rate": whole(form, "max_rate"),
            "power_limit_w": whole(form, "power_limit_w", "0"),
            "poll_class": form.get("poll_class", "").strip(),
        }
        plan = preview_meter_change(meter, **changes)
        if plan.moves_money and form.get("confirm") != "1":
            return _edit_page(meter, form, plan=plan)
        meter = update_meter(meter, actor=current_actor(), now=utcnow(), **changes)
    except DomainError as exc:
        return _edit_page(meter, form, {exc.field or "address": exc.message}, status=422)
    return _edit_page(meter, _meter_form(meter), saved=True)
