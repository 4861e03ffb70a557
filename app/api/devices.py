"""Gateways and meters through the API: create and change, through the same domain functions
as the console."""

from __future__ import annotations

from typing import Any

from flask import jsonify

from app.api.sites import _id, _property, _text, _visible
from app.api.views import _actor, _body, _page, auth, bp
from app.domain.devices import GATEWAY_FIELDS, METER_FIELDS, update_gateway, update_meter
from app.domain.errors import NotFound, ValidationError
from app.domain.site import create_gateway, create_meter
from app.i18n import tr
from app.models import Gateway, Meter, utcnow


def gateway_json(g: Gateway) -> dict[str, Any]:
    return {
        "id": g.id,
        "property_id": g.property_id,
        **{name: getattr(g, name) for name in GATEWAY_FIELDS},
        "online": g.online,
    }


def _int(body: dict, name: str, default: int | None = None) -> int:
    value = body.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or abs(value) >= 2**63:
        raise ValidationError(tr("%(name)s is a whole number", name=name), name)
    return value


@bp.get("/gateways")
@auth("account.view")
def gateways():
    limit, offset = _page()
    query = _visible(Gateway.select().order_by(Gateway.id), Gateway.property)
    return jsonify({"items": [gateway_json(g) for g in query.limit(limit).offset(offset)]})


@bp.post("/gateways")
@auth("site.edit")
def gateways_create():
    body = _body()
    prop = _property(_id(body, "property_id"))
    gw = create_gateway(
        prop,
        name=_text(body, "name"),
        host=_text(body, "host"),
        port=_int(body, "port"),
        baud=_int(body, "baud", 9600),
        actor=_actor(),
        now=utcnow(),
    )
    return jsonify(gateway_json(gw)), 201


def _gateway(gateway_id: int) -> Gateway:
    gw = _visible(Gateway.select().where(Gateway.id == gateway_id), Gateway.property).first()
    if gw is None:
        raise NotFound(tr("no such gateway"), "gateway_id")
    return gw


@bp.patch("/gateways/<int:gateway_id>")
@auth("site.edit")
def gateways_update(gateway_id: int):
    gw = update_gateway(_gateway(gateway_id), actor=_actor(), now=utcnow(), **_body())
    return jsonify(gateway_json(gw))


def meter_json(m: Meter) -> dict[str, Any]:
    return {
        "id": m.id,
        "property_id": m.property_id,
        "kind": m.kind,
        "serial": m.serial,
        "protocol": m.protocol,
        "address": m.address,
        "gateway_id": m.gateway_id,
        "room_id": m.room_id,
        "multiplier": m.multiplier,
        "max_rate": m.max_rate,
        "power_limit_w": m.power_limit_w,
        "poll_class": m.poll_class,
        "status": m.status,
    }


@bp.post("/meters")
@auth("site.edit")
def meters_create():
    body = _body()
    prop = _property(_id(body, "property_id"))
    gateway = _gateway(_id(body, "gateway_id")) if body.get("gateway_id") is not None else None
    if gateway is not None and gateway.property_id != prop.id:
        raise ValidationError(tr("the gateway belongs to another property"), "gateway_id")
    meter = create_meter(
        prop,
        serial=_text(body, "serial"),
        kind=_text(body, "kind"),
        protocol=_text(body, "protocol", "dlt645-2007"),
        address=_text(body, "address", ""),
        gateway=gateway,
        multiplier=_int(body, "multiplier", 1),
        actor=_actor(),
        now=utcnow(),
    )
    return jsonify(meter_json(meter)), 201


@bp.patch("/meters/<int:meter_id>")
@auth("site.edit")
def meters_update(meter_id: int):
    meter = _visible(Meter.select().where(Meter.id == meter_id), Meter.property).first()
    if meter is None:
        raise NotFound(tr("no such meter"), "meter_id")
    body = _body()
    changes = {("gateway" if k == "gateway_id" else k): v for k, v in body.items()}
    unknown = set(changes) - set(METER_FIELDS)
    if unknown:
        name = sorted(unknown)[0]
        raise ValidationError(tr("unknown field '%(name)s'", name=name), name)
    meter = update_meter(meter, actor=_actor(), now=utcnow(), **changes)
    return jsonify(meter_json(meter))
