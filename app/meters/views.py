"""Meters registered from the console: one, or a run of consecutive bus addresses on a
gateway (the meters grid and a meter's page are in ``app.console``)."""

from __future__ import annotations

from flask import Blueprint, request

from app.domain.devices import register_meters
from app.domain.errors import DomainError, ValidationError
from app.domain.site import METER_KINDS, PROTOCOLS
from app.gateways.views import whole
from app.i18n import tr
from app.models import Gateway, Property, utcnow
from app.web import (
    current_actor,
    login_required,
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
