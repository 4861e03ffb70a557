"""Meters grid with batch actions, batch progress, gateways, and one meter's detail.

Routes live on the console blueprint (``console.meters`` and friends); this module is imported
by ``app.console.views`` so they are registered with it."""

from __future__ import annotations

import io

from flask import Response, abort, request, url_for
from flask_babel import gettext as _
from openpyxl import Workbook

from app import clock
from app.console.views import PAGE, bp
from app.domain.accounts import set_keep_power
from app.domain.batch import ACTIONS, batch_state, failures, start_batch
from app.domain.control import force_supply, queue_read
from app.domain.errors import DomainError, PermissionDenied
from app.domain.meter_grid import (
    GRID_STATUSES,
    KINDS,
    GridFilter,
    display_status,
    grid_query,
    matching_ids,
)
from app.i18n import label
from app.models import BatchRun, Building, Command, Gateway, Meter, Reading, Tariff, utcnow
from app.web import (
    check_property,
    current_actor,
    display_zone,
    format_local,
    htmx_redirect,
    login_required,
    page_arg,
    property_scope,
    render,
)

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
SINGLE_ACTIONS = ("read", "trip", "restore", "keep_power", "release")


def _rows(meters, now):
    return [(m, display_status(m, m.account.status if m.account_id else None, now)) for m in meters]


