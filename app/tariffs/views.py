"""Tariffs in the console: the list with usage and the compliance check, creating a tariff and
adding versions with the flat / time-of-use / tiered editor, and assigning a tariff to accounts
or meters in bulk.  Thin: parse (app.tariffs.forms), call app.domain.tariffs, render."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from flask import Blueprint, abort, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from peewee import JOIN, fn

from app import clock
from app.domain.errors import DomainError, ValidationError
from app.domain.money import format_price
from app.domain.tariffs import (
    KINDS,
    RATES,
    UTILITIES,
    add_tariff_version,
    assign_tariff,
    compliance_problems,
    create_tariff,
)
from app.models import (
    Account,
    Building,
    Floor,
    Meter,
    Property,
    Room,
    Tariff,
    TariffVersion,
    Tenant,
    utcnow,
)
from app.tariffs import forms
from app.web import (
    check_property,
    current_actor,
    htmx_redirect,
    login_required,
    render,
    visible_properties,
)

bp = Blueprint("tariffs", __name__, url_prefix="/tariffs")

ASSIGN_SAMPLE = 50
ASSIGN_MAX = 20_000

LABELS: dict[str, Any] = {
    # kinds
    "kind.flat": _l("Flat rate"),
    "kind.tou": _l("Time of use"),
    "kind.tiered": _l("Tiered"),
    # TOU periods
    "rate.sharp": _l("Sharp"),
    "rate.peak": _l("Peak"),
    "rate.flat": _l("Flat"),
    "rate.valley": _l("Valley"),
    # per-unit
    "unit.electricity": _l("yuan/kWh"),
    "unit.water": _l("yuan/m³"),
    "qty.electricity": _l("kWh"),
    "qty.water": _l("m³"),
}


@bp.app_template_filter("tariff_label")
def _tariff_label(code: object, group: str) -> str:
    text = LABELS.get(f"{group}.{code}")
    return str(text) if text is not None else str(code or "")


@bp.app_template_filter("price")
def _price_filter(price: object) -> str:
    return format_price(int(price or 0))  # type: ignore[call-overload]


def _tariff_or_404(tariff_id: int) -> Tariff:
    tariff = Tariff.get_or_none(Tariff.id == tariff_id)
    if tariff is None:
        abort(404)
    check_property(tariff.property_id)
    return tariff


def _properties() -> list[Property]:
    return list(visible_properties())


# ---------------------------------------------------------------------------- reading helpers


def _versions(tariff_ids: list[int]) -> dict[int, list[TariffVersion]]:
    out: dict[int, list[TariffVersion]] = {t: [] for t in tariff_ids}
    if tariff_ids:
        rows = (
            TariffVersion.select()
            .where(TariffVersion.tariff.in_(tariff_ids))
            .order_by(TariffVersion.effective_from, TariffVersion.id)
        )
        for v in rows:
            out[v.tariff_id].append(v)
    return out


def _current_and_next(versions: list[TariffVersion], now: dt.datetime):
    current = next_version = None
    for v in versions:  # ordered by effective_from
        if v.effective_from <= now:
            current = v
        elif next_version is None:
            next_version = v
    return current, next_version


def _compliance(prop: Property, tariff: Tariff, version: TariffVersion | None) -> dict[str, Any]:
    """The check of a version against today's catalog price: ok / over / overridden."""
    if version is None:
        return {"state": "none", "problems": [], "reason": ""}
    problems = compliance_problems(prop, tariff.utility, tariff.kind, json.loads(version.spec))
    if not problems:
        return {"state": "ok", "problems": [], "reason": ""}
    state = "overridden" if version.override_reason else "over"
    return {"state": state, "problems": problems, "reason": version.override_reason}


