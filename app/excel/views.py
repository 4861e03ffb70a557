"""Import gateways and meters from .xlsx (template, preview with row errors, one confirm) and
export the lists (meters, accounts, sales, readings) as .xlsx."""

from __future__ import annotations

import datetime as dt
import re
import secrets
import time
from pathlib import Path

from flask import Blueprint, Response, abort, current_app, request, url_for

from app import clock
from app.console.views import _account_query
from app.domain import exports
from app.domain.errors import DomainError
from app.domain.imports import (
    COLUMNS,
    KINDS,
    ImportRejected,
    column_heading,
    file_digest,
    import_gateways,
    import_meters,
    parse_workbook,
    template_workbook,
    validate,
)
from app.i18n import tr
from app.models import Account, Meter, Property, Sale, utcnow
from app.web import (
    current_actor,
    display_zone,
    htmx_redirect,
    login_required,
    property_scope,
    render,
    visible_properties,
)

bp = Blueprint("excel", __name__)

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_UPLOAD = 20 * 1024 * 1024
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{20,64}$")
KEEP_UPLOADS = 24 * 3600
ERRORS_SHOWN = 500


def _xlsx(data: bytes, name: str) -> Response:
    return Response(
        data,
        mimetype=XLSX,
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )


def _upload_dir() -> Path:
    path = Path(current_app.config["STATE_DIR"]) / "imports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _keep_upload(data: bytes) -> str:
    """Keep the uploaded file until it is confirmed (files older than a day are removed)."""
    folder = _upload_dir()
    cutoff = time.time() - KEEP_UPLOADS
    for old in folder.glob("*.xlsx"):
        if old.stat().st_mtime < cutoff:
            old.unlink(missing_ok=True)
    token = secrets.token_urlsafe(24)
    (folder / f"{token}.xlsx").write_bytes(data)
    return token


def _upload_path(token: str) -> Path | None:
    if not TOKEN_RE.match(token or ""):
        return None
    path = _upload_dir() / f"{token}.xlsx"
    return path if path.is_file() else None


def _kind(value: str | None) -> str:
    return value if value in KINDS else "meters"


def _page(status: int = 200, **ctx):
    properties = list(visible_properties())
    ctx.setdefault("kind", _kind(request.values.get("kind")))
    ctx.setdefault("errors", {})
    ctx.setdefault("plan", None)
    ctx.setdefault("create_rooms", False)
    ctx.setdefault("property_id", properties[0].id if properties else None)
    ctx.setdefault("imported", None)
    return render(
        "excel/import.html",
        properties=properties,
        columns=COLUMNS,
        heading=column_heading,
        errors_shown=ERRORS_SHOWN,
        **ctx,
    ), status


def _property(value: str | None) -> Property | None:
    query = visible_properties()
    if value and value.isdigit():
        return query.where(Property.id == int(value)).first()
    return query.first()


@bp.get("/import")
@login_required("site.edit")
def import_page():
    imported = request.args.get("imported")
    return _page(imported=int(imported) if imported and imported.isdigit() else None)


@bp.get("/import/template/<kind>.xlsx")
@login_required("site.edit")
def import_template(kind: str):
    if kind not in KINDS:
        abort(404)
    return _xlsx(template_workbook(kind), f"meterdesk-{kind}-template.xlsx")


@bp.post("/import/preview")
@login_required("site.edit")
def import_preview():
    kind = _kind(request.form.get("kind"))
    create_rooms = request.form.get("create_rooms") == "1"
    prop = _property(request.form.get("property"))
    ctx = {"kind": kind, "create_rooms": create_rooms, "property_id": prop.id if prop else None}
    if prop is None:
        return _page(422, errors={"property": tr("create a property first")}, **ctx)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _page(422, errors={"file": tr("choose an .xlsx file")}, **ctx)
    data = upload.stream.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        return _page(422, errors={"file": tr("the file is larger than 20 MB")}, **ctx)
    try:
        rows = parse_workbook(data, kind)
    except DomainError as exc:
        return _page(422, errors={"file": exc.message}, **ctx)
    plan = validate(kind, prop, rows, create_rooms=create_rooms)
    token = _keep_upload(data) if plan.ok else ""
    return _page(
        200 if plan.ok else 422,
        plan=plan,
        total=len(rows),
        token=token,
        filename=upload.filename,
        **ctx,
    )