def _grid(flt: GridFilter, page: int, *, errors=None, form=None, picked=(), status_code=200):
    now = utcnow()
    query = grid_query(flt, now=now, property_ids=property_scope())
    total = query.count()
    pages = max((total + PAGE - 1) // PAGE, 1)
    page = min(page, pages)
    rows = _rows(query.paginate(page, PAGE), now)
    body = render(
        "console/meters.html",
        "results",
        rows=rows,
        flt=flt,
        args=flt.as_args(),
        page=page,
        pages=pages,
        total=total,
        statuses=GRID_STATUSES,
        kinds=KINDS,
        actions=list(ACTIONS),
        buildings=list(Building.select().order_by(Building.name)),
        tariffs=list(Tariff.select().order_by(Tariff.utility, Tariff.name)),
        errors=errors or {},
        form=form or {},
        picked=set(picked),
    )
    return body, status_code


@bp.get("/meters")
@login_required("account.view")
def meters():
    return _grid(GridFilter.from_args(request.args), page_arg())


def _selected_ids(form) -> list[int]:
    scope = property_scope()
    if form.get("scope") == "filter":
        return matching_ids(GridFilter.from_args(form), now=utcnow(), property_ids=scope)
    ids = [int(v) for v in form.getlist("meter_id") if v.isdigit()]
    if scope is not None:  # meters of other properties are dropped, as if they did not exist
        ids = [
            i
            for (i,) in Meter.select(Meter.id)
            .where(Meter.id.in_(ids) & Meter.property.in_(sorted(scope) or [0]))
            .tuples()
        ]
    return ids


@bp.post("/meters/batch")
@login_required("batch.run")
def meters_batch():
    form = request.form
    action = form.get("action", "")
    params = {k: form.get(k, "") for k in ("reason", "tariff_id", "alarm1", "alarm2")}
    try:
        run = start_batch(
            action, _selected_ids(form), actor=current_actor(), now=utcnow(), params=params
        )
    except PermissionDenied:
        abort(403)
    except DomainError as exc:
        return _grid(
            GridFilter.from_args(form),
            1,
            errors={exc.field or "action": exc.message},
            form=form.to_dict(),
            picked=form.getlist("meter_id"),
            status_code=422,
        )
    from workers.tasks.batch import run_batch_task

    run_batch_task(run.id)
    return htmx_redirect(url_for("console.batch_detail", run_id=run.id))


@bp.get("/meters/export")
@login_required("account.view")
def meters_export():
    """The selected meters (or every meter matching the filter) as an Excel workbook."""
    now = utcnow()
    flt = GridFilter.from_args(request.args)
    query = grid_query(flt, now=now, property_ids=property_scope())
    ids = [int(v) for v in request.args.getlist("meter_id") if v.isdigit()]
    if request.args.get("scope") != "filter" and ids:
        query = query.where(Meter.id.in_(ids))
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(title="meters")
    ws.append(
        [
            _("Serial"),
            _("Type"),
            _("Building"),
            _("Room"),
            _("Account"),
            _("Tenant"),
            _("Status"),
            _("Desired supply"),
            _("Confirmed supply"),
            _("Last reading"),
            _("Read at"),
        ]
    )
    for m, status in _rows(query, now):
        room = m.room if m.room_id else None
        ws.append(
            [
                m.serial,
                label(m.kind),
                room.floor.building.name if room else "",
                room.number if room else "",
                m.account.number if m.account_id else "",
                m.account.tenant.name if m.account_id else "",
                label(status),
                label(m.relay_desired),
                label(m.relay_confirmed) if m.relay_confirmed else "",
                m.last_total,
                format_local(m.last_read_at),
            ]
        )
    buf = io.BytesIO()
    wb.save(buf)
    resp = Response(buf.getvalue(), mimetype=XLSX)
    resp.headers["Content-Disposition"] = (
        f'attachment; filename="meters-{clock.local(now, display_zone()):%Y%m%d-%H%M}.xlsx"'
    )
    return resp


@bp.get("/batches")
@login_required("account.view")
def batches():
    runs = list(
        BatchRun.select().order_by(BatchRun.created_at.desc(), BatchRun.id.desc()).limit(50)
    )
    now = utcnow()
    states = {r.id: batch_state(r, now=now) for r in runs}
    return render("console/batches.html", runs=runs, states=states)


@bp.get("/batches/<int:run_id>")
@login_required("account.view")
def batch_detail(run_id: int):
    run = BatchRun.get_or_none(BatchRun.id == run_id)
    if run is None:
        abort(404)
    return render(
        "console/batch.html",
        "progress",
        run=run,
        state=batch_state(run, now=utcnow()),
        failures=failures(run),
    )


@bp.get("/gateways")
@login_required("account.view")
def gateways():
    from peewee import fn

    counts = {
        gid: (total, offline or 0)
        for gid, total, offline in Meter.select(
            Meter.gateway,
            fn.COUNT(Meter.id),
            fn.SUM(Meter.online == False),
        )
        .where(Meter.gateway.is_null(False) & (Meter.status == "active"))
        .group_by(Meter.gateway)
        .tuples()
    }
    gateways = Gateway.select().order_by(Gateway.name, Gateway.id)
    scope = property_scope()
    if scope is not None:
        gateways = gateways.where(Gateway.property.in_(sorted(scope) or [0]))
    rows = list(gateways)
    return render("console/gateways.html", gateways=rows, counts=counts)


def _meter_or_404(meter_id: int) -> Meter:
    meter = Meter.get_or_none(Meter.id == meter_id)
    if meter is not None:
        check_property(meter.property_id)
    if meter is None:
        abort(404)
    return meter


def _detail(meter: Meter, *, error: str = "", status_code: int = 200):
    now = utcnow()
    account = meter.account if meter.account_id else None
    readings = list(
        Reading.select().where(Reading.meter == meter).order_by(Reading.read_at.desc()).limit(20)
    )
    commands = list(
        Command.select().where(Command.meter == meter).order_by(Command.id.desc()).limit(30)
    )
    status = display_status(meter, account.status if account else None, now)
    return render(
        "console/meter.html",
        "meter_actions",
        meter=meter,
        account=account,
        status=status,
        readings=readings,
        commands=commands,
        error=error,
    ), status_code


@bp.get("/meters/<int:meter_id>")
@login_required("account.view")
def meter_detail(meter_id: int):
    return _detail(_meter_or_404(meter_id))


@bp.post("/meters/<int:meter_id>/action")
@login_required("meter.control")
def meter_action(meter_id: int):
    meter = _meter_or_404(meter_id)
    action = request.form.get("action", "")
    reason = request.form.get("reason", "")
    actor, now = current_actor(), utcnow()
    try:
        if action == "read":
            queue_read(meter, actor=actor, now=now)
        elif action in ("trip", "restore"):
            force_supply(meter, on=action == "restore", actor=actor, now=now, reason=reason)
        elif action in ("keep_power", "release"):
            set_keep_power(meter, on=action == "keep_power", actor=actor, now=now, reason=reason)
        else:
            abort(400)
    except PermissionDenied:
        abort(403)
    except DomainError as exc:
        return _detail(Meter.get_by_id(meter.id), error=exc.message, status_code=422)
    return htmx_redirect(url_for("console.meter_detail", meter_id=meter.id))
