"""Managers' pages for scheduled operations: the job history, apportionment (dry run, then
post), and monthly bills with their Excel downloads.  Thin: parse, call the domain, render."""

from __future__ import annotations

import json

from flask import Blueprint, Response, abort, redirect, request, url_for
from flask_babel import gettext as _

from app.clock import month_of, previous_month
from app.domain.apportionment import dry_run, month_label, parse_month, post_apportionment
from app.domain.bills import billed_accounts, bills_for, compute_bill, issued_bill
from app.domain.errors import DomainError
from app.domain.jobs import KINDS as JOB_KINDS
from app.domain.jobs import job_state, reset_job
from app.domain.water import pending_water_fen
from app.models import Account, Property, utcnow
from app.models.operations import ApportionmentGroup, ApportionmentPart, ApportionmentRun, Job
from app.operations.excel import bill_workbook, bills_workbook
from app.operations.labels import op_label
from app.web import current_actor, htmx_redirect, login_required, page_arg, render

bp = Blueprint("operations", __name__, url_prefix="/operations")

PAGE = 50
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@bp.app_template_filter("oplabel")
def _oplabel(code: object) -> str:
    return op_label(code)


@bp.app_template_filter("json_counts")
def _json_counts(text: str) -> dict:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _property() -> Property:
    """The property named by ?property=, else the first one."""
    prop_id = request.values.get("property", "")
    prop = None
    if prop_id.isdigit():
        prop = Property.get_or_none(Property.id == int(prop_id))
    if prop is None:
        prop = Property.select().order_by(Property.id).first()
    if prop is None:
        abort(404)
    return prop


def _month(prop: Property, errors: dict[str, str]) -> int:
    """?month=YYYY-MM, else the property's previous local month."""
    default = previous_month(month_of(utcnow(), prop))
    text = request.values.get("month", "").strip()
    if not text:
        return default
    try:
        return parse_month(text)
    except DomainError as exc:
        errors["month"] = exc.message
        return default


@bp.get("/")
@login_required("operations.view")
def index():
    return redirect(url_for("operations.jobs"))


# ---------------------------------------------------------------- jobs


