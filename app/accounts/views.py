"""Account opening (开户) wizard, meter swap (换表), closing (销户), the tenant center (客户中心)
and the site tree."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, redirect, request, url_for
from peewee import JOIN, fn

from app.domain.accounts import MeterStart, NewTenant, close_account, open_account, swap_meter
from app.domain.errors import DomainError, ValidationError
from app.domain.ledger import PAYMENT_METHODS, wallet_entries
from app.domain.money import fee_split, parse_yuan
from app.domain.readings import ReadingIn, apply_readings
from app.domain.sales import sell
from app.i18n import tr
from app.models import (
    Account,
    Building,
    Floor,
    LedgerAccount,
    Meter,
    Property,
    Reading,
    Room,
    Sale,
    Tariff,
    Tenant,
    utcnow,
)
from app.models.sms import SmsMessage
from app.web import (
    check_property,
    current_actor,
    htmx_redirect,
    is_htmx,
    login_required,
    page_arg,
    property_scope,
    render,
    visible_properties,
)

bp = Blueprint("accounts", __name__)

PAGE = 50
CHART_DAYS = 30


# -- helpers -------------------------------------------------------------------------------


def _property_id(obj) -> int:
    if isinstance(obj, Property):
        return obj.id
    if isinstance(obj, Floor):
        return obj.building.property_id
    if isinstance(obj, Room):
        return obj.floor.building.property_id
    return obj.property_id


def _get_or_404(model, obj_id):
    """The object, or 404 when there is none or it belongs to a property outside the
    signed-in user's scope."""
    obj = model.get_or_none(model.id == obj_id)
    if obj is None:
        abort(404)
    check_property(_property_id(obj))
    return obj


def _int(value: object) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def parse_register(text: object, kind: str, field: str) -> int:
    """A register as staff type it: kWh with up to 2 decimals -> 0.01 kWh; m3 with up to 3
    decimals -> litres."""
    places = 2 if kind == "electricity" else 3
    raw = str(text or "").strip().replace(",", "")
    try:
        value = Decimal(raw)
    except (InvalidOperation, ValueError):
        raise ValidationError(tr("'%(text)s' is not a meter reading", text=raw), field) from None
    if not value.is_finite() or value < 0:
        raise ValidationError(tr("'%(text)s' is not a meter reading", text=raw), field)
    if value.as_tuple().exponent < -places:  # type: ignore[operator]
        raise ValidationError(tr("a reading has at most %(n)s decimals", n=places), field)
    return int(value * (10**places))


def _properties() -> list[Property]:
    """The properties the signed-in user may see."""
    return list(visible_properties())


# -- opening wizard ------------------------------------------------------------------------


def _place(prop: Property | None, building_id, floor_id, room_id) -> dict:
    """The building -> floor -> room choices for the picker, keeping valid selections."""
    buildings = (
        list(Building.select().where(Building.property == prop).order_by(Building.name))
        if prop
        else []
    )
    building = next((b for b in buildings if b.id == _int(building_id)), None)
    floors = (
        list(Floor.select().where(Floor.building == building).order_by(Floor.level, Floor.name))
        if building
        else []
    )
    floor = next((f for f in floors if f.id == _int(floor_id)), None)
    rooms = list(Room.select().where(Room.floor == floor).order_by(Room.number)) if floor else []
    room = next((r for r in rooms if r.id == _int(room_id)), None)
    return {
        "buildings": buildings,
        "floors": floors,
        "rooms": rooms,
        "building": building,
        "floor": floor,
        "room": room,
    }


def _stock_meters(prop: Property | None, room_id, serial: str, chosen: list[int]) -> list[Meter]:
    """Unassigned meters in the room, those matching the serial, and those already chosen."""
    if prop is None:
        return []
    cond = Meter.id.in_(chosen or [0])
    if _int(room_id):
        cond |= Meter.room == _int(room_id)
    if serial.strip():
        cond |= Meter.serial.contains(serial.strip())
    return list(
        Meter.select()
        .where(
            (Meter.property == prop) & (Meter.status == "stock") & Meter.account.is_null() & cond
        )
        .order_by(Meter.kind, Meter.serial)
        .limit(40)
    )


def _wizard_prop(form) -> Property | None:
    props = _properties()
    return next(
        (p for p in props if p.id == _int(form.get("property_id"))), props[0] if props else None
    )


