"""The overview page: takings, usage trend, top consumers, device status, balances to watch."""

from __future__ import annotations

from flask import Blueprint
from flask_babel import gettext as _

from app.domain.money import format_fen
from app.domain.overview import build_overview
from app.models import utcnow
from app.web import current_actor, display_zone, login_required, property_scope, render

bp = Blueprint("overview", __name__)


def _kwh(cwh: int) -> str:
    return format_fen(cwh)


def _m3(litres: int) -> str:
    return f"{litres // 1000}.{litres % 1000:03d}"


def _charts(ov, money: bool) -> dict:
    """Chart data for app/static/charts.js: labels, series and axis names, numbers as decimal
    strings (shown, never computed with)."""
    charts = {
        "usage": {
            "type": "line",
            "labels": [d.strftime("%m-%d") for d, _e, _w in ov.usage],
            "axes": [_("kWh"), _("m³")],
            "series": [
                {
                    "name": _("Electricity (kWh)"),
                    "axis": 0,
                    "values": [_kwh(e) for _d, e, _w in ov.usage],
                },
                {"name": _("Water (m³)"), "axis": 1, "values": [_m3(w) for _d, _e, w in ov.usage]},
            ],
        },
    }
    if money:
        charts["revenue"] = {
            "type": "bar",
            "labels": [d.strftime("%Y-%m") for d, _f in ov.months],
            "axes": [_("Yuan")],
            "series": [
                {
                    "name": _("Takings (¥)"),
                    "axis": 0,
                    "values": [format_fen(f) for _d, f in ov.months],
                }
            ],
        }
    return charts


@bp.get("/overview")
@login_required("overview.view")
def index():
    money = current_actor().can("money.view")
    zone = display_zone()
    scope = property_scope()
    ov = build_overview(
        now=utcnow(), money=money, zone=zone, properties=None if scope is None else sorted(scope)
    )
    return render("overview/index.html", "panels", ov=ov, money=money, charts=_charts(ov, money))
