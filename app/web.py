"""Console plumbing shared by the view blueprints: the signed-in user, permissions, CSRF,
htmx-aware rendering and template filters."""

from __future__ import annotations

import datetime as dt
import functools
import secrets
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from flask import (
    Flask,
    abort,
    current_app,
    g,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import format_decimal, get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from jinja2_fragments.flask import render_block

from app import clock
from app.domain.actors import Actor
from app.domain.errors import ValidationError
from app.domain.money import format_fen
from app.domain.users import visible_property_ids
from app.i18n import label, tr
from app.models import Property, User, utcnow

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
# Blueprints whose POSTs carry no session and no CSRF token: the JSON API (bearer tokens) and
# Twilio's delivery-status webhook (checked by Twilio's request signature instead).
CSRF_EXEMPT_BLUEPRINTS = frozenset({"api", "sms.webhook"})
# What works on an empty box (no property yet): signing in, setting the box up, people.
SETUP_BLUEPRINTS = frozenset({"auth", "sites", "api", "sms.webhook"})
SETUP_ENDPOINTS = frozenset(
    {
        "static",
        "healthz",
        "console.index",
        "admin.users",
        "admin.user_detail",
        "admin.audit_log",
    }
)


def current_actor() -> Actor:
    user = g.get("user")
    if user is None:
        abort(401)
    return Actor(user.username, user.role)


def property_scope() -> set[int] | None:
    """The property ids the signed-in user may see, or ``None`` for all (see
    ``app.domain.users.visible_property_ids``); cached for the request."""
    if "property_scope" not in g:
        g.property_scope = visible_property_ids(g.get("user"))
    return g.property_scope


def page_arg() -> int:
    """The ``page`` query argument: a positive page number, 1 for anything else."""
    raw = request.args.get("page", "1")
    return max(int(raw), 1) if raw.isdigit() else 1


def visible_properties():
    """A query of the properties the signed-in user may see."""
    query = Property.select().order_by(Property.code, Property.id)
    scope = property_scope()
    return query if scope is None else query.where(Property.id.in_(sorted(scope) or [0]))


def display_zone() -> ZoneInfo:
    """The zone pages show times in: the visible properties' zone when they share one, the
    box's configured zone otherwise (a time of one object is shown with ``dt(obj.property)``).
    Cached for the request."""
    if "display_zone" not in g:
        names = {name for (name,) in visible_properties().select(Property.timezone).tuples()}
        g.display_zone = clock.zone(names.pop() if len(names) == 1 else None)
    return g.display_zone


def display_zone_name() -> str:
    return display_zone().key


def format_local(value: dt.datetime | None, where: Any = None, *, seconds: bool = False) -> str:
    """A stored (naive UTC) time as the 24-hour local time of ``where`` (a property, a zone or
    its name; the page's zone when omitted)."""
    if not value:
        return ""
    if not isinstance(value, dt.datetime):  # a date has no zone
        return value.isoformat()
    local = clock.local(value, display_zone() if where is None else where)
    return local.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def chosen_property(raw: str | None, field: str = "property") -> Property:
    """The property a form names by id, if the signed-in user may see it; else a
    ValidationError naming the field."""
    raw = (raw or "").strip()
    prop = visible_properties().where(Property.id == int(raw)).first() if raw.isdigit() else None
    if prop is None:
        raise ValidationError(tr("choose a property"), field)
    return prop


def owned_or_404(model: Any, object_id: int) -> Any:
    """An object with a ``property`` of the signed-in user's scope, or 404."""
    obj = model.get_or_none(model.id == object_id)
    if obj is None:
        abort(404)
    check_property(obj.property_id)
    return obj


def check_property(property_id: int) -> None:
    """404 for an object of a property outside the signed-in user's scope."""
    scope = property_scope()
    if scope is not None and property_id not in scope:
        abort(404)


def _grouped(units: int, places: int) -> str:
    """An integer count of 10^-places units shown with the locale's grouping and decimal
    signs, exactly: 1234567 fen -> '12,345.67'."""
    pattern = "#,##0" + ("." + "0" * places if places else "")
    return format_decimal(Decimal(units).scaleb(-places), format=pattern)


def login_required(permission: str | None = None) -> Callable:
    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any):
            if g.get("user") is None:
                target = url_for("auth.login", next=request.path)
                if is_htmx():
                    return htmx_redirect(target)
                return redirect(target)
            if permission and not current_actor().can(permission):
                abort(403)
            return view(*args, **kwargs)

        wrapped.permission = permission  # type: ignore[attr-defined]
        return wrapped

    return decorator


def is_htmx() -> bool:
    """An htmx request (htmx-flask's ``request.htmx``: ``HX-Request: true``)."""
    return bool(request.htmx)  # type: ignore[attr-defined]