def _usage(tariff_ids: list[int]) -> dict[int, dict[str, int]]:
    """Open accounts on each tariff, and meters in service whose tariff in force it is (their
    own tariff, else their account's for the meter's utility)."""
    usage = {t: {"accounts": 0, "meters": 0} for t in tariff_ids}
    if not tariff_ids:
        return usage
    open_accounts = Account.status != "closed"
    in_service = Meter.status != "removed"
    for column in (Account.tariff_electricity, Account.tariff_water):
        rows = (
            Account.select(column.alias("t"), fn.COUNT(Account.id).alias("n"))
            .where(open_accounts & column.in_(tariff_ids))
            .group_by(column)
            .dicts()
        )
        for row in rows:
            usage[row["t"]]["accounts"] += row["n"]
    own = (
        Meter.select(Meter.tariff.alias("t"), fn.COUNT(Meter.id).alias("n"))
        .where(in_service & Meter.tariff.in_(tariff_ids))
        .group_by(Meter.tariff)
        .dicts()
    )
    for row in own:
        usage[row["t"]]["meters"] += row["n"]
    for kind, column in (
        ("electricity", Account.tariff_electricity),
        ("water", Account.tariff_water),
    ):
        rows = (
            Meter.select(column.alias("t"), fn.COUNT(Meter.id).alias("n"))
            .join(Account, on=(Meter.account == Account.id))
            .where(
                in_service & Meter.tariff.is_null() & (Meter.kind == kind) & column.in_(tariff_ids)
            )
            .group_by(column)
            .dicts()
        )
        for row in rows:
            usage[row["t"]]["meters"] += row["n"]
    return usage


# ---------------------------------------------------------------------------- list and detail


@bp.get("")
@login_required("account.view")
def index():
    now = utcnow()
    tariffs = list(
        Tariff.select(Tariff, Property)
        .join(Property)
        .where(Tariff.property.in_(visible_properties().select(Property.id)))
        .order_by(Property.name, Tariff.utility, Tariff.name, Tariff.id)
    )
    ids = [t.id for t in tariffs]
    versions = _versions(ids)
    usage = _usage(ids)
    rows = []
    for t in tariffs:
        current, upcoming = _current_and_next(versions[t.id], now)
        rows.append(
            {
                "tariff": t,
                "current": current,
                "next": upcoming,
                "spec": json.loads(current.spec) if current else None,
                "number": versions[t.id].index(current) + 1 if current else 0,
                "usage": usage[t.id],
                "compliance": _compliance(t.property, t, current or upcoming),
            }
        )
    return render("tariffs/list.html", rows=rows, many_properties=len(_properties()) > 1)


@bp.get("/<int:tariff_id>")
@login_required("account.view")
def detail(tariff_id: int):
    tariff = _tariff_or_404(tariff_id)
    now = utcnow()
    versions = _versions([tariff.id])[tariff.id]
    current, upcoming = _current_and_next(versions, now)
    history = []
    for v in reversed(versions):
        spec = json.loads(v.spec)
        state = (
            "current" if v is current else ("scheduled" if v.effective_from > now else "superseded")
        )
        history.append(
            {
                "version": v,
                "spec": spec,
                "state": state,
                "bar": forms.day_bar(spec),
                "compliance": _compliance(tariff.property, tariff, v),
            }
        )
    assigned = None
    if request.args.get("assigned"):
        assigned = {
            k: int(request.args.get(k, "0")) if request.args.get(k, "0").isdigit() else 0
            for k in ("accounts", "meters", "unchanged")
        }
    return render(
        "tariffs/detail.html",
        tariff=tariff,
        history=history,
        usage=_usage([tariff.id])[tariff.id],
        current=current,
        upcoming=upcoming,
        assigned=assigned,
    )


# ---------------------------------------------------------------------------- the editor


def _header(form) -> dict[str, str]:
    return {
        k: (form.get(k) or "").strip()
        for k in (
            "property",
            "name",
            "utility",
            "kind",
            "effective_from",
            "override_reason",
            "tariff",
        )
    }


def _form_context(
    *,
    tariff: Tariff | None,
    prop: Property,
    header: dict[str, str],
    state: dict[str, Any],
    errors: dict[str, str] | None = None,
) -> dict[str, Any]:
    utility = tariff.utility if tariff else (header.get("utility") or "electricity")
    return {
        "tariff": tariff,
        "property": prop,
        "properties": _properties(),
        "header": header,
        "state": state,
        "errors": errors or {},
        "utility": utility,
        "kinds": KINDS,
        "rates": RATES,
        "utilities": UTILITIES,
        "ends": forms.segment_ends(state),
        "preview": _preview(prop, utility, state),
    }


def _preview(prop: Property, utility: str, state: dict[str, Any]) -> dict[str, Any]:
    """What the rows would save: the day bar, the compliance check, or why it cannot save."""
    spec, errors = forms.parse_spec(state)
    if spec is None:
        return {
            "spec": None,
            "bar": [],
            "problems": [],
            "messages": list(dict.fromkeys(errors.values())),
        }
    utility = utility if utility in UTILITIES else "electricity"
    return {
        "spec": spec,
        "bar": forms.day_bar(spec),
        "messages": [],
        "problems": compliance_problems(prop, utility, state["kind"], spec),
    }


