"""JSON API for property-management and finance systems (``/api/v1``).

Bearer-token auth, one role per token.  Amounts are decimal strings ("97.00"); errors are
``{"error": {"message": ..., "field": ...}}`` and a 4xx changes nothing.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

from flask import Blueprint, g, jsonify, request

from app import clock
from app.api.openapi import SPEC
from app.domain.actors import Actor
from app.domain.errors import DomainError, NotFound, ValidationError
from app.domain.ledger import wallet_entries
from app.domain.money import format_fen, format_price, parse_yuan
from app.domain.readings import ReadingIn, apply_readings
from app.domain.sales import reverse_sale, sell
from app.domain.users import token_actor
from app.i18n import tr
from app.models import (
    Account,
    LedgerAccount,
    Meter,
    Property,
    Sale,
    Tariff,
    TariffVersion,
    Tenant,
    utcnow,
)

bp = Blueprint("api", __name__)


def _zone(property_id: int | None):
    """A property's time zone, cached for the request."""
    zones = g.setdefault("api_zones", {})
    if property_id not in zones:
        zones[property_id] = clock.zone(Property.get_or_none(Property.id == property_id))
    return zones[property_id]


def _iso(value: dt.datetime | None, property_id: int | None) -> str | None:
    """A stored time as ISO 8601 in the property's local time with its offset
    (2027-01-01T00:30:00+08:00)."""
    return clock.iso(value, _zone(property_id)) if value else None


def _reading_time(value: object, zone_of) -> object:
    """An API reading time: with an offset it is that instant; without one it is the meter's
    property's local time.  Anything that is not an ISO time is left for the domain to refuse
    with its message."""
    if not isinstance(value, str):
        return value
    try:
        when = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return value
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone_of())
    return when


def error(message: str, field: str | None, status: int):
    return jsonify({"error": {"message": message, "field": field}}), status


@bp.errorhandler(DomainError)
def _domain_error(exc: DomainError):
    return error(exc.message, exc.field, exc.status)


def auth(permission: str):
    def decorator(view):
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any):
            header = request.headers.get("Authorization", "")
            if not header.startswith("Bearer "):
                return error(tr("send 'Authorization: Bearer <token>'"), None, 401)
            actor = token_actor(header[7:].strip())
            if actor is None:
                return error(tr("unknown or revoked token"), None, 401)
            if not actor.can(permission):
                return error(
                    tr(
                        "this token's role '%(role)s' may not do '%(permission)s'",
                        role=actor.role,
                        permission=permission,
                    ),
                    None,
                    403,
                )
            g.actor = actor
            return view(*args, **kwargs)

        wrapped.permission = permission  # type: ignore[attr-defined]
        return wrapped

    return decorator


def _actor() -> Actor:
    return g.actor


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ValidationError(tr("send a JSON object"), None)
    return data


def _page() -> tuple[int, int]:
    try:
        limit = min(max(int(request.args.get("limit", 100)), 1), 1000)
        offset = max(int(request.args.get("offset", 0)), 0)
    except ValueError:
        raise ValidationError(tr("limit and offset are whole numbers"), "limit") from None
    return limit, offset


def account_json(a: Account, balance: int) -> dict[str, Any]:
    return {
        "id": a.id,
        "number": a.number,
        "tenant_id": a.tenant_id,
        "room_id": a.room_id,
        "status": a.status,
        "balance": format_fen(balance),
        "alarm1": format_fen(a.alarm1_fen),
        "alarm2": format_fen(a.alarm2_fen),
        "credit_limit": format_fen(a.credit_limit_fen),
        "tariff_electricity_id": a.tariff_electricity_id,
        "tariff_water_id": a.tariff_water_id,
        "opened_at": _iso(a.opened_at, a.property_id),
        "closed_at": _iso(a.closed_at, a.property_id),
    }


def sale_json(s: Sale) -> dict[str, Any]:
    return {
        "id": s.id,
        "receipt_no": s.receipt_no,
        "account_id": s.account_id,
        "utility": s.utility,
        "method": s.method,
        "amount": format_fen(s.amount_fen),
        "fee": format_fen(s.fee_fen),
        "net": format_fen(s.net_fen),
        "balance_after": format_fen(s.balance_after_fen),
        "operator": s.operator,
        "created_at": _iso(s.created_at, s.property_id),
        "idempotency_key": s.idempotency_key,
        "reversed": s.reversal_entry_id is not None,
        "reversed_at": _iso(s.reversed_at, s.property_id),
        "reversed_by": s.reversed_by or None,
        "reverse_reason": s.reverse_reason or None,
    }