def render(template: str, block: str | None = None, **context: Any):
    """The whole page, or for an htmx request the named block of it."""
    if block and is_htmx() and not request.htmx.boosted:  # type: ignore[attr-defined]
        body = render_block(template, block, **context)
    else:
        body = render_template(template, **context)
    return body


def htmx_redirect(location: str):
    """303 for a plain form; for htmx a 200 with ``HX-Redirect`` (a 3xx would be followed by
    the XHR itself and its target swapped into the page instead of navigating)."""
    if is_htmx():
        resp = make_response("", 200)
        resp.headers["HX-Redirect"] = location
        return resp
    return redirect(location, code=303)


def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(24)
    return token


def _locale_code() -> str:
    """The console language as the codes the templates use ("zh_CN" or "en").  Babel
    expands zh_CN to zh_Hans_CN, so compare by language rather than by the full name."""
    locale = get_locale()
    return "zh_CN" if locale is not None and locale.language == "zh" else "en"


def _property_language() -> str:
    scope = property_scope()
    query = Property.select(Property.language).order_by(Property.id)
    if scope is not None:
        query = query.where(Property.id.in_(scope))
    prop = query.first()
    return prop.language if prop is not None else ""


def register_web(app: Flask) -> None:
    @app.before_request
    def _load_user() -> None:
        g.user = None
        uid = session.get("uid")
        if uid and request.endpoint != "static":
            user = User.get_or_none((User.id == uid) & (User.active == True))
            now = utcnow()
            idle = app.permanent_session_lifetime
            try:
                seen = dt.datetime.fromisoformat(session.get("seen", ""))
            except (TypeError, ValueError):
                seen = None
            if (
                user is not None
                and session.get("pw") == user.password_hash[-12:]
                and seen is not None
                and now - seen <= idle
            ):
                g.user = user
                g.property_language = _property_language()
                if now - seen > dt.timedelta(minutes=1):  # keep the cookie quiet between clicks
                    session["seen"] = now.isoformat()
            else:
                session.clear()

    @app.before_request
    def _empty_box():
        """Before the first property exists only setting the box up makes sense: a page that
        needs a property sends a person who may create one to do so, and tells the others."""
        if g.get("user") is None or request.method not in SAFE_METHODS:
            return None
        if request.blueprint in SETUP_BLUEPRINTS or request.endpoint in SETUP_ENDPOINTS:
            return None
        view = current_app.view_functions.get(request.endpoint or "")
        permission = getattr(view, "permission", None)
        actor = current_actor()
        if permission and not actor.can(permission):
            return None  # the view answers 403 as anywhere else
        if Property.select().exists():
            return None
        if actor.can("site.edit"):
            return redirect(url_for("sites.property_new"))
        return render("setup_pending.html")

    @app.before_request
    def _guard_posts():
        if request.method in SAFE_METHODS or request.blueprint in CSRF_EXEMPT_BLUEPRINTS:
            return None
        if request.headers.get("Sec-Fetch-Site") == "cross-site":
            abort(403)
        sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token")
        if not sent or not secrets.compare_digest(sent, session.get("csrf", "")):
            abort(400, description=_("The form has expired. Reload the page and try again."))
        return None

    @app.after_request
    def _vary(resp):
        resp.headers.add("Vary", "HX-Request")
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        return resp

    @app.context_processor
    def _context() -> dict[str, Any]:
        user = g.get("user")
        actor = Actor(user.username, user.role) if user else None
        return {
            "csrf_token": csrf_token,
            "current_user": user,
            "can": (lambda p: actor is not None and actor.can(p)),
            "locale": _locale_code(),
        }

    def _error(code: int, default: str):
        def handler(exc):
            message = getattr(exc, "description", "") if code == 400 else ""
            message = str(message or default)
            if request.path.startswith("/api/"):
                return {"error": {"message": message, "field": None}}, code
            return render("error.html", code=code, message=message), code

        return handler

    app.register_error_handler(400, _error(400, _l("Bad request.")))
    app.register_error_handler(401, _error(401, _l("Sign in first.")))
    app.register_error_handler(403, _error(403, _l("You do not have permission for this.")))
    app.register_error_handler(404, _error(404, _l("Not found.")))
    app.register_error_handler(405, _error(405, _l("Method not allowed.")))

    app.jinja_env.filters["label"] = label
    # Display filters: exact (Decimal from the stored integer), grouped per the locale
    # (¥12,345.67). ``fen`` stays plain for form values that are parsed back.
    app.jinja_env.filters["yuan"] = lambda fen: "¥" + _grouped(int(fen or 0), 2)
    app.jinja_env.filters["fen"] = lambda fen: format_fen(int(fen or 0))
    app.jinja_env.filters["kwh"] = lambda cwh: _grouped(int(cwh or 0), 2)
    app.jinja_env.filters["m3"] = lambda litres: _grouped(int(litres or 0), 3)
    app.jinja_env.filters["number"] = lambda n: _grouped(int(n or 0), 0)
    app.jinja_env.filters["dt"] = format_local
