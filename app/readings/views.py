"""Readings waiting for review: implausible jumps held uncharged and registers that went
backwards.  A reviewer accepts a held reading (charged at the rate in force at its time) or
closes it uncharged with a reason."""

from __future__ import annotations

from flask import Blueprint, abort, request, url_for

from app.domain.errors import DomainError
from app.domain.readings import (
    dismiss_reading,
    release_held_reading,
    review_queue,
)
from app.models import Meter, Reading, utcnow
from app.web import (
    check_property,
    current_actor,
    htmx_redirect,
    login_required,
    page_arg,
    property_scope,
    render,
)

bp = Blueprint("readings", __name__, url_prefix="/readings")

PAGE = 50


def review_count() -> int:
    """Readings waiting for review in the signed-in user's properties (the top bar's badge)."""
    return review_queue(property_scope()).count()


def _page(status: int = 200, errors: dict[int, str] | None = None):
    page = page_arg()
    query = review_queue(property_scope())
    total = query.count()
    return render(
        "readings/review.html",
        "results",
        rows=list(query.paginate(page, PAGE)),
        total=total,
        page=page,
        pages=max((total + PAGE - 1) // PAGE, 1),
        errors=errors or {},
    ), status


@bp.get("/review")
@login_required("reading.review")
def review():
    return _page()


def _waiting(reading_id: int) -> Reading:
    row = Reading.select(Reading, Meter).join(Meter).where(Reading.id == reading_id).first()
    if row is None:
        abort(404)
    check_property(row.meter.property_id)
    return row


def _decide(reading_id: int, decision):
    """Apply a reviewer's decision (a domain function) with the form's reason."""
    row = _waiting(reading_id)
    try:
        decision(row, actor=current_actor(), now=utcnow(), reason=request.form.get("reason", ""))
    except DomainError as exc:
        return _page(422, {row.id: exc.message})
    return htmx_redirect(url_for("readings.review"))


@bp.post("/<int:reading_id>/accept")
@login_required("reading.review")
def accept(reading_id: int):
    """Charge a held reading at the rate in force at its time."""
    return _decide(reading_id, release_held_reading)


@bp.post("/<int:reading_id>/dismiss")
@login_required("reading.review")
def dismiss(reading_id: int):
    """Close a held reading uncharged (rejected) or a falling register (reviewed)."""
    return _decide(reading_id, dismiss_reading)