@bp.get("/openapi.json")
def openapi():
    return jsonify(SPEC)


@bp.get("/tenants")
@auth("account.view")
def tenants():
    limit, offset = _page()
    rows = Tenant.select().order_by(Tenant.id).limit(limit).offset(offset)
    return jsonify(
        {
            "items": [
                {
                    "id": t.id,
                    "property_id": t.property_id,
                    "name": t.name,
                    "phones": [p for p in t.phones.split(",") if p],
                    "contact": t.contact,
                }
                for t in rows
            ]
        }
    )


@bp.get("/accounts")
@auth("account.view")
def accounts():
    limit, offset = _page()
    q = Account.select(Account, LedgerAccount.balance_fen).join(LedgerAccount).order_by(Account.id)
    if request.args.get("status"):
        q = q.where(Account.status == request.args["status"])
    if request.args.get("number"):
        q = q.where(Account.number == request.args["number"])
    rows = q.limit(limit).offset(offset)
    return jsonify({"items": [account_json(a, a.wallet.balance_fen) for a in rows]})


def _account(account_id: int) -> Account:
    acct = Account.get_or_none(Account.id == account_id)
    if acct is None:
        raise NotFound(tr("no such account"), "account_id")
    return acct


@bp.get("/accounts/<int:account_id>")
@auth("account.view")
def account(account_id: int):
    acct = _account(account_id)
    data = account_json(acct, LedgerAccount.get_by_id(acct.wallet_id).balance_fen)
    data["meters"] = [m.id for m in Meter.select(Meter.id).where(Meter.account == acct)]
    return jsonify(data)


@bp.get("/accounts/<int:account_id>/entries")
@auth("ledger.view")
def account_entries(account_id: int):
    acct = _account(account_id)
    limit, offset = _page()
    return jsonify(
        {
            "items": [
                {
                    "entry_id": e["entry_id"],
                    "kind": e["kind"],
                    "created_at": _iso(e["created_at"], acct.property_id),
                    "actor": e["actor"],
                    "memo": e["memo"],
                    "amount": format_fen(e["amount_fen"]),
                }
                for e in wallet_entries(acct.wallet_id, limit=limit, offset=offset)
            ]
        }
    )


@bp.get("/meters")
@auth("account.view")
def meters():
    limit, offset = _page()
    rows = Meter.select().order_by(Meter.id).limit(limit).offset(offset)
    return jsonify(
        {
            "items": [
                {
                    "id": m.id,
                    "serial": m.serial,
                    "kind": m.kind,
                    "protocol": m.protocol,
                    "address": m.address,
                    "account_id": m.account_id,
                    "room_id": m.room_id,
                    "gateway_id": m.gateway_id,
                    "status": m.status,
                    "multiplier": m.multiplier,
                    "prepaid_mode": m.prepaid_mode,
                    "relay_desired": m.relay_desired,
                    "relay_reason": m.relay_reason or None,
                    "keep_power": m.keep_power,
                    "last_read_at": _iso(m.last_read_at, m.property_id),
                    "last_total": m.last_total,
                }
                for m in rows
            ]
        }
    )


@bp.get("/tariffs")
@auth("account.view")
def tariffs():
    out = []
    versions: dict[int, list] = {}
    for v in TariffVersion.select().order_by(TariffVersion.effective_from):
        versions.setdefault(v.tariff_id, []).append(v)
    for t in Tariff.select().order_by(Tariff.id):
        out.append(
            {
                "id": t.id,
                "property_id": t.property_id,
                "name": t.name,
                "utility": t.utility,
                "kind": t.kind,
                "active": t.active,
                "versions": [
                    {
                        "effective_from": _iso(v.effective_from, t.property_id),
                        "spec": _spec_strings(v.spec),
                        "override_reason": v.override_reason or None,
                    }
                    for v in versions.get(t.id, [])
                ],
            }
        )
    return jsonify({"items": out})


def _spec_strings(spec_json: str) -> dict[str, Any]:
    """Prices in a spec as yuan decimal strings."""
    import json

    spec = json.loads(spec_json)
    if "price" in spec:
        spec["price"] = format_price(spec["price"])
    if "prices" in spec:
        spec["prices"] = {k: format_price(v) for k, v in spec["prices"].items()}
    if "blocks" in spec:
        spec["blocks"] = [
            {"upto": b["upto"], "price": format_price(b["price"])} for b in spec["blocks"]
        ]
    return spec


