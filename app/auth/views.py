from __future__ import annotations

from flask import Blueprint, g, redirect, request, session, url_for
from flask_babel import gettext as _

from app.domain.users import authenticate
from app.models import utcnow
from app.web import render

bp = Blueprint("auth", __name__)


@bp.route("/login", methods=["GET", "POST"])
def login():
    error = None
    if request.method == "POST":
        user = authenticate(
            request.form.get("username", ""), request.form.get("password", ""), now=utcnow()
        )
        if user is None:
            error = _("Wrong username or password, or the account is locked for a while.")
        else:
            lang = session.get("lang")
            session.clear()
            session.permanent = True
            session["uid"] = user.id
            session["pw"] = user.password_hash[-12:]
            session["seen"] = utcnow().isoformat()
            if lang:
                session["lang"] = lang
            target = request.args.get("next") or ""
            if not target.startswith("/") or target.startswith("//"):
                target = url_for("console.index")  # the overview, or the accounts for a cashier
            return redirect(target, code=303)
    return render("auth/login.html", error=error), (400 if error else 200)


@bp.post("/logout")
def logout():
    session.clear()
    return redirect(url_for("auth.login"), code=303)


@bp.post("/language")
def language():
    lang = request.form.get("lang", "")
    if lang in ("zh_CN", "en"):
        session["lang"] = lang
    target = request.form.get("next") or "/"
    if not target.startswith("/") or target.startswith("//"):
        target = "/"
    return redirect(target if g.get("user") else url_for("auth.login"), code=303)