def _wizard(form: dict, errors: dict[str, str] | None = None, chosen: list[int] | None = None):
    prop = _wizard_prop(form)
    chosen = chosen or []
    tariffs = (
        list(
            Tariff.select()
            .where((Tariff.property == prop) & (Tariff.active == True))
            .order_by(Tariff.utility, Tariff.name)
        )
        if prop
        else []
    )
    tenant = (
        Tenant.get_or_none((Tenant.id == _int(form.get("tenant_id"))) & (Tenant.property == prop))
        if prop
        else None
    )
    ctx = {
        "form": form,
        "errors": errors or {},
        "prop": prop,
        "properties": _properties(),
        "methods": PAYMENT_METHODS,
        "tariffs": tariffs,
        "tenant": tenant,
        "tenants": [tenant] if tenant else [],
        "chosen": chosen,
        "meters": _stock_meters(prop, form.get("room_id"), form.get("serial", ""), chosen),
        **_place(prop, form.get("building_id"), form.get("floor_id"), form.get("room_id")),
    }
    return render("accounts/open.html", "wizard", **ctx)


def _new_form(prop: Property | None) -> dict:
    return {
        "request_id": uuid.uuid4().hex,
        "sale_request_id": uuid.uuid4().hex,
        "tenant_mode": "existing",
        "property_id": str(prop.id) if prop else "",
        "sale_method": "cash",
        "alarm1": f"{prop.default_alarm1_fen / 100:.2f}" if prop else "",
        "alarm2": f"{prop.default_alarm2_fen / 100:.2f}" if prop else "",
        "credit_limit": "0",
    }


@bp.get("/accounts/open")
@login_required("account.open")
def open_form():
    form = _new_form(_wizard_prop(request.args))
    return _wizard(form)


def _whole_wizard_unless_htmx():
    """The lookups below answer htmx with a part of the wizard; a plain request (a bookmark,
    no script) gets the whole wizard instead of a fragment."""
    if is_htmx():
        return None
    return redirect(
        url_for("accounts.open_form", property_id=request.values.get("property_id", "")), code=303
    )


@bp.get("/accounts/open/tenants")
@login_required("account.open")
def open_tenants():
    if (whole := _whole_wizard_unless_htmx()) is not None:
        return whole
    prop = _wizard_prop(request.args)
    q = request.args.get("tq", "").strip()
    tenants = []
    if prop and q:
        like = f"%{q}%"
        tenants = list(
            Tenant.select()
            .where(
                (Tenant.property == prop)
                & ((Tenant.name**like) | Tenant.phones.contains(q) | Tenant.contact.contains(q))
            )
            .order_by(Tenant.name, Tenant.id)
            .limit(20)
        )
    return render("accounts/open.html", "tenant_choices", tenants=tenants, form=request.args)


@bp.get("/accounts/open/place")
@login_required("account.open")
def open_place():
    if (whole := _whole_wizard_unless_htmx()) is not None:
        return whole
    prop = _wizard_prop(request.args)
    return render(
        "accounts/open.html",
        "place",
        form=request.args,
        errors={},
        **_place(
            prop,
            request.args.get("building_id"),
            request.args.get("floor_id"),
            request.args.get("room_id"),
        ),
    )


@bp.get("/accounts/open/meters")
@login_required("account.open")
def open_meters():
    if (whole := _whole_wizard_unless_htmx()) is not None:
        return whole
    prop = _wizard_prop(request.args)
    chosen = [i for i in (_int(v) for v in request.args.getlist("meter_ids")) if i]
    return render(
        "accounts/open.html",
        "meter_choices",
        form=request.args,
        errors={},
        chosen=chosen,
        meters=_stock_meters(
            prop, request.args.get("room_id"), request.args.get("serial", ""), chosen
        ),
    )


@bp.post("/accounts/open/preview")
@login_required("account.open")
def open_preview():
    if (whole := _whole_wizard_unless_htmx()) is not None:
        return whole
    prop = _wizard_prop(request.form)
    amount_text = request.form.get("sale_amount", "").strip()
    if not amount_text or prop is None:
        return render("accounts/open.html", "preview", preview=None, error=None)
    try:
        amount = parse_yuan(amount_text)
    except DomainError as exc:
        return render("accounts/open.html", "preview", preview=None, error=exc.message)
    fee, net = fee_split(amount, prop.service_fee_bp)
    return render(
        "accounts/open.html",
        "preview",
        preview={"amount": amount, "fee": fee, "net": net},
        error=None,
    )