@bp.post("/import/confirm")
@login_required("site.edit")
def import_confirm():
    kind = _kind(request.form.get("kind"))
    create_rooms = request.form.get("create_rooms") == "1"
    prop = _property(request.form.get("property"))
    ctx = {"kind": kind, "create_rooms": create_rooms, "property_id": prop.id if prop else None}
    path = _upload_path(request.form.get("token", ""))
    if path is None or prop is None:
        return _page(
            409,
            errors={
                "file": tr("this upload was already imported or has expired; upload the file again")
            },
            **ctx,
        )
    data = path.read_bytes()
    try:
        rows = parse_workbook(data, kind)
        if kind == "gateways":
            n = import_gateways(
                prop, rows, actor=current_actor(), now=utcnow(), digest=file_digest(data)
            )
        else:
            n = import_meters(
                prop,
                rows,
                actor=current_actor(),
                now=utcnow(),
                create_rooms=create_rooms,
                digest=file_digest(data),
            )
    except ImportRejected as exc:
        plan = validate(kind, prop, rows, create_rooms=create_rooms)
        plan.errors = exc.errors
        return _page(422, plan=plan, total=len(rows), token="", **ctx)
    except DomainError as exc:
        return _page(422, errors={"file": exc.message}, **ctx)
    path.unlink(missing_ok=True)
    return htmx_redirect(url_for("excel.import_page", kind=kind, imported=n))


# ---------------------------------------------------------------------------- export
def _day(field: str, default: dt.date) -> dt.date:
    text = request.args.get(field, "").strip()
    if not text:
        return default
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise DomainError(tr("'%(text)s' is not a date (YYYY-MM-DD)", text=text), field) from None


def _range() -> tuple[dt.date, dt.date, dt.datetime, dt.datetime]:
    """The local days ``from``..``to`` (inclusive; default this month so far) as UTC bounds,
    in the zone of the properties the user sees."""
    zone = display_zone()
    today = clock.site_today(zone, clock.utcnow())
    start_day = _day("from", today.replace(day=1))
    end_day = _day("to", today)
    if end_day < start_day:
        raise DomainError(tr("the end date is before the start date"), "to")
    return (
        start_day,
        end_day,
        clock.local_midnight(zone, start_day),
        clock.local_midnight(zone, end_day + dt.timedelta(days=1)),
    )


def _export_page(status: int = 200, errors: dict[str, str] | None = None):
    today = clock.site_today(display_zone(), clock.utcnow())
    return render(
        "excel/export.html",
        errors=errors or {},
        args=request.args,
        default_from=today.replace(day=1).isoformat(),
        default_to=today.isoformat(),
    ), status


@bp.get("/export")
@login_required("account.view")
def export_page():
    return _export_page()


def _scoped(query, field):
    """Limit an export to the properties the signed-in user may see."""
    scope = property_scope()
    return query if scope is None else query.where(field.in_(sorted(scope) or [0]))


@bp.get("/export/meters.xlsx")
@login_required("account.view")
def export_meters():
    query = exports.meters_query(
        q=request.args.get("q", ""),
        kind=request.args.get("kind", ""),
        status=request.args.get("status", ""),
    )
    query = _scoped(query, Meter.property)
    return _xlsx(exports.meters_workbook(query), "meters.xlsx")


@bp.get("/export/accounts.xlsx")
@login_required("account.view")
def export_accounts():
    query = _scoped(_account_query(request.args.get("q", "")), Account.property)
    status = request.args.get("status", "")
    if status:
        query = query.where(Account.status == status)
    return _xlsx(exports.accounts_workbook(query), "accounts.xlsx")


@bp.get("/export/sales.xlsx")
@login_required("money.view")
def export_sales():
    try:
        first, last, start, end = _range()
    except DomainError as exc:
        return _export_page(422, {"sales_" + (exc.field or "from"): exc.message})
    data = exports.sales_workbook(_scoped(exports.sales_query(start=start, end=end), Sale.property))
    return _xlsx(data, f"sales-{first:%Y%m%d}-{last:%Y%m%d}.xlsx")


@bp.get("/export/readings.xlsx")
@login_required("account.view")
def export_readings():
    serial = request.args.get("meter", "").strip()
    meter = None
    try:
        if serial:
            meter = Meter.get_or_none(Meter.serial == serial)
            scope = property_scope()
            if meter is not None and scope is not None and meter.property_id not in scope:
                meter = None
            if meter is None:
                raise DomainError(tr("unknown meter '%(serial)s'", serial=serial), "meter")
        first, last, start, end = _range()
    except DomainError as exc:
        return _export_page(422, {"readings_" + (exc.field or "from"): exc.message})
    query = exports.readings_query(start=start, end=end, meter=meter)
    scope = property_scope()
    if scope is not None:
        query = query.where(Meter.property.in_(sorted(scope) or [0]))  # readings_query joins Meter
    data = exports.readings_workbook(query, with_money=current_actor().can("money.view"))
    safe = re.sub(r"[^A-Za-z0-9_-]", "", serial)
    name = f"readings-{safe + '-' if safe else ''}{first:%Y%m%d}-{last:%Y%m%d}.xlsx"
    return _xlsx(data, name)
