"""A tenant's details added and edited from the console (the tenant list and the tenant
center are in ``app.accounts``)."""

from __future__ import annotations

from flask import Blueprint, request, url_for

from app.domain.errors import DomainError
from app.domain.site import create_tenant
from app.domain.tenants import FIELDS, update_tenant
from app.i18n import tr
from app.models import Tenant, utcnow
from app.web import (
    chosen_property,
    current_actor,
    htmx_redirect,
    login_required,
    owned_or_404,
    render,
    visible_properties,
)

bp = Blueprint("tenants", __name__, url_prefix="/tenants")


def _page(tenant, form, errors=None, status=200, notice=""):
    return render(
        "tenants/form.html",
        "tenant_form",
        tenant=tenant,
        form=form,
        errors=errors or {},
        notice=notice,
        properties=list(visible_properties()),
    ), status


@bp.get("/new")
@login_required("account.open")
def new():
    return _page(None, {})


@bp.post("/new")
@login_required("account.open")
def create():
    form = request.form.to_dict()
    try:
        prop = chosen_property(form.get("property"))
        actor, now = current_actor(), utcnow()
        tenant = create_tenant(
            prop,
            name=form.get("name", ""),
            phones=form.get("phones", ""),
            contact=form.get("contact", ""),
            actor=actor,
            now=now,
        )
        update_tenant(
            tenant,
            id_number=form.get("id_number", ""),
            note=form.get("note", ""),
            actor=actor,
            now=now,
        )
    except DomainError as exc:
        return _page(None, form, {exc.field or "name": exc.message}, 422)
    return htmx_redirect(url_for("accounts.tenant_detail", tenant_id=tenant.id))


def _tenant_or_404(tenant_id: int) -> Tenant:
    return owned_or_404(Tenant, tenant_id)


def _form(tenant: Tenant) -> dict:
    return {name: getattr(tenant, name) for name in FIELDS}


@bp.get("/<int:tenant_id>/edit")
@login_required("account.open")
def edit(tenant_id: int):
    tenant = _tenant_or_404(tenant_id)
    return _page(tenant, _form(tenant))


@bp.post("/<int:tenant_id>/edit")
@login_required("account.open")
def save(tenant_id: int):
    tenant = _tenant_or_404(tenant_id)
    form = request.form.to_dict()
    try:
        tenant = update_tenant(
            tenant,
            actor=current_actor(),
            now=utcnow(),
            **{name: form.get(name, "") for name in FIELDS},
        )
    except DomainError as exc:
        return _page(tenant, form, {exc.field or "name": exc.message}, 422)
    return _page(tenant, _form(tenant), notice=tr("Saved."))