FIELD_MAP = {
    "name": "tenant_name",
    "phones": "tenant_phones",
    "tenant": "tenant_id",
    "meters": "meter_ids",
    "initial_total": "meter_ids",
    "alarm1_fen": "alarm1",
    "alarm2_fen": "alarm2",
    "credit_limit_fen": "credit_limit",
    "room": "room_id",
    "request_id": "form",
}


@bp.post("/accounts/open")
@login_required("account.open")
def open_create():
    form = request.form.to_dict()
    chosen = [i for i in (_int(v) for v in request.form.getlist("meter_ids")) if i]
    errors: dict[str, str] = {}
    prop = _wizard_prop(form)
    if prop is None:
        abort(400)

    def fail(field: str, message: str) -> None:
        errors.setdefault(field, message)

    # tenant
    tenant: Tenant | NewTenant | None = None
    if form.get("tenant_mode") == "new":
        if not form.get("tenant_name", "").strip():
            fail("tenant_name", tr("give the tenant's name"))
        tenant = NewTenant(
            form.get("tenant_name", ""),
            form.get("tenant_phones", ""),
            form.get("tenant_contact", ""),
        )
    else:
        tenant = Tenant.get_or_none(
            (Tenant.id == _int(form.get("tenant_id"))) & (Tenant.property == prop)
        )
        if tenant is None:
            fail("tenant_id", tr("choose a tenant, or enter a new one"))
    # room
    room = Room.get_or_none(Room.id == _int(form.get("room_id"))) if form.get("room_id") else None
    if room is None:
        fail("room_id", tr("choose a room"))
    # meters and their initial readings
    starts: list[MeterStart] = []
    if not chosen:
        fail("meter_ids", tr("choose at least one meter"))
    for meter_id in chosen:
        meter = Meter.get_or_none((Meter.id == meter_id) & (Meter.property == prop))
        if meter is None:
            fail("meter_ids", tr("no such meter"))
            continue
        field = f"initial_{meter.id}"
        try:
            starts.append(MeterStart(meter, parse_register(form.get(field, ""), meter.kind, field)))
        except ValidationError as exc:
            fail(field, exc.message)
    # tariffs
    tariffs: dict[str, Tariff | None] = {}
    for utility in ("electricity", "water"):
        field = f"tariff_{utility}"
        tariff_id = _int(form.get(field))
        tariffs[utility] = Tariff.get_or_none(Tariff.id == tariff_id) if tariff_id else None
        if tariff_id and tariffs[utility] is None:
            fail(field, tr("no such tariff"))
    # thresholds
    money: dict[str, int] = {}
    for field in ("alarm1", "alarm2", "credit_limit"):
        try:
            money[field] = parse_yuan(form.get(field, "") or "0", field, allow_zero=True)
        except ValidationError as exc:
            fail(field, exc.message)
    # optional initial sale, checked before anything is written
    sale_amount = None
    if form.get("sale_amount", "").strip():
        if not current_actor().can("sale.create"):
            fail("sale_amount", tr("you may not sell"))
        try:
            sale_amount = parse_yuan(form["sale_amount"], "sale_amount")
        except ValidationError as exc:
            fail("sale_amount", exc.message)
        if form.get("sale_method") not in PAYMENT_METHODS:
            fail("sale_method", tr("choose a payment method"))
    if errors:
        return _wizard(form, errors, chosen), 422
    actor, now = current_actor(), utcnow()
    try:
        account = open_account(
            prop,
            tenant=tenant,
            meters=starts,
            room=room,
            actor=actor,
            now=now,
            tariff_electricity=tariffs["electricity"],
            tariff_water=tariffs["water"],
            alarm1_fen=money["alarm1"],
            alarm2_fen=money["alarm2"],
            credit_limit_fen=money["credit_limit"],
            request_id=form.get("request_id", ""),
        )
    except DomainError as exc:
        fail(FIELD_MAP.get(exc.field or "", exc.field or "form"), exc.message)
        return _wizard(form, errors, chosen), 422
    if sale_amount is not None:
        try:
            sell(
                account,
                amount_fen=sale_amount,
                method=form["sale_method"],
                idempotency_key=form.get("sale_request_id", ""),
                actor=actor,
                now=now,
            )
        except DomainError as exc:  # the account is open; say why the sale was not taken
            return render("accounts/opened.html", "opened", account=account, error=exc.message), 422
    return htmx_redirect(url_for("console.account_detail", account_id=account.id))


