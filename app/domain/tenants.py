"""Tenants edited after they were created: name, phones, contact, ID number, note; audited
with before and after."""

from __future__ import annotations

import datetime as dt
from typing import Any

from app.db import write_tx
from app.domain.actors import Actor
from app.domain.audit import audit, field_changes
from app.domain.errors import NotFound, ValidationError
from app.domain.site import clean_phones
from app.i18n import tr
from app.models import Tenant

LIMITS = {"name": 120, "contact": 120, "id_number": 30, "note": 2000}
FIELDS = ("name", "phones", "contact", "id_number", "note")


def update_tenant(tenant: Tenant, *, actor: Actor, now: dt.datetime, **changes: Any) -> Tenant:
    """Change a tenant's details; only the given fields change, a bad value changes nothing."""
    actor.require("account.open")
    unknown = set(changes) - set(FIELDS)
    if unknown:
        name = sorted(unknown)[0]
        raise ValidationError(tr("unknown field '%(name)s'", name=name), name)
    values: dict[str, str] = {}
    for name, value in changes.items():
        if not isinstance(value, str):
            raise ValidationError(tr("%(name)s is a string", name=name), name)
        if name == "phones":
            values[name] = clean_phones(value)
            continue
        value = value.strip()
        if len(value) > LIMITS[name]:
            raise ValidationError(tr("at most %(n)s characters", n=LIMITS[name]), name)
        values[name] = value
    if "name" in values and not values["name"]:
        raise ValidationError(tr("this cannot be empty"), "name")
    id_number = values.get("id_number", "")
    if id_number and not (id_number.isascii() and id_number.isalnum()):
        raise ValidationError(tr("an ID number is letters and digits"), "id_number")
    with write_tx():
        current = Tenant.get_or_none(Tenant.id == tenant.id)
        if current is None:
            raise NotFound(tr("no such tenant"), "tenant")
        changed = field_changes(current, values)
        if not changed:
            return current
        Tenant.update(**values).where(Tenant.id == current.id).execute()
        audit(actor, "tenant.update", current, now=now, changed=changed)
    return Tenant.get_by_id(tenant.id)
