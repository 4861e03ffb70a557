"""/healthz: status words and ages only; database, queue and polling; the CLI health probe."""

from __future__ import annotations

import datetime as dt

import pytest
from huey import RedisHuey, SqliteHuey

from app.models import Gateway, Meter, utcnow
from app.ops.health import health_report, health_url, poll_status, queue_status

KEYS = {"status", "database", "queue", "poll", "last_poll_age_seconds"}


def test_healthz_needs_no_login_and_says_nothing_but_status_words(client):
    r = client.get("/healthz")
    assert r.status_code == 200
    assert set(r.json) == KEYS
    assert r.json == {
        "status": "ok",
        "database": "ok",
        "queue": "ok",
        "poll": "none",
        "last_poll_age_seconds": None,
    }
    assert r.headers["Cache-Control"] == "no-store"


def _activate(meter, **fields) -> None:
    Meter.update(status="active", **fields).where(Meter.id == meter.id).execute()


def test_poll_age_comes_from_the_newest_meter_read_or_gateway_answer(app, site):
    acct, (meter,) = site.account()
    now = utcnow()
    _activate(meter)
    assert poll_status(app.config, now) == ("never", None)
    Meter.update(last_seen_at=now - dt.timedelta(seconds=40)).where(Meter.id == meter.id).execute()
    assert poll_status(app.config, now) == ("ok", 40)
    Meter.update(last_seen_at=now - dt.timedelta(hours=2)).where(Meter.id == meter.id).execute()
    assert poll_status(app.config, now) == ("stale", 7200)
    Gateway.create(
        property=site.prop,
        name="gw",
        host="10.0.0.9",
        port=502,
        last_ok_at=now - dt.timedelta(seconds=5),
    )
    assert poll_status(app.config, now) == ("ok", 5)
    # An hourly class tolerates an hour's silence.
    Gateway.update(last_ok_at=None).execute()
    Meter.update(poll_class="public").where(Meter.id == meter.id).execute()
    assert poll_status(app.config, now)[0] == "ok"


def test_stale_polling_degrades_but_does_not_fail_the_health_check(client, site):
    acct, (meter,) = site.account()
    _activate(meter, last_seen_at=utcnow() - dt.timedelta(hours=3))
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json["status"] == "degraded" and r.json["poll"] == "stale"
    assert r.json["last_poll_age_seconds"] >= 3 * 3600


def test_a_pending_migration_fails_the_health_check(app, client):
    from app.db import db

    with db.connection_context():
        row = db.execute_sql(
            "SELECT name, applied FROM schema_migration ORDER BY name DESC LIMIT 1"
        ).fetchone()
        db.execute_sql(f"DELETE FROM schema_migration WHERE name = {db.param}", (row[0],))
    try:
        r = client.get("/healthz")
        assert r.status_code == 503
        assert r.json["status"] == "error" and r.json["database"] == "migrations pending"
        assert "poll" not in r.json
    finally:
        with db.connection_context():
            db.execute_sql(
                f"INSERT INTO schema_migration (name, applied) VALUES ({db.param}, {db.param})", row
            )


def test_an_unreachable_queue_fails_the_health_check(app, client, monkeypatch, tmp_path):
    import workers.queue

    monkeypatch.setattr(workers.queue, "huey", RedisHuey("x", url="redis://127.0.0.1:1/0"))
    r = client.get("/healthz")
    assert r.status_code == 503 and r.json["queue"] == "unreachable" and r.json["database"] == "ok"


def test_queue_status_of_a_sqlite_queue(tmp_path):
    queue = SqliteHuey("t", filename=str(tmp_path / "huey.db"))
    assert queue_status(queue) == "ok"
    (tmp_path / "huey.db").unlink()
    assert queue_status(queue) == "missing"


def test_health_report_without_a_database(app, monkeypatch):
    import app.ops.health as health

    monkeypatch.setattr(health, "database_status", lambda: "unreachable")
    body, status = health_report(app.config)
    assert status == 503 and body["database"] == "unreachable"


@pytest.mark.parametrize(
    "listen, url",
    [
        ("0.0.0.0:8000", "http://127.0.0.1:8000/healthz"),
        ("192.168.1.20:80", "http://192.168.1.20:80/healthz"),
        ("[::]:8080", "http://127.0.0.1:8080/healthz"),
        ("[::1]:8080", "http://[::1]:8080/healthz"),
    ],
)
def test_health_url_follows_the_listen_address(listen, url):
    assert health_url({"LISTEN": listen}) == url


def test_health_command_reports_an_unreachable_console(app):
    from app.cli import health_command

    result = app.test_cli_runner().invoke(health_command, ["--url", "http://127.0.0.1:1/healthz"])
    assert result.exit_code == 1 and "127.0.0.1:1/healthz" in result.output


def test_db_check_passes_on_a_migrated_database_and_explains_a_pending_one(app):
    from app.cli import db_cli
    from app.db import db

    runner = app.test_cli_runner()
    ok = runner.invoke(db_cli, ["check"])
    assert ok.exit_code == 0 and "up to date" in ok.output
    with db.connection_context():
        row = db.execute_sql(
            "SELECT name, applied FROM schema_migration ORDER BY name DESC LIMIT 1"
        ).fetchone()
        db.execute_sql(f"DELETE FROM schema_migration WHERE name = {db.param}", (row[0],))
    try:
        pending = runner.invoke(db_cli, ["check"])
        assert pending.exit_code == 1 and "meterdesk db upgrade" in pending.output
    finally:
        with db.connection_context():
            db.execute_sql(
                f"INSERT INTO schema_migration (name, applied) VALUES ({db.param}, {db.param})", row
            )