# -- meter swap and closing ----------------------------------------------------------------


def _swap_page(meter: Meter, form: dict, errors: dict[str, str]):
    stock = list(
        Meter.select()
        .where(
            (Meter.property == meter.property_id)
            & (Meter.status == "stock")
            & (Meter.kind == meter.kind)
            & Meter.account.is_null()
        )
        .order_by(Meter.serial)
        .limit(200)
    )
    return render(
        "accounts/swap.html",
        "swap_form",
        meter=meter,
        account=meter.account,
        form=form,
        errors=errors,
        stock=stock,
    )


@bp.get("/meters/<int:meter_id>/swap")
@login_required("meter.swap")
def swap_form(meter_id: int):
    meter = _get_or_404(Meter, meter_id)
    if meter.account_id is None:
        abort(404)
    return _swap_page(meter, {}, {})


@bp.post("/meters/<int:meter_id>/swap")
@login_required("meter.swap")
def swap(meter_id: int):
    meter = _get_or_404(Meter, meter_id)
    if meter.account_id is None:
        abort(404)
    form = request.form.to_dict()
    errors: dict[str, str] = {}
    new = Meter.get_or_none(Meter.serial == form.get("new_serial", "").strip())
    if new is None:
        errors["new_serial"] = tr("no meter with that serial")
    values: dict[str, int] = {}
    for field in ("old_final_total", "new_initial_total"):
        try:
            values[field] = parse_register(form.get(field, ""), meter.kind, field)
        except ValidationError as exc:
            errors[field] = exc.message
    if not errors:
        try:
            swap_meter(
                meter,
                new,
                old_final_total=values["old_final_total"],
                new_initial_total=values["new_initial_total"],
                reason=form.get("reason", ""),
                actor=current_actor(),
                now=utcnow(),
            )
        except DomainError as exc:
            field = {"old": "old_final_total", "new": "new_serial"}.get(
                exc.field or "", exc.field or "form"
            )
            errors[field] = exc.message
    if errors:
        return _swap_page(meter, form, errors), 422
    return htmx_redirect(url_for("console.account_detail", account_id=meter.account_id))


def _close_page(acct: Account, form: dict, errors: dict[str, str]):
    meters = list(
        Meter.select()
        .where((Meter.account == acct) & (Meter.status == "active"))
        .order_by(Meter.kind, Meter.serial)
    )
    return render(
        "accounts/close.html",
        "close_form",
        account=acct,
        meters=meters,
        form=form,
        errors=errors,
        methods=PAYMENT_METHODS,
        balance=LedgerAccount.get_by_id(acct.wallet_id).balance_fen,
    )


@bp.get("/accounts/<int:account_id>/close")
@login_required("account.close")
def close_form(account_id: int):
    return _close_page(_get_or_404(Account, account_id), {"refund_method": "cash"}, {})