def _new_form_property(header: dict[str, str]) -> Property:
    raw = header.get("property", "")
    prop = (
        Property.get_or_none(Property.id == int(raw))
        if raw.isdigit()
        else visible_properties().first()
    )
    if prop is None:
        abort(404)
    check_property(prop.id)
    return prop


@bp.get("/new")
@login_required("tariff.edit")
def new():
    prop = _new_form_property(_header(request.args))
    today = clock.local_date(utcnow(), prop.timezone)
    header = {
        "property": str(prop.id),
        "name": "",
        "utility": "electricity",
        "kind": "flat",
        "effective_from": today.isoformat(),
        "override_reason": "",
        "tariff": "",
    }
    kind = request.args.get("kind", "flat")
    header["kind"] = kind if kind in KINDS else "flat"
    return render(
        "tariffs/form.html",
        **_form_context(
            tariff=None, prop=prop, header=header, state=forms.default_state(header["kind"])
        ),
    )


@bp.get("/<int:tariff_id>/versions/new")
@login_required("tariff.edit")
def new_version(tariff_id: int):
    tariff = _tariff_or_404(tariff_id)
    prop = tariff.property
    now = utcnow()
    current, _next = _current_and_next(_versions([tariff.id])[tariff.id], now)
    latest = (
        TariffVersion.select()
        .where(TariffVersion.tariff == tariff)
        .order_by(TariffVersion.effective_from.desc())
        .first()
    )
    start_from = latest or current
    state = (
        forms.state_from_spec(tariff.kind, json.loads(start_from.spec))
        if start_from
        else forms.default_state(tariff.kind)
    )
    tomorrow = clock.local_date(now, prop.timezone) + dt.timedelta(days=1)
    if latest is not None:
        tomorrow = max(
            tomorrow, clock.local_date(latest.effective_from, prop.timezone) + dt.timedelta(days=1)
        )
    header = {
        "property": str(prop.id),
        "name": tariff.name,
        "utility": tariff.utility,
        "kind": tariff.kind,
        "effective_from": tomorrow.isoformat(),
        "override_reason": "",
        "tariff": str(tariff.id),
    }
    return render(
        "tariffs/form.html", **_form_context(tariff=tariff, prop=prop, header=header, state=state)
    )


def _posted(tariff: Tariff | None) -> tuple[Property, dict[str, str], dict[str, Any], str]:
    header = _header(request.form)
    state = forms.state_from_form(request.form)
    if tariff is not None:
        prop = tariff.property
        state["kind"] = header["kind"] = tariff.kind
        header["utility"] = tariff.utility
    else:
        prop = _new_form_property(header)
    return prop, header, state, (tariff.utility if tariff else header["utility"])


@bp.post("/editor")
@login_required("tariff.edit")
def editor():
    """Re-render the kind's editor: switch the kind, or add / remove a segment or block row."""
    raw = request.form.get("tariff", "")
    tariff = _tariff_or_404(int(raw)) if raw.isdigit() else None
    prop, header, state, _utility = _posted(tariff)
    forms.edit_rows(state, request.form.get("op", ""))
    ctx = _form_context(tariff=tariff, prop=prop, header=header, state=state)
    resp = render("tariffs/form.html", "spec_editor", **ctx)
    return resp, 200, {"HX-Trigger-After-Swap": "tariff-changed"}


@bp.post("/preview")
@login_required("tariff.edit")
def preview():
    raw = request.form.get("tariff", "")
    tariff = _tariff_or_404(int(raw)) if raw.isdigit() else None
    prop, header, state, _utility = _posted(tariff)
    ctx = _form_context(tariff=tariff, prop=prop, header=header, state=state)
    return render("tariffs/form.html", "preview", **ctx)


def _check_cap(
    prop: Property,
    utility: str,
    kind: str,
    spec: dict[str, Any],
    reason: str,
    errors: dict[str, str],
) -> None:
    """Say early and plainly what the domain will refuse about the compliance cap."""
    if utility not in UTILITIES:
        return
    problems = compliance_problems(prop, utility, kind, spec)
    if not problems:
        return
    if not current_actor().can("tariff.override"):
        errors["spec"] = _(
            "%(problems)s. Only an administrator may save a price above the cap, with a reason.",
            problems="; ".join(problems),
        )
    elif not reason:
        errors["override_reason"] = _(
            "A price is above the cap: give the reason for overriding it."
        )


