"""Staff users and roles, the audit log and property settings."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from flask import Blueprint, abort, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from app import clock
from app.domain.actors import PERMISSIONS, ROLES
from app.domain.errors import DomainError, ValidationError
from app.domain.money import (
    format_bp,
    format_fen,
    format_price,
    parse_percent_bp,
    parse_price,
    parse_yuan,
)
from app.domain.site import LANGUAGES, update_property_settings
from app.domain.users import (
    create_user,
    is_locked,
    set_active,
    set_password,
    unlock,
    update_user,
    user_property_ids,
)
from app.models import AuditLog, Property, User, UserProperty, utcnow
from app.web import (
    check_property,
    current_actor,
    display_zone,
    htmx_redirect,
    login_required,
    page_arg,
    render,
    visible_properties,
)

bp = Blueprint("admin", __name__)

PAGE = 50

# What each permission lets a person do, for the read-only matrix on the users page.
PERMISSION_LABELS: dict[str, Any] = {
    "account.view": _l("See accounts and meters"),
    "money.view": _l("See money totals"),
    "account.open": _l("Open accounts"),
    "account.close": _l("Close accounts"),
    "meter.swap": _l("Swap meters"),
    "meter.control": _l("Switch supply on and off"),
    "meter.keep_power": _l("Keep power on"),
    "sale.create": _l("Sell electricity and water"),
    "sale.reverse": _l("Reverse sales"),
    "reading.write": _l("Enter readings"),
    "reading.review": _l("Review held readings"),
    "tariff.edit": _l("Edit tariffs"),
    "tariff.override": _l("Override tariff compliance checks"),
    "site.edit": _l("Edit the site and its settings"),
    "user.manage": _l("Manage users"),
    "ledger.view": _l("See the ledger"),
    "sms.view": _l("See the SMS outbox"),
    "sms.manage": _l("Manage SMS templates and settings"),
    "alert.view": _l("See staff alerts"),
    "operations.view": _l("See scheduled jobs"),
    "operations.run": _l("Run scheduled jobs"),
    "charges.edit": _l("Edit recurring charges"),
    "apportionment.post": _l("Post apportionment"),
    "bill.view": _l("See monthly bills"),
    "audit.view": _l("See the audit log"),
}


def _properties() -> list[Property]:
    return list(Property.select().order_by(Property.name, Property.id))


def _user_or_404(user_id: int) -> User:
    user = User.get_or_none(User.id == user_id)
    if user is None:
        abort(404)
    return user


def _selected_properties() -> list[int]:
    return [int(v) for v in request.form.getlist("properties") if v.isdigit()]


# ---------------------------------------------------------------------------- users


def _users_page(form: dict | None = None, errors: dict[str, str] | None = None, status: int = 200):
    users = list(User.select().order_by(User.username))
    links: dict[int, list[str]] = {}
    for link in (
        UserProperty.select(UserProperty, Property)
        .join(Property)
        .order_by(Property.name, Property.id)
    ):
        links.setdefault(link.user_id, []).append(link.property.name)
    matrix = [
        (perm, PERMISSION_LABELS.get(perm, perm), [role in roles for role in ROLES])
        for perm, roles in PERMISSIONS.items()
    ]
    body = render(
        "admin/users.html",
        "create_form",
        users=users,
        links=links,
        roles=ROLES,
        now=utcnow(),
        is_locked=is_locked,
        properties=_properties(),
        matrix=matrix,
        form=form or {"role": "cashier", "properties": []},
        errors=errors or {},
    )
    return body, status


@bp.get("/users")
@login_required("user.manage")
def users():
    return _users_page()


@bp.post("/users")
@login_required("user.manage")
def user_create():
    form = request.form.to_dict()
    form["properties"] = _selected_properties()
    try:
        user = create_user(
            form.get("username", ""),
            form.get("password", ""),
            form.get("role", ""),
            full_name=form.get("full_name", ""),
            property_ids=form["properties"],
            actor=current_actor(),
            now=utcnow(),
        )
    except DomainError as exc:
        form["password"] = ""
        return _users_page(form, {exc.field or "username": exc.message}, 422)
    return htmx_redirect(url_for("admin.user_detail", user_id=user.id, created=1))


def _user_page(
    user: User,
    *,
    form: dict | None = None,
    errors: dict[str, str] | None = None,
    notice: str = "",
    status: int = 200,
):
    form = form or {
        "role": user.role,
        "full_name": user.full_name,
        "properties": user_property_ids(user),
    }
    body = render(
        "admin/user.html",
        "user_form",
        user=user,
        roles=ROLES,
        properties=_properties(),
        form=form,
        errors=errors or {},
        notice=notice,
        locked=is_locked(user, utcnow()),
    )
    return body, status


@bp.get("/users/<int:user_id>")
@login_required("user.manage")
def user_detail(user_id: int):
    notice = _("User created.") if request.args.get("created") else ""
    return _user_page(_user_or_404(user_id), notice=notice)


@bp.post("/users/<int:user_id>")
@login_required("user.manage")
def user_update(user_id: int):
    user = _user_or_404(user_id)
    form = request.form.to_dict()
    form["properties"] = _selected_properties()
    try:
        user = update_user(
            user,
            role=form.get("role", ""),
            full_name=form.get("full_name", ""),
            property_ids=form["properties"],
            actor=current_actor(),
            now=utcnow(),
        )
    except DomainError as exc:
        return _user_page(user, form=form, errors={exc.field or "role": exc.message}, status=422)
    return _user_page(user, notice=_("Saved."))


@bp.post("/users/<int:user_id>/password")
@login_required("user.manage")
def user_password(user_id: int):
    user = _user_or_404(user_id)
    try:
        if request.form.get("password", "") != request.form.get("password2", ""):
            raise ValidationError(_("The two passwords differ."), "password")
        set_password(user, request.form.get("password", ""), actor=current_actor(), now=utcnow())
    except DomainError as exc:
        return _user_page(user, errors={"password": exc.message}, status=422)
    return _user_page(User.get_by_id(user.id), notice=_("Password changed."))


@bp.post("/users/<int:user_id>/active")
@login_required("user.manage")
def user_active(user_id: int):
    user = _user_or_404(user_id)
    active = request.form.get("active") == "1"
    try:
        set_active(user, active, actor=current_actor(), now=utcnow())
    except DomainError as exc:
        return _user_page(user, errors={"active": exc.message}, status=422)
    return _user_page(
        User.get_by_id(user.id), notice=_("User reactivated.") if active else _("User deactivated.")
    )


@bp.post("/users/<int:user_id>/unlock")
@login_required("user.manage")
def user_unlock(user_id: int):
    user = _user_or_404(user_id)
    unlock(user, actor=current_actor(), now=utcnow())
    return _user_page(User.get_by_id(user.id), notice=_("User unlocked."))


# ---------------------------------------------------------------------------- audit log


def _parse_day(raw: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(raw) if raw else None
    except ValueError:
        return None


def pretty_detail(detail: str) -> str:
    try:
        return json.dumps(json.loads(detail or "{}"), ensure_ascii=False, indent=2, sort_keys=True)
    except ValueError:
        return detail


@bp.get("/audit")
@login_required("audit.view")
def audit_log():
    """Newest first; dates are calendar days in UTC as stored, the end day included."""
    args = {
        k: request.args.get(k, "").strip()
        for k in ("actor", "action", "object_type", "since", "until")
    }
    page = page_arg()
    errors: dict[str, str] = {}
    query = AuditLog.select()
    if args["actor"]:
        query = query.where(AuditLog.actor == args["actor"])
    if args["action"]:
        query = query.where(AuditLog.action.startswith(args["action"]))
    if args["object_type"]:
        query = query.where(AuditLog.object_type == args["object_type"])
    since, until = _parse_day(args["since"]), _parse_day(args["until"])
    if args["since"] and since is None:
        errors["since"] = _("Give a date such as 2026-01-31.")
    if args["until"] and until is None:
        errors["until"] = _("Give a date such as 2026-01-31.")
    if since:
        query = query.where(AuditLog.at >= clock.local_midnight(display_zone(), since))
    if until:
        query = query.where(
            AuditLog.at < clock.local_midnight(display_zone(), until + dt.timedelta(days=1))
        )
    total = query.count()
    rows = list(query.order_by(AuditLog.at.desc(), AuditLog.id.desc()).paginate(page, PAGE))
    actors = [r.actor for r in AuditLog.select(AuditLog.actor).distinct().order_by(AuditLog.actor)]
    types = [
        r.object_type
        for r in AuditLog.select(AuditLog.object_type).distinct().order_by(AuditLog.object_type)
        if r.object_type
    ]
    return render(
        "admin/audit.html",
        "results",
        rows=rows,
        args=args,
        page=page,
        total=total,
        pages=max((total + PAGE - 1) // PAGE, 1),
        actors=actors,
        types=types,
        errors=errors,
        pretty=pretty_detail,
    )


# ---------------------------------------------------------------------------- settings


def _settings_property() -> Property:
    raw = request.values.get("property", "")
    if raw.isdigit():
        prop = Property.get_or_none(Property.id == int(raw))
    else:
        visible = _visible_properties()
        prop = visible[0] if visible else None
    if prop is None:
        abort(404)
    check_property(prop.id)
    return prop


def _visible_properties() -> list[Property]:
    return list(visible_properties())


def _settings_form(prop: Property) -> dict[str, str]:
    return {
        "name": prop.name,
        "address": prop.address,
        "contact": prop.contact,
        "catalog_price": format_price(prop.catalog_price) if prop.catalog_price else "",
        "water_catalog_price": format_price(prop.water_catalog_price)
        if prop.water_catalog_price
        else "",
        "service_fee": format_bp(prop.service_fee_bp),
        "alarm1": format_fen(prop.default_alarm1_fen),
        "alarm2": format_fen(prop.default_alarm2_fen),
        "credit_limit": format_fen(prop.default_credit_limit_fen),
        "timezone": prop.timezone,
        "language": prop.language,
        "opening_policy": prop.opening_policy,
        "opening_grace_hours": str(prop.opening_grace_hours),
        "friendly_cut": "1" if prop.friendly_cut else "",
        "no_cut_start": f"{prop.no_cut_start_min // 60:02d}:{prop.no_cut_start_min % 60:02d}",
        "no_cut_end": f"{prop.no_cut_end_min // 60:02d}:{prop.no_cut_end_min % 60:02d}",
        "no_cut_weekends": "1" if prop.no_cut_weekends else "",
        "no_cut_days": prop.no_cut_days,
        "grace_credit": format_fen(prop.grace_credit_fen),
    }


def _parse_settings(form: dict[str, str]) -> dict[str, Any]:
    """Form strings -> the integer settings; raises ValidationError naming the form field."""

    def price(name: str) -> int | None:
        raw = form.get(name, "").strip()
        return parse_price(raw, name) if raw else None

    def yuan(name: str) -> int:
        raw = form.get(name, "").strip() or "0"
        if raw.startswith("-"):
            raise ValidationError(_("A threshold cannot be negative."), name)
        return parse_yuan(raw, name, allow_zero=True)

    def whole(name: str) -> int:
        raw = form.get(name, "").strip() or "0"
        if not (raw.isascii() and raw.isdigit()):
            raise ValidationError(_("Enter a whole number."), name)
        return int(raw)

    def minute_of_day(name: str, default: str) -> int:
        raw = form.get(name, "").strip() or default
        hours, _sep, minutes = raw.partition(":")
        if not (
            raw.isascii() and hours.isdigit() and minutes.isdigit() and len(minutes) == 2
        ) or not (0 <= int(hours) < 24 and 0 <= int(minutes) < 60):
            raise ValidationError(_("Enter a time such as 20:00."), name)
        return int(hours) * 60 + int(minutes)

    fee = parse_percent_bp(form.get("service_fee", ""), "service_fee")
    if fee > 10000:
        raise ValidationError(_("A ratio cannot be more than 100 %."), "service_fee")
    return {
        "name": form.get("name", ""),
        "address": form.get("address", ""),
        "contact": form.get("contact", ""),
        "catalog_price": price("catalog_price"),
        "water_catalog_price": price("water_catalog_price"),
        "service_fee_bp": fee,
        "default_alarm1_fen": yuan("alarm1"),
        "default_alarm2_fen": yuan("alarm2"),
        "default_credit_limit_fen": yuan("credit_limit"),
        "timezone": form.get("timezone", "").strip(),
        "language": form.get("language", ""),
        "opening_policy": form.get("opening_policy", "grace"),
        "opening_grace_hours": whole("opening_grace_hours"),
        "friendly_cut": bool(form.get("friendly_cut")),
        "no_cut_start_min": minute_of_day("no_cut_start", "20:00"),
        "no_cut_end_min": minute_of_day("no_cut_end", "08:00"),
        "no_cut_weekends": bool(form.get("no_cut_weekends")),
        "no_cut_days": form.get("no_cut_days", ""),
        "grace_credit_fen": yuan("grace_credit"),
    }


# Domain field -> the form field that shows it.
_FORM_FIELD = {
    "no_cut_start_min": "no_cut_start",
    "no_cut_end_min": "no_cut_end",
    "grace_credit_fen": "grace_credit",
    "service_fee_bp": "service_fee",
    "default_alarm1_fen": "alarm1",
    "default_alarm2_fen": "alarm2",
    "default_credit_limit_fen": "credit_limit",
}


def _settings_page(
    prop: Property,
    form: dict | None = None,
    errors: dict[str, str] | None = None,
    notice: str = "",
    status: int = 200,
):
    body = render(
        "admin/settings.html",
        "settings_form",
        property=prop,
        properties=_visible_properties(),
        form=form or _settings_form(prop),
        errors=errors or {},
        notice=notice,
        languages=LANGUAGES,
    )
    return body, status


@bp.get("/settings")
@login_required("account.view")
def settings():
    """Everyone signed in may read the settings; ``site.edit`` changes them."""
    return _settings_page(_settings_property())


@bp.post("/settings")
@login_required("site.edit")
def settings_save():
    prop = _settings_property()
    form = request.form.to_dict()
    try:
        update_property_settings(prop, actor=current_actor(), now=utcnow(), **_parse_settings(form))
    except DomainError as exc:
        field = _FORM_FIELD.get(exc.field or "", exc.field or "name")
        return _settings_page(prop, form, {field: exc.message}, status=422)
    prop = Property.get_by_id(prop.id)
    return _settings_page(prop, notice=_("Settings saved."))