@bp.post("/accounts/<int:account_id>/close")
@login_required("account.close")
def close(account_id: int):
    acct = _get_or_404(Account, account_id)
    form = request.form.to_dict()
    errors: dict[str, str] = {}
    if acct.status == "closed":
        errors["form"] = tr("the account is closed already")
    method = form.get("refund_method", "")
    if method not in (*PAYMENT_METHODS, "payable"):
        errors["refund_method"] = tr("choose how the balance is refunded")
    finals: list[ReadingIn] = []
    now = utcnow()
    for meter in Meter.select().where((Meter.account == acct) & (Meter.status == "active")):
        field = f"final_{meter.id}"
        if form.get(field, "").strip():
            try:
                finals.append(
                    ReadingIn(
                        meter_id=meter.id,
                        read_at=now,
                        total=parse_register(form[field], meter.kind, field),
                        source="close",
                    )
                )
            except ValidationError as exc:
                errors[field] = exc.message
    if finals and not current_actor().can("reading.write"):
        errors["form"] = tr("you may not enter readings")
    balance = LedgerAccount.get_by_id(acct.wallet_id).balance_fen
    if balance < 0:
        errors["form"] = tr("the account owes money; settle it with a sale first")
    if errors:
        return _close_page(acct, form, errors), 422
    actor = current_actor()
    try:
        if finals:  # the last consumption is charged before the settlement
            for reading, result in zip(
                finals, apply_readings(finals, actor=actor, now=now), strict=True
            ):
                if result.status not in ("accepted", "baseline", "duplicate"):
                    errors[f"final_{reading.meter_id}"] = tr(
                        "the final reading was not accepted (%(status)s): %(note)s",
                        status=result.status,
                        note=result.note,
                    )
            if errors:
                return _close_page(acct, form, errors), 422
        close_account(
            acct,
            refund_method=None if method == "payable" else method,
            reason=form.get("reason", ""),
            actor=actor,
            now=now,
        )
    except DomainError as exc:
        errors[exc.field if exc.field in ("refund_method",) else "form"] = exc.message
        return _close_page(acct, form, errors), 422
    return htmx_redirect(url_for("console.account_detail", account_id=acct.id))


# -- tenant center -------------------------------------------------------------------------


