"""Gateways set up from the console: add one, edit it, check that its link opens."""

from __future__ import annotations

from flask import Blueprint, request, url_for

from app.domain.devices import PARITIES, TRANSPORTS, check_link, update_gateway
from app.domain.errors import DomainError, ValidationError
from app.domain.site import create_gateway
from app.i18n import tr
from app.models import Gateway, utcnow
from app.web import (
    chosen_property,
    current_actor,
    htmx_redirect,
    login_required,
    owned_or_404,
    render,
    visible_properties,
)

bp = Blueprint("gateways", __name__, url_prefix="/gateways")

BAUDS = (1200, 2400, 4800, 9600, 19200, 38400, 115200)


def whole(form: dict, name: str, default: str = "") -> int:
    raw = (form.get(name) or default).strip()
    if not (raw.isascii() and raw.isdigit()):
        raise ValidationError(tr("a whole number"), name)
    return int(raw)


def _page(template: str, block: str, status: int = 200, **context):
    return render(
        template,
        block,
        properties=list(visible_properties()),
        bauds=BAUDS,
        parities=PARITIES,
        transports=TRANSPORTS,
        **context,
    ), status


@bp.get("/new")
@login_required("site.edit")
def new():
    return _page(
        "gateways/form.html",
        "gateway_form",
        gateway=None,
        form={"port": "4001", "baud": "9600"},
        errors={},
    )


@bp.post("/new")
@login_required("site.edit")
def create():
    form = request.form.to_dict()
    try:
        prop = chosen_property(form.get("property"))
        gw = create_gateway(
            prop,
            name=form.get("name", ""),
            host=form.get("host", ""),
            port=whole(form, "port"),
            baud=whole(form, "baud", "9600"),
            actor=current_actor(),
            now=utcnow(),
        )
    except DomainError as exc:
        return _page(
            "gateways/form.html",
            "gateway_form",
            422,
            gateway=None,
            form=form,
            errors={exc.field or "name": exc.message},
        )
    return htmx_redirect(url_for("gateways.edit", gateway_id=gw.id, created=1))


def _gateway_or_404(gateway_id: int) -> Gateway:
    return owned_or_404(Gateway, gateway_id)


def _form(gw: Gateway) -> dict:
    return {
        "name": gw.name,
        "host": gw.host,
        "port": str(gw.port),
        "baud": str(gw.baud),
        "parity": gw.parity,
        "timeout_ms": str(gw.timeout_ms),
        "transport": gw.transport,
        "enabled": "1" if gw.enabled else "",
    }


@bp.get("/<int:gateway_id>/edit")
@login_required("site.edit")
def edit(gateway_id: int):
    gw = _gateway_or_404(gateway_id)
    notice = tr("Gateway added.") if request.args.get("created") == "1" else ""
    return _page(
        "gateways/form.html", "gateway_form", gateway=gw, form=_form(gw), errors={}, notice=notice
    )


@bp.post("/<int:gateway_id>/edit")
@login_required("site.edit")
def save(gateway_id: int):
    gw = _gateway_or_404(gateway_id)
    form = request.form.to_dict()
    try:
        gw = update_gateway(
            gw,
            name=form.get("name", ""),
            host=form.get("host", ""),
            port=whole(form, "port"),
            baud=whole(form, "baud"),
            parity=form.get("parity", ""),
            timeout_ms=whole(form, "timeout_ms"),
            transport=form.get("transport", ""),
            enabled=bool(form.get("enabled")),
            actor=current_actor(),
            now=utcnow(),
        )
    except DomainError as exc:
        return _page(
            "gateways/form.html",
            "gateway_form",
            422,
            gateway=gw,
            form=form,
            errors={exc.field or "name": exc.message},
        )
    return _page(
        "gateways/form.html",
        "gateway_form",
        gateway=gw,
        form=_form(gw),
        errors={},
        notice=tr("Saved."),
    )


@bp.post("/<int:gateway_id>/test")
@login_required("site.edit")
def test(gateway_id: int):
    """Open the gateway's TCP link and say how it went (nothing is sent on the bus)."""
    result = check_link(_gateway_or_404(gateway_id))
    return render("gateways/form.html", "link_result", result=result)