def _save(tariff: Tariff | None):
    prop, header, state, utility = _posted(tariff)
    errors: dict[str, str] = {}
    if tariff is None:
        if not header["name"]:
            errors["name"] = _("Enter a name.")
        if header["utility"] not in UTILITIES:
            errors["utility"] = _("Choose electricity or water.")
        if header["kind"] not in KINDS:
            errors["kind"] = _("Choose a kind.")
    effective = None
    try:
        effective = forms.parse_effective(header["effective_from"], prop.timezone)
    except ValidationError as exc:
        errors["effective_from"] = exc.message
    now = utcnow()
    if effective is not None and tariff is not None:
        today = forms.parse_effective(
            clock.local_date(now, prop.timezone).isoformat(), prop.timezone
        )
        latest = (
            TariffVersion.select(fn.MAX(TariffVersion.effective_from))
            .where(TariffVersion.tariff == tariff)
            .scalar()
        )
        if effective < today:
            errors["effective_from"] = _("A new version cannot start in the past.")
        elif latest is not None and effective <= latest:
            errors["effective_from"] = _(
                "A new version starts after the latest one (%(date)s); versions are never changed in place.",
                date=clock.local_date(latest, prop.timezone).isoformat(),
            )
    spec, spec_errors = forms.parse_spec(state)
    errors.update(spec_errors)
    if spec is not None:
        _check_cap(prop, utility, state["kind"], spec, header["override_reason"], errors)
    if not errors:
        try:
            if tariff is None:
                tariff = create_tariff(
                    prop,
                    name=header["name"],
                    utility=utility,
                    kind=state["kind"],
                    spec=spec,
                    effective_from=effective,
                    override_reason=header["override_reason"],
                    actor=current_actor(),
                    now=now,
                )
            else:
                add_tariff_version(
                    tariff,
                    spec=spec,
                    effective_from=effective,
                    override_reason=header["override_reason"],
                    actor=current_actor(),
                    now=now,
                )
        except DomainError as exc:
            errors[exc.field or "spec"] = exc.message
        else:
            return htmx_redirect(url_for("tariffs.detail", tariff_id=tariff.id))
    ctx = _form_context(tariff=tariff, prop=prop, header=header, state=state, errors=errors)
    return render("tariffs/form.html", "tariff_form", **ctx), 422


@bp.post("/new")
@login_required("tariff.edit")
def create():
    return _save(None)


@bp.post("/<int:tariff_id>/versions")
@login_required("tariff.edit")
def create_version(tariff_id: int):
    return _save(_tariff_or_404(tariff_id))


# ---------------------------------------------------------------------------- bulk assignment


def _assign_criteria(form) -> dict[str, str]:
    criteria = {k: (form.get(k) or "").strip() for k in ("target", "building", "q", "list")}
    if criteria["target"] not in ("accounts", "meters"):
        criteria["target"] = "accounts"
    return criteria


def _selection(tariff: Tariff, criteria: dict[str, str]) -> tuple[Any, dict[str, str]]:
    """The query of the accounts or meters the criteria pick, or the reasons it cannot run."""
    errors: dict[str, str] = {}
    wanted = [w for w in re.split(r"[\s,;，；]+", criteria["list"]) if w]
    if not (criteria["building"] or criteria["q"] or wanted):
        errors["selection"] = _("Choose a building, type a filter or paste a list.")
        return None, errors
    if criteria["target"] == "accounts":
        query = (
            Account.select(Account, Tenant, Room)
            .join(Tenant)
            .switch(Account)
            .join(Room, JOIN.LEFT_OUTER)
            .join(Floor, JOIN.LEFT_OUTER)
            .where((Account.property == tariff.property) & (Account.status != "closed"))
        )
        key, text_match = (
            Account.number,
            (
                lambda q: (
                    Account.number.contains(q) | Tenant.name.contains(q) | Room.number.contains(q)
                )
            ),
        )
    else:
        query = (
            Meter.select(Meter, Account, Room)
            .join(Account, JOIN.LEFT_OUTER)
            .switch(Meter)
            .join(Room, JOIN.LEFT_OUTER)
            .join(Floor, JOIN.LEFT_OUTER)
            .where(
                (Meter.property == tariff.property)
                & (Meter.status != "removed")
                & (Meter.kind == tariff.utility)
            )
        )
        key, text_match = (
            Meter.serial,
            (
                lambda q: (
                    Meter.serial.contains(q) | Room.number.contains(q) | Account.number.contains(q)
                )
            ),
        )
    if criteria["building"]:
        if not criteria["building"].isdigit():
            errors["building"] = _("Choose a building.")
        else:
            query = query.where(Floor.building == int(criteria["building"]))
    if criteria["q"]:
        query = query.where(text_match(criteria["q"]))
    if wanted:
        found = {row[0] for row in query.select(key).where(key.in_(wanted)).tuples()}
        missing = [w for w in wanted if w not in found]
        if missing:
            shown = ", ".join(missing[:20]) + (" …" if len(missing) > 20 else "")
            if criteria["target"] == "accounts":
                errors["list"] = _(
                    "Not found among the open accounts picked: %(items)s", items=shown
                )
            else:
                errors["list"] = _(
                    "Not found among the meters in service picked: %(items)s", items=shown
                )
        query = query.where(key.in_(wanted))
    return (None if errors else query.order_by(key)), errors


