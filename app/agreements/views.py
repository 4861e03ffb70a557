"""Agreements (rent, property fee) set up and ended from the console: charged from the
account's wallet on their schedule by the rent run."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, request, url_for

from app import clock
from app.domain.errors import DomainError, ValidationError
from app.domain.money import format_fen, parse_yuan
from app.domain.rent import KINDS, SCHEDULES, create_recurring_charge, end_recurring_charge
from app.i18n import tr
from app.models import Account, utcnow
from app.models.operations import RecurringCharge
from app.web import (
    current_actor,
    display_zone,
    htmx_redirect,
    login_required,
    owned_or_404,
    page_arg,
    property_scope,
    render,
)

bp = Blueprint("agreements", __name__, url_prefix="/agreements")

PAGE = 50


def _day(form: dict, name: str, required: bool = True) -> dt.date | None:
    raw = (form.get(name) or "").strip()
    if not raw and not required:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise ValidationError(tr("a date such as 2027-01-31"), name) from None


def _whole(form: dict, name: str) -> int | None:
    raw = (form.get(name) or "").strip()
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit()):
        raise ValidationError(tr("a whole number"), name)
    return int(raw)


def _query():
    query = (
        RecurringCharge.select(RecurringCharge, Account)
        .join(Account)
        .order_by(RecurringCharge.id.desc())
    )
    scope = property_scope()
    if scope is not None:
        query = query.where(RecurringCharge.property.in_(sorted(scope) or [0]))
    return query


def _page(form: dict, errors=None, status: int = 200, notice: str = ""):
    page = page_arg()
    query = _query()
    account = (request.values.get("account") or "").strip()
    if account:
        query = query.where(Account.number == account)
    total = query.count()
    return render(
        "agreements/index.html",
        "agreements",
        rows=list(query.paginate(page, PAGE)),
        total=total,
        page=page,
        pages=max((total + PAGE - 1) // PAGE, 1),
        account=account,
        form=form,
        errors=errors or {},
        notice=notice,
        kinds=KINDS,
        schedules=SCHEDULES,
        format_fen=format_fen,
    ), status


@bp.get("/")
@login_required("charges.edit")
def index():
    today = clock.site_today(display_zone(), utcnow())
    return _page(
        {
            "account": request.args.get("account", ""),
            "kind": "rent",
            "schedule": "monthly",
            "day_of_month": "1",
            "start_date": today.isoformat(),
            "prorate": "1",
        }
    )


@bp.post("/")
@login_required("charges.edit")
def create():
    form = request.form.to_dict()
    try:
        number = (form.get("account") or "").strip()
        account = Account.get_or_none(Account.number == number) if number else None
        scope = property_scope()
        if account is None or (scope is not None and account.property_id not in scope):
            raise ValidationError(tr("no account %(number)s", number=number), "account")
        create_recurring_charge(
            account,
            kind=form.get("kind", ""),
            name=form.get("name", ""),
            amount_fen=parse_yuan(form.get("amount", ""), "amount"),
            schedule=form.get("schedule", ""),
            day_of_month=_whole(form, "day_of_month"),
            interval_days=_whole(form, "interval_days"),
            start_date=_day(form, "start_date"),
            end_date=_day(form, "end_date", required=False),
            prorate_partial=bool(form.get("prorate")),
            actor=current_actor(),
            now=utcnow(),
        )
    except DomainError as exc:
        return _page(form, {exc.field or "amount": exc.message}, 422)
    return htmx_redirect(url_for("agreements.index", account=number))


@bp.post("/<int:charge_id>/end")
@login_required("charges.edit")
def end(charge_id: int):
    charge = owned_or_404(RecurringCharge, charge_id)
    form = request.form.to_dict()
    try:
        end_recurring_charge(
            charge, end_date=_day(form, "end_date"), actor=current_actor(), now=utcnow()
        )
    except DomainError as exc:
        return _page({}, {f"end-{charge.id}": exc.message}, 422)
    number = Account.get_by_id(charge.account_id).number
    return htmx_redirect(url_for("agreements.index", account=number))