@bp.get("/jobs")
@login_required("operations.view")
def jobs():
    kind = request.args.get("kind", "")
    status = request.args.get("status", "")
    page = page_arg()
    query = Job.select().order_by(Job.started_at.desc(), Job.id.desc())
    if kind in JOB_KINDS:
        query = query.where(Job.kind == kind)
    if status in ("running", "interrupted", "ok", "failed"):
        query = query.where(Job.status == status)
    total = query.count()
    rows = list(query.paginate(page, PAGE))
    now = utcnow()
    return render(
        "operations/jobs.html",
        "results",
        rows=rows,
        states={j.id: job_state(j, now=now) for j in rows},
        kind=kind,
        status=status,
        kinds=JOB_KINDS,
        page=page,
        total=total,
        pages=max((total + PAGE - 1) // PAGE, 1),
    )


@bp.post("/jobs/<int:job_id>/reset")
@login_required("operations.run")
def job_reset(job_id: int):
    job = Job.get_or_none(Job.id == job_id)
    if job is None:
        abort(404)
    try:
        reset_job(job, actor=current_actor(), now=utcnow())
    except DomainError as exc:
        abort(400, description=exc.message)
    return htmx_redirect(url_for("operations.jobs", status="failed"))


# ---------------------------------------------------------------- apportionment


def _groups() -> list[ApportionmentGroup]:
    return list(
        ApportionmentGroup.select(ApportionmentGroup, Property)
        .join(Property)
        .order_by(ApportionmentGroup.property, ApportionmentGroup.name)
    )


def _apportionment_page(
    *,
    group: ApportionmentGroup | None,
    month: int,
    split=None,
    error: str = "",
    errors: dict[str, str] | None = None,
    status: int = 200,
):
    runs = list(
        ApportionmentRun.select(ApportionmentRun, ApportionmentGroup)
        .join(ApportionmentGroup)
        .order_by(ApportionmentRun.created_at.desc(), ApportionmentRun.id.desc())
        .limit(24)
    )
    posted = None
    if group is not None:
        posted = ApportionmentRun.get_or_none(
            (ApportionmentRun.group == group.id) & (ApportionmentRun.month == month)
        )
    body = render(
        "operations/apportionment.html",
        "split",
        groups=_groups(),
        group=group,
        month=month_label(month),
        split=split,
        error=error,
        errors=errors or {},
        runs=runs,
        posted=posted,
    )
    return body, status


@bp.get("/apportionment")
@login_required("operations.view")
def apportionment():
    groups = _groups()
    group = groups[0] if groups else None
    month = previous_month(month_of(utcnow(), group.property)) if group else 0
    return _apportionment_page(group=group, month=month)


def _group_from_form() -> ApportionmentGroup:
    raw = request.values.get("group", "")
    group = (
        ApportionmentGroup.get_or_none(ApportionmentGroup.id == int(raw)) if raw.isdigit() else None
    )
    if group is None:
        abort(404)
    return group


@bp.get("/apportionment/preview")
@login_required("operations.view")
def apportionment_preview():
    """The dry run: the split of a month, nothing posted."""
    group = _group_from_form()
    errors: dict[str, str] = {}
    month = _month(group.property, errors)
    if errors:
        return _apportionment_page(group=group, month=month, errors=errors, status=422)
    try:
        split = dry_run(group, month, actor=current_actor())
    except DomainError as exc:
        return _apportionment_page(group=group, month=month, error=exc.message, status=422)
    return _apportionment_page(group=group, month=month, split=split)


@bp.post("/apportionment/post")
@login_required("apportionment.post")
def apportionment_post():
    group = _group_from_form()
    errors: dict[str, str] = {}
    month = _month(group.property, errors)
    if errors:
        return _apportionment_page(group=group, month=month, errors=errors, status=422)
    try:
        run, _created = post_apportionment(
            group,
            month,
            actor=current_actor(),
            now=utcnow(),
            expected_digest=request.form.get("digest") or None,
        )
    except DomainError as exc:
        split = None
        try:
            split = dry_run(group, month, actor=current_actor())
        except DomainError:
            split = None
        return _apportionment_page(
            group=group, month=month, split=split, error=exc.message, status=422
        )
    return htmx_redirect(url_for("operations.apportionment_run", run_id=run.id))


@bp.get("/apportionment/runs/<int:run_id>")
@login_required("operations.view")
def apportionment_run(run_id: int):
    run = ApportionmentRun.get_or_none(ApportionmentRun.id == run_id)
    if run is None:
        abort(404)
    parts = list(
        ApportionmentPart.select(ApportionmentPart, Account)
        .join(Account)
        .where(ApportionmentPart.run == run.id)
        .order_by(Account.number)
    )
    return render(
        "operations/run.html",
        run=run,
        group=run.group,
        parts=parts,
        month=month_label(run.month),
        detail=json.loads(run.detail or "{}"),
    )


# ---------------------------------------------------------------- bills


@bp.get("/bills")
@login_required("bill.view")
def bills():
    prop = _property()
    errors: dict[str, str] = {}
    month = _month(prop, errors)
    page = page_arg()
    accounts = billed_accounts(prop, month)
    total = len(accounts)
    shown = [compute_bill(a, month) for a in accounts[(page - 1) * PAGE : page * PAGE]]
    return render(
        "operations/bills.html",
        "results",
        property=prop,
        properties=list(Property.select()),
        month=month_label(month),
        bills=shown,
        errors=errors,
        page=page,
        total=total,
        pages=max((total + PAGE - 1) // PAGE, 1),
    )


def _account_or_404(account_id: int) -> Account:
    acct = Account.get_or_none(Account.id == account_id)
    if acct is None:
        abort(404)
    return acct


@bp.get("/bills/<int:account_id>")
@login_required("bill.view")
def bill(account_id: int):
    acct = _account_or_404(account_id)
    prop = Property.get_by_id(acct.property_id)
    errors: dict[str, str] = {}
    month = _month(prop, errors)
    current = compute_bill(acct, month)
    issued = issued_bill(acct, month)
    month_over = month < month_of(utcnow(), prop)
    return render(
        "operations/bill.html",
        bill=current,
        account=acct,
        issued=issued,
        errors=errors,
        month_over=month_over,
        pending_water=pending_water_fen(acct) if not month_over else 0,
        previous=month_label(previous_month(month)),
    )


def _xlsx(data: bytes, filename: str) -> Response:
    resp = Response(data, mimetype=XLSX)
    resp.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return resp


@bp.get("/bills/<int:account_id>/<month>.xlsx")
@login_required("bill.view")
def bill_xlsx(account_id: int, month: str):
    acct = _account_or_404(account_id)
    try:
        key = parse_month(month)
    except DomainError:
        abort(404)
    current = compute_bill(acct, key)
    return _xlsx(bill_workbook(current), f"bill-{acct.number}-{month_label(key)}.xlsx")


@bp.get("/bills/all/<month>.xlsx")
@login_required("bill.view")
def bills_xlsx(month: str):
    prop = _property()
    try:
        key = parse_month(month)
    except DomainError:
        abort(404)
    title = f"{prop.name} · {_('Monthly bills')} {month_label(key)}"
    return _xlsx(
        bills_workbook(bills_for(prop, key), title), f"bills-{prop.code}-{month_label(key)}.xlsx"
    )