def _assign_context(
    tariff: Tariff,
    criteria: dict[str, str],
    errors: dict[str, str] | None = None,
    *,
    with_preview: bool = False,
) -> dict[str, Any]:
    buildings = list(
        Building.select().where(Building.property == tariff.property).order_by(Building.name)
    )
    ctx: dict[str, Any] = {
        "tariff": tariff,
        "criteria": criteria,
        "buildings": buildings,
        "errors": dict(errors or {}),
        "selection": None,
    }
    if not with_preview:
        return ctx
    query, sel_errors = _selection(tariff, criteria)
    ctx["errors"].update(sel_errors)
    if query is None:
        return ctx
    total = query.count()
    if total > ASSIGN_MAX:
        ctx["errors"]["selection"] = _(
            "%(n)s match; narrow the selection to at most %(max)s.", n=total, max=ASSIGN_MAX
        )
        return ctx
    ids = [row[0] for row in query.select(query.model.id).tuples()]
    sample = list(query.limit(ASSIGN_SAMPLE))
    if criteria["target"] == "accounts":
        column = (
            Account.tariff_electricity if tariff.utility == "electricity" else Account.tariff_water
        )
        already = query.where(column == tariff.id).count()
        # Meters with a tariff of their own keep it: it wins over the account's.
        own = (
            Meter.select()
            .where(
                Meter.account.in_(query.select(Account.id))
                & (Meter.kind == tariff.utility)
                & Meter.tariff.is_null(False)
                & (Meter.tariff != tariff.id)
                & (Meter.status != "removed")
            )
            .count()
        )
    else:
        already = query.where(Meter.tariff == tariff.id).count()
        own = 0
    names = {
        t.id: t.name
        for t in Tariff.select(Tariff.id, Tariff.name).where(Tariff.property == tariff.property)
    }
    ctx["selection"] = {
        "total": total,
        "ids": ",".join(str(i) for i in ids),
        "sample": sample,
        "already": already,
        "change": total - already,
        "own_tariff_meters": own,
        "names": names,
    }
    return ctx


@bp.get("/<int:tariff_id>/assign")
@login_required("tariff.edit")
def assign(tariff_id: int):
    tariff = _tariff_or_404(tariff_id)
    criteria = _assign_criteria(request.args)
    return render("tariffs/assign.html", **_assign_context(tariff, criteria))


@bp.post("/<int:tariff_id>/assign/preview")
@login_required("tariff.edit")
def assign_preview(tariff_id: int):
    tariff = _tariff_or_404(tariff_id)
    criteria = _assign_criteria(request.form)
    ctx = _assign_context(tariff, criteria, with_preview=True)
    return render("tariffs/assign.html", "assign_preview", **ctx)


@bp.post("/<int:tariff_id>/assign")
@login_required("tariff.edit")
def assign_save(tariff_id: int):
    tariff = _tariff_or_404(tariff_id)
    criteria = _assign_criteria(request.form)
    raw = [p for p in (request.form.get("ids") or "").split(",") if p.strip()]
    errors: dict[str, str] = {}
    if not raw or not all(p.strip().isdigit() for p in raw):
        errors["selection"] = _("Preview the selection first.")
    else:
        ids = [int(p) for p in raw]
        try:
            if criteria["target"] == "accounts":
                result = assign_tariff(tariff, ids, actor=current_actor(), now=utcnow())
            else:
                result = assign_tariff(tariff, meter_ids=ids, actor=current_actor(), now=utcnow())
        except DomainError as exc:
            errors["selection"] = exc.message
        else:
            return htmx_redirect(
                url_for("tariffs.detail", tariff_id=tariff.id, assigned=1, **result)
            )
    ctx = _assign_context(tariff, criteria, errors, with_preview=True)
    return render("tariffs/assign.html", "assign_preview", **ctx), 422
