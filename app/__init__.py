"""meterdesk: the Flask application factory."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from flask import Flask, g, request, session
from flask_babel import Babel
from htmx_flask import Htmx

from app import clock
from app.config import ensure_secret_key, load_config
from app.db import db, init_db

ROOT = Path(__file__).resolve().parent.parent
LANGUAGES = ("zh_CN", "en")

babel = Babel()
htmx = Htmx()


def select_locale() -> str:
    """The person's choice (session), else for the JSON API the Accept-Language header
    (English unless Chinese is asked for), else for signed-in staff the language set for
    their (first) property on the settings page, else the configured console language."""
    from flask import current_app, has_request_context

    if has_request_context():
        lang = session.get("lang")
        if lang in LANGUAGES:
            return lang
        if request.path.startswith("/api/"):
            best = request.accept_languages.best_match(["zh_CN", "zh", "en"])
            return "zh_CN" if best in ("zh_CN", "zh") else "en"
        lang = g.get("property_language")  # set for signed-in staff by app.web
        if lang in LANGUAGES:
            return lang
    return current_app.config.get("LANGUAGE", "zh_CN")


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    app = Flask(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder="static",
    )
    config = load_config(test_config)
    app.config.update(config)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = ensure_secret_key(config["STATE_DIR"])
    app.config.setdefault("SESSION_COOKIE_HTTPONLY", True)
    app.config.setdefault("SESSION_COOKIE_SAMESITE", "Lax")
    app.config["PERMANENT_SESSION_LIFETIME"] = dt.timedelta(minutes=int(config["SESSION_MINUTES"]))
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(Path(app.root_path) / "translations")
    app.config["BABEL_DEFAULT_LOCALE"] = config.get("LANGUAGE", "zh_CN")
    app.config["BABEL_DEFAULT_TIMEZONE"] = config.get("TIMEZONE", "Asia/Shanghai")
    app.config["JSON_AS_ASCII"] = False

    clock.set_default_zone(app.config["TIMEZONE"])
    init_db(app.config["DATABASE_URL"])
    from app.web import display_zone_name

    babel.init_app(app, locale_selector=select_locale, timezone_selector=display_zone_name)
    htmx.init_app(app)

    # Stack-aware: work done inside the request (an immediate task) that opens its own
    # connection context does not close the request's connection.
    @app.before_request
    def _connect() -> None:
        if request.endpoint != "static":
            g._db_ctx = db.connection_context()
            g._db_ctx.__enter__()

    @app.teardown_request
    def _close(exc: BaseException | None) -> None:
        ctx = g.pop("_db_ctx", None)
        if ctx is not None:
            ctx.__exit__(None, None, None)

    from app.accounts.views import bp as accounts_bp
    from app.admin import bp as admin_bp
    from app.agreements import bp as agreements_bp
    from app.api import bp as api_bp
    from app.auth.views import bp as auth_bp
    from app.console.views import bp as console_bp
    from app.excel.views import bp as excel_bp
    from app.gateways import bp as gateways_bp
    from app.meters import bp as meters_bp
    from app.operations import bp as operations_bp
    from app.overview import bp as overview_bp
    from app.readings import bp as readings_bp
    from app.readings import review_count
    from app.sites import bp as sites_bp
    from app.sms import bp as sms_bp
    from app.tariffs import bp as tariffs_bp
    from app.tenants import bp as tenants_bp
    from app.web import register_web

    register_web(app)
    app.register_blueprint(auth_bp)
    app.register_blueprint(console_bp)
    app.register_blueprint(api_bp, url_prefix="/api/v1")
    app.register_blueprint(operations_bp)
    app.register_blueprint(sms_bp)
    app.register_blueprint(excel_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(overview_bp)
    app.register_blueprint(accounts_bp)
    app.register_blueprint(tariffs_bp)
    app.register_blueprint(readings_bp)
    app.register_blueprint(sites_bp)
    app.register_blueprint(gateways_bp)
    app.register_blueprint(meters_bp)
    app.register_blueprint(tenants_bp)
    app.register_blueprint(agreements_bp)
    app.jinja_env.globals["review_count"] = review_count

    @app.get("/healthz")
    def healthz():
        """No login, no data: status words and ages (see app.ops.health)."""
        from app.ops.health import health_report

        body, status = health_report(app.config)
        return body, status, {"Cache-Control": "no-store"}

    return app