@bp.post("/sales")
@auth("sale.create")
def create_sale():
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key:
        raise ValidationError(
            tr("send an Idempotency-Key header (unique per sale)"), "Idempotency-Key"
        )
    body = _body()
    if "account_id" in body:
        if not isinstance(body["account_id"], int) or isinstance(body["account_id"], bool):
            raise ValidationError(tr("account_id is a whole number"), "account_id")
        acct = _account(body["account_id"])
    elif "account_number" in body:
        acct = Account.get_or_none(Account.number == str(body["account_number"]))
        if acct is None:
            raise NotFound(tr("no account with that number"), "account_number")
    else:
        raise ValidationError(tr("name the account (account_id or account_number)"), "account_id")
    if not isinstance(body.get("amount"), str):
        raise ValidationError(tr('amount is a decimal string such as "100.00"'), "amount")
    amount = parse_yuan(body["amount"])
    result = sell(
        acct,
        amount_fen=amount,
        method=str(body.get("method", "")),
        idempotency_key=key,
        utility=str(body.get("utility", "electricity")),
        actor=_actor(),
        now=utcnow(),
    )
    return jsonify(sale_json(result.sale)), 201 if result.created else 200


@bp.get("/sales/<int:sale_id>")
@auth("money.view")
def get_sale(sale_id: int):
    sale = Sale.get_or_none(Sale.id == sale_id)
    if sale is None:
        raise NotFound(tr("no such sale"), "sale_id")
    return jsonify(sale_json(sale))


@bp.post("/sales/<int:sale_id>/reversal")
@auth("sale.reverse")
def reverse(sale_id: int):
    sale = Sale.get_or_none(Sale.id == sale_id)
    if sale is None:
        raise NotFound(tr("no such sale"), "sale_id")
    body = _body()
    result = reverse_sale(sale, reason=str(body.get("reason", "")), actor=_actor(), now=utcnow())
    return jsonify(sale_json(result.sale)), 201 if result.created else 200


def _meter_property(item: dict) -> int | None:
    """The property of the meter a reading names (by id or serial; None when unknown), each
    meter looked up once per request."""
    meter_id, serial = item.get("meter_id"), item.get("serial")
    if isinstance(meter_id, int) and not isinstance(meter_id, bool):
        key, where = ("id", meter_id), Meter.id == meter_id
    elif isinstance(serial, str):
        key, where = ("serial", serial), Meter.serial == serial
    else:
        return None
    known = g.setdefault("api_meter_properties", {})
    if key not in known:
        found = Meter.select(Meter.property).where(where).first()
        known[key] = found.property_id if found is not None else None
    return known[key]


READING_FIELDS = ("meter_id", "serial", "read_at", "total", "t1", "t2", "t3", "t4")


@bp.post("/readings")
@auth("reading.write")
def readings():
    body = _body()
    items = body.get("readings")
    if not isinstance(items, list) or not items:
        raise ValidationError(tr('send {"readings": [...]} with at least one reading'), "readings")
    if len(items) > 20000:
        raise ValidationError(tr("at most 20,000 readings per request"), "readings")
    batch = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ValidationError(
                tr("reading %(index)s is not an object", index=i), f"readings.{i}"
            )
        unknown = set(item) - set(READING_FIELDS)
        if unknown:
            raise ValidationError(
                tr("reading %(index)s: unknown field %(field)s", index=i, field=sorted(unknown)[0]),
                f"readings.{i}",
            )
        meter_id = item.get("meter_id")
        if meter_id is not None and (not isinstance(meter_id, int) or isinstance(meter_id, bool)):
            raise ValidationError(
                tr("reading %(index)s: meter_id is a whole number", index=i),
                f"readings.{i}.meter_id",
            )
        batch.append(
            ReadingIn(
                meter_id=meter_id,
                serial=item.get("serial"),
                read_at=_reading_time(  # type: ignore[arg-type]
                    item.get("read_at"), lambda i=item: _zone(_meter_property(i))
                ),
                total=item.get("total"),
                t1=item.get("t1"),
                t2=item.get("t2"),
                t3=item.get("t3"),  # type: ignore[arg-type]
                t4=item.get("t4"),
                source="api",
            )
        )
    results = apply_readings(batch, actor=_actor(), now=utcnow())
    meter_property = dict(
        Meter.select(Meter.id, Meter.property)
        .where(Meter.id.in_(sorted({r.meter_id for r in results}) or [0]))
        .tuples()
    )
    return jsonify(
        {
            "results": [
                {
                    "meter_id": r.meter_id,
                    "read_at": _iso(r.read_at, meter_property.get(r.meter_id)),
                    "status": r.status,
                    "consumption": r.consumption,
                    "charge": format_fen(r.charge_fen),
                    "duplicate": r.duplicate,
                    "note": r.note or None,
                }
                for r in results
            ]
        }
    )
