"""The console pages of the core: accounts with balances, a sale, the receipt, meters."""

from __future__ import annotations

import uuid

from flask import Blueprint, abort, redirect, request, url_for
from peewee import JOIN

from app.domain.errors import DomainError
from app.domain.ledger import wallet_entries
from app.domain.money import fee_split, parse_yuan
from app.domain.sales import reverse_sale, sell
from app.models import Account, LedgerAccount, Meter, Property, Room, Sale, Tenant, utcnow
from app.web import (
    check_property,
    current_actor,
    htmx_redirect,
    login_required,
    page_arg,
    property_scope,
    render,
)

bp = Blueprint("console", __name__)

PAGE = 50
METHODS = ("cash", "card", "wechat", "alipay", "transfer")


@bp.get("/")
@login_required()
def index():
    actor = current_actor()
    if actor.can("site.edit") and not Property.select().exists():
        return redirect(url_for("sites.property_new"))  # an empty box: set it up first
    if actor.can("overview.view"):
        return redirect(url_for("overview.index"))
    return redirect(url_for("console.accounts"))


def _account_query(q: str):
    query = (
        Account.select(Account, Tenant, LedgerAccount, Room)
        .join(Tenant)
        .switch(Account)
        .join(LedgerAccount)
        .switch(Account)
        .join(Room, JOIN.LEFT_OUTER)
    )
    scope = property_scope()
    if scope is not None:
        query = query.where(Account.property.in_(scope))
    q = q.strip()
    if q:
        like = f"%{q}%"
        serial_hit = Meter.select(Meter.account).where(Meter.serial.contains(q))
        query = query.where(
            Account.number.contains(q)
            | Tenant.name**like
            | Tenant.phones.contains(q)
            | Room.number.contains(q)
            | Account.id.in_(serial_hit)
        )
    return query.order_by(Account.number)


@bp.get("/accounts")
@login_required("account.view")
def accounts():
    q = request.args.get("q", "")
    status = request.args.get("status", "")
    page = page_arg()
    query = _account_query(q)
    if status:
        query = query.where(Account.status == status)
    total = query.count()
    rows = list(query.paginate(page, PAGE))
    return render(
        "console/accounts.html",
        "results",
        rows=rows,
        q=q,
        status=status,
        page=page,
        total=total,
        pages=max((total + PAGE - 1) // PAGE, 1),
    )


def _account_or_404(account_id: int) -> Account:
    acct = Account.get_or_none(Account.id == account_id)
    if acct is None:
        abort(404)
    check_property(acct.property_id)
    return acct


@bp.get("/accounts/<int:account_id>")
@login_required("account.view")
def account_detail(account_id: int):
    acct = _account_or_404(account_id)
    meters = list(Meter.select().where(Meter.account == acct).order_by(Meter.kind, Meter.serial))
    sales = list(Sale.select().where(Sale.account == acct).order_by(Sale.id.desc()).limit(20))
    entries = wallet_entries(acct.wallet_id, limit=30)
    return render(
        "console/account.html",
        account=acct,
        meters=meters,
        sales=sales,
        entries=entries,
        balance=LedgerAccount.get_by_id(acct.wallet_id).balance_fen,
    )


def _sale_form(acct: Account, errors: dict[str, str] | None = None, form: dict | None = None):
    prop = Property.get_by_id(acct.property_id)
    return render(
        "console/sale.html",
        "sale_form",
        account=acct,
        property=prop,
        errors=errors or {},
        form=form or {"request_id": uuid.uuid4().hex, "method": "cash", "amount": ""},
        methods=METHODS,
        balance=LedgerAccount.get_by_id(acct.wallet_id).balance_fen,
        preview=None,
    )


@bp.get("/accounts/<int:account_id>/sale")
@login_required("sale.create")
def sale_form(account_id: int):
    return _sale_form(_account_or_404(account_id))


@bp.post("/accounts/<int:account_id>/sale/preview")
@login_required("sale.create")
def sale_preview(account_id: int):
    """Show the service fee and the net credit before the cashier confirms."""
    acct = _account_or_404(account_id)
    prop = Property.get_by_id(acct.property_id)
    form = request.form.to_dict()
    try:
        amount = parse_yuan(form.get("amount", ""))
    except DomainError as exc:
        return render("console/sale.html", "preview", preview=None, error=exc.message)
    fee, net = fee_split(amount, prop.service_fee_bp)
    return render(
        "console/sale.html",
        "preview",
        preview={"amount": amount, "fee": fee, "net": net},
        error=None,
        property=prop,
    )


@bp.post("/accounts/<int:account_id>/sale")
@login_required("sale.create")
def sale_create(account_id: int):
    acct = _account_or_404(account_id)
    form = request.form.to_dict()
    errors: dict[str, str] = {}
    try:
        amount = parse_yuan(form.get("amount", ""))
        result = sell(
            acct,
            amount_fen=amount,
            method=form.get("method", ""),
            idempotency_key=form.get("request_id", ""),
            utility=form.get("utility", "electricity"),
            actor=current_actor(),
            now=utcnow(),
        )
    except DomainError as exc:
        errors[exc.field or "amount"] = exc.message
        resp = _sale_form(acct, errors, form)
        return resp, 422
    return htmx_redirect(url_for("console.receipt", sale_id=result.sale.id))


@bp.get("/sales/<int:sale_id>/receipt")
@login_required("sale.create")
def receipt(sale_id: int):
    sale = Sale.get_or_none(Sale.id == sale_id)
    if sale is None:
        abort(404)
    check_property(sale.property_id)
    return render(
        "console/receipt.html",
        sale=sale,
        account=sale.account,
        property=sale.property,
        paper=request.args.get("paper", "80mm"),
    )


@bp.post("/sales/<int:sale_id>/reverse")
@login_required("sale.reverse")
def reverse(sale_id: int):
    sale = Sale.get_or_none(Sale.id == sale_id)
    if sale is None:
        abort(404)
    check_property(sale.property_id)
    try:
        reverse_sale(
            sale, reason=request.form.get("reason", ""), actor=current_actor(), now=utcnow()
        )
    except DomainError as exc:
        acct = sale.account
        meters = list(Meter.select().where(Meter.account == acct))
        sales = list(Sale.select().where(Sale.account == acct).order_by(Sale.id.desc()).limit(20))
        return render(
            "console/account.html",
            account=acct,
            meters=meters,
            sales=sales,
            entries=wallet_entries(acct.wallet_id, limit=30),
            reverse_error=exc.message,
            balance=LedgerAccount.get_by_id(acct.wallet_id).balance_fen,
        ), 422
    return htmx_redirect(url_for("console.account_detail", account_id=sale.account_id))


# The meters grid, batch actions, gateways and meter detail register on this blueprint.
from app.console import meters as _meters  # noqa: E402,F401
