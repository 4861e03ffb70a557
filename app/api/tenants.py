"""Tenants through the API: create and change, through the same domain functions as the
console."""

from __future__ import annotations

from typing import Any

from flask import jsonify

from app.api.sites import _id, _property, _text
from app.api.views import _actor, _body, auth, bp
from app.domain.errors import NotFound
from app.domain.site import create_tenant
from app.domain.tenants import FIELDS, update_tenant
from app.i18n import tr
from app.models import Tenant, utcnow
from app.web import property_scope


def tenant_json(t: Tenant) -> dict[str, Any]:
    return {
        "id": t.id,
        "property_id": t.property_id,
        "name": t.name,
        "phones": [p for p in t.phones.split(",") if p],
        "contact": t.contact,
        "id_number": t.id_number,
        "note": t.note,
    }


def _phones(body: dict) -> str:
    phones = body.get("phones", [])
    if isinstance(phones, list) and all(isinstance(p, str) for p in phones):
        return ",".join(phones)
    return _text(body, "phones", "")


@bp.post("/tenants")
@auth("account.open")
def tenants_create():
    body = _body()
    prop = _property(_id(body, "property_id"))
    actor, now = _actor(), utcnow()
    tenant = create_tenant(
        prop,
        name=_text(body, "name"),
        phones=_phones(body),
        contact=_text(body, "contact", ""),
        actor=actor,
        now=now,
    )
    tenant = update_tenant(
        tenant,
        id_number=_text(body, "id_number", ""),
        note=_text(body, "note", ""),
        actor=actor,
        now=now,
    )
    return jsonify(tenant_json(tenant)), 201


@bp.patch("/tenants/<int:tenant_id>")
@auth("account.open")
def tenants_update(tenant_id: int):
    tenant = Tenant.get_or_none(Tenant.id == tenant_id)
    scope = property_scope()
    if tenant is None or (scope is not None and tenant.property_id not in scope):
        raise NotFound(tr("no such tenant"), "tenant_id")
    body = _body()
    changes = {name: body[name] for name in FIELDS if name in body and name != "phones"}
    if "phones" in body:
        changes["phones"] = _phones(body)
    extra = set(body) - set(FIELDS)
    tenant = update_tenant(
        tenant, actor=_actor(), now=utcnow(), **changes, **{k: body[k] for k in extra}
    )
    return jsonify(tenant_json(tenant))