@bp.get("/tenants")
@login_required("account.view")
def tenants():
    q = request.args.get("q", "").strip()
    page = page_arg()
    query = Tenant.select(Tenant, Property).join(Property)
    scope = property_scope()
    if scope is not None:
        query = query.where(Tenant.property.in_(sorted(scope) or [0]))
    if q:
        like = f"%{q}%"
        query = query.where(
            (Tenant.name**like) | Tenant.phones.contains(q) | Tenant.contact.contains(q)
        )
    total = query.count()
    rows = list(query.order_by(Tenant.name, Tenant.id).paginate(page, PAGE))
    counts = dict(
        Account.select(Account.tenant, fn.COUNT(Account.id))
        .where(Account.tenant.in_([t.id for t in rows] or [0]) & (Account.status != "closed"))
        .group_by(Account.tenant)
        .tuples()
    )
    return render(
        "accounts/tenants.html",
        "results",
        rows=rows,
        q=q,
        page=page,
        total=total,
        counts=counts,
        pages=max((total + PAGE - 1) // PAGE, 1),
    )


def _month_start(local: dt.datetime) -> dt.datetime:
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _utc(local: dt.datetime) -> dt.datetime:
    return local.astimezone(dt.UTC).replace(tzinfo=None)


def usage_figures(
    meters: list[Meter], tz: ZoneInfo, now: dt.datetime
) -> tuple[dict[int, dict], dict]:
    """Per meter: consumption this month and last month (local months); and the daily usage
    of the last ``CHART_DAYS`` days per utility, for the chart."""
    local_now = now.replace(tzinfo=dt.UTC).astimezone(tz)
    this_start = _month_start(local_now)
    last_start = _month_start(this_start - dt.timedelta(days=1))
    first_day = (local_now - dt.timedelta(days=CHART_DAYS - 1)).date()
    chart_start = _utc(dt.datetime.combine(first_day, dt.time(), tz))
    since = min(_utc(last_start), chart_start)
    ids = [m.id for m in meters]
    kind_of = {m.id: m.kind for m in meters}
    months = {m.id: {"this": 0, "last": 0} for m in meters}
    days = [first_day + dt.timedelta(days=i) for i in range(CHART_DAYS)]
    daily = {"electricity": dict.fromkeys(days, 0), "water": dict.fromkeys(days, 0)}
    rows = (
        Reading.select(Reading.meter, Reading.read_at, Reading.consumption)
        .where(
            Reading.meter.in_(ids or [0])
            & (Reading.read_at >= since)
            & (Reading.read_at <= now)
            & (Reading.status == "accepted")
        )
        .tuples()
    )
    for meter_id, read_at, units in rows:
        local = read_at.replace(tzinfo=dt.UTC).astimezone(tz)
        if local >= this_start:
            months[meter_id]["this"] += units
        elif local >= last_start:
            months[meter_id]["last"] += units
        if local.date() in daily[kind_of[meter_id]]:
            daily[kind_of[meter_id]][local.date()] += units
    chart = {
        "days": [d.isoformat() for d in days],
        "electricity": [f"{v / 100:.2f}" for v in daily["electricity"].values()],
        "water": [f"{v / 1000:.3f}" for v in daily["water"].values()],
        "labels": {"electricity": tr("Electricity (kWh)"), "water": tr("Water (m³)")},
        "has_water": any(k == "water" for k in kind_of.values()),
        "has_electricity": any(k == "electricity" for k in kind_of.values()),
    }
    return months, chart


@bp.get("/tenants/<int:tenant_id>")
@login_required("account.view")
def tenant_detail(tenant_id: int):
    tenant = _get_or_404(Tenant, tenant_id)
    prop = Property.get_by_id(tenant.property_id)
    accounts = list(
        Account.select(Account, LedgerAccount, Room)
        .join(LedgerAccount)
        .switch(Account)
        .join(Room, JOIN.LEFT_OUTER)
        .where(Account.tenant == tenant)
        .order_by(Account.number)
    )
    account_ids = [a.id for a in accounts] or [0]
    meters = list(
        Meter.select().where(Meter.account.in_(account_ids)).order_by(Meter.kind, Meter.serial)
    )
    months, chart = usage_figures(meters, ZoneInfo(prop.timezone), utcnow())
    show_money = current_actor().can("money.view")
    sales = (
        list(
            Sale.select()
            .where(Sale.account.in_(account_ids))
            .order_by(Sale.created_at.desc(), Sale.id.desc())
            .limit(50)
        )
        if show_money
        else []
    )
    entries = []
    if show_money:
        for a in accounts:
            entries += [dict(e, account=a.number) for e in wallet_entries(a.wallet_id, limit=50)]
        entries.sort(key=lambda e: (e["created_at"], e["entry_id"]), reverse=True)
    sms = list(
        SmsMessage.select()
        .where(SmsMessage.tenant == tenant)
        .order_by(SmsMessage.created_at.desc(), SmsMessage.id.desc())
        .limit(50)
    )
    return render(
        "accounts/tenant.html",
        tenant=tenant,
        prop=prop,
        accounts=accounts,
        meters=meters,
        months=months,
        chart_json=json.dumps(chart, ensure_ascii=False),
        show_money=show_money,
        sales=sales,
        entries=entries[:50],
        sms=sms,
    )


# -- site tree -----------------------------------------------------------------------------


@bp.get("/site")
@login_required("account.view")
def site_tree():
    return render("accounts/site.html", properties=_properties())


@bp.get("/site/property/<int:prop_id>")
@login_required("account.view")
def site_property(prop_id: int):
    prop = _get_or_404(Property, prop_id)
    buildings = list(Building.select().where(Building.property == prop).order_by(Building.name))
    return render("accounts/site.html", "buildings", buildings=buildings)


@bp.get("/site/building/<int:building_id>")
@login_required("account.view")
def site_building(building_id: int):
    building = _get_or_404(Building, building_id)
    floors = list(
        Floor.select().where(Floor.building == building).order_by(Floor.level, Floor.name)
    )
    return render("accounts/site.html", "floors", floors=floors)


@bp.get("/site/floor/<int:floor_id>")
@login_required("account.view")
def site_floor(floor_id: int):
    floor = _get_or_404(Floor, floor_id)
    rooms = list(Room.select().where(Room.floor == floor).order_by(Room.number))
    room_ids = [r.id for r in rooms] or [0]
    accounts = list(
        Account.select(Account, Tenant, LedgerAccount)
        .join(Tenant)
        .switch(Account)
        .join(LedgerAccount)
        .where(Account.room.in_(room_ids) & (Account.status != "closed"))
        .order_by(Account.number)
    )
    meters = list(
        Meter.select()
        .where(Meter.room.in_(room_ids) & (Meter.status != "removed"))
        .order_by(Meter.kind, Meter.serial)
    )
    by_room: dict[int, dict[str, list]] = {r.id: {"accounts": [], "meters": []} for r in rooms}
    for a in accounts:
        by_room[a.room_id]["accounts"].append(a)
    for m in meters:
        by_room[m.room_id]["meters"].append(m)
    return render("accounts/site.html", "rooms", rooms=rooms, by_room=by_room)
