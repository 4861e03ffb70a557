"""``meterdesk check``: what is wrong with this box's setup, in plain words.

Each check gives findings at one of three levels: ``ok``, ``note`` (worth knowing, not
wrong) and ``problem`` (something a site must fix; the command exits non-zero).  The checks
read the configuration themselves, so that a broken ``config.toml`` is reported rather than
crashing the command.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import tomllib
import zoneinfo
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app import clock
from app.config import DEFAULT_CONFIG_FILE, DEFAULTS, load_config

OK, NOTE, PROBLEM = "ok", "note", "problem"
ROOT = Path(__file__).resolve().parent.parent.parent
APP_DIR = ROOT / "app"
# Keys other parts of meterdesk read besides app.config.DEFAULTS (a typo is only a note).
KNOWN_KEYS = set(DEFAULTS) | {
    "BACKUP_DIR",
    "BACKUP_KEEP",
    "POLL_INTERVALS",
    "SECRET_KEY",
    "WEB_WORKERS",
    "WEB_THREADS",
}
# How far the clock may be behind the newest stored record before it counts as wrong.
CLOCK_TOLERANCE = dt.timedelta(minutes=5)
BACKUP_MAX_AGE = dt.timedelta(hours=48)


@dataclass
class Finding:
    level: str  # ok | note | problem
    topic: str
    message: str


def run_checks(
    *,
    config_file: str | None = None,
    environ: Mapping[str, str] | None = None,
    now: dt.datetime | None = None,
) -> list[Finding]:
    """Every check, in the order a person would fix things."""
    environ = os.environ if environ is None else environ
    path = config_file or environ.get("MD_CONFIG_FILE") or DEFAULT_CONFIG_FILE
    findings = list(check_config_file(path))
    try:
        config = load_config(config_file=path, environ=environ)
    except (tomllib.TOMLDecodeError, OSError, ValueError) as exc:
        if not has_problems(findings):  # else check_config_file said why already
            findings.append(Finding(PROBLEM, "config", f"{path} cannot be read: {exc}"))
        return findings
    now = now or clock.utcnow()
    for check in (
        check_state_dir,
        check_secret_key,
        check_listen,
        check_timezone,
        check_translations,
        check_assets,
        check_queue,
    ):
        findings.extend(_guard(check, config))
    findings.extend(_guard(lambda c: check_database(c, now), config))
    findings.extend(_guard(lambda c: check_backups(c, now), config))
    findings.extend(_guard(check_ntp, config))
    return findings


def _guard(
    check: Callable[[dict[str, Any]], Iterable[Finding]], config: dict[str, Any]
) -> list[Finding]:
    """Run one check; an unexpected error becomes a problem instead of a traceback."""
    try:
        return list(check(config))
    except Exception as exc:  # noqa: BLE001 - reported to the person
        name = getattr(check, "__name__", "check").removeprefix("check_")
        return [Finding(PROBLEM, name, f"the check failed: {type(exc).__name__}: {exc}")]


def _mode(path: Path) -> str:
    return oct(path.stat().st_mode & 0o777)[2:].zfill(4)


def check_config_file(path: str) -> Iterable[Finding]:
    p = Path(path)
    if not p.exists():
        yield Finding(
            NOTE, "config", f"{p} does not exist: built-in defaults and MD_* variables apply"
        )
        return
    try:
        with open(p, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        yield Finding(PROBLEM, "config", f"{p} is not valid TOML: {exc}")
        return
    except OSError as exc:
        yield Finding(PROBLEM, "config", f"{p} cannot be read: {exc.strerror}")
        return
    unknown = sorted(k for k in data if k.upper() not in KNOWN_KEYS)
    if unknown:
        yield Finding(NOTE, "config", f"{p}: unknown key(s) {', '.join(unknown)} (a typo?)")
    secret_bearing = any(
        "@" in str(data.get(k, "")) and ":" in str(data.get(k, "")).split("@")[0]
        for k in ("database_url", "redis_url", "DATABASE_URL", "REDIS_URL")
    )
    if p.stat().st_mode & 0o004 and (secret_bearing or "secret_key" in {k.lower() for k in data}):
        yield Finding(
            PROBLEM,
            "config",
            f"{p} holds a password and every user can read it (mode {_mode(p)}): chmod 640 {p}",
        )
    else:
        yield Finding(OK, "config", f"{p}")


def check_state_dir(config: dict[str, Any]) -> Iterable[Finding]:
    state = Path(config["STATE_DIR"])
    if not state.is_absolute():
        yield Finding(
            NOTE,
            "state",
            f"state_dir {state} is relative (to {Path.cwd()}); "
            "an installed box uses an absolute path such as /var/lib/meterdesk",
        )
    if not state.is_dir():
        yield Finding(PROBLEM, "state", f"the state directory {state} does not exist")
        return
    if not os.access(state, os.W_OK | os.X_OK):
        yield Finding(PROBLEM, "state", f"{state} is not writable by this user")
    if state.stat().st_mode & 0o007:
        yield Finding(
            PROBLEM,
            "state",
            f"other users can enter {state} (mode {_mode(state)}): chmod 750 {state}",
        )
    else:
        yield Finding(OK, "state", f"{state} (mode {_mode(state)})")


def check_secret_key(config: dict[str, Any]) -> Iterable[Finding]:
    state = Path(config["STATE_DIR"])
    key = state / "secret_key"
    if not key.exists():
        if config.get("SECRET_KEY"):
            yield Finding(OK, "secret key", "set in the configuration")
        else:
            yield Finding(
                NOTE, "secret key", f"{key} does not exist yet; it is created on first start"
            )
        return
    st = key.stat()
    if st.st_mode & 0o077:
        yield Finding(
            PROBLEM,
            "secret key",
            f"{key} is readable by others (mode {_mode(key)}): chmod 600 {key}",
        )
    elif state.is_dir() and st.st_uid != state.stat().st_uid:
        yield Finding(
            PROBLEM,
            "secret key",
            f"{key} belongs to uid {st.st_uid}, not to the owner "
            f"of {state} (uid {state.stat().st_uid}); the service may not read it: "
            f"chown --reference={state} {key}",
        )
    elif len(key.read_text().strip()) < 32:
        yield Finding(
            PROBLEM,
            "secret key",
            f"{key} is too short; delete it to have a new one made "
            "(everyone will have to sign in again)",
        )
    else:
        yield Finding(OK, "secret key", f"{key} (mode {_mode(key)})")


def check_listen(config: dict[str, Any]) -> Iterable[Finding]:
    listen = str(config.get("LISTEN", ""))
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        yield Finding(
            PROBLEM, "listen", f"listen = {listen!r} is not HOST:PORT (e.g. 0.0.0.0:8000)"
        )
    elif host in ("127.0.0.1", "localhost", "[::1]"):
        yield Finding(NOTE, "listen", f"{listen}: the console is reachable from this machine only")
    else:
        yield Finding(OK, "listen", listen)


def check_timezone(config: dict[str, Any]) -> Iterable[Finding]:
    name = str(config.get("TIMEZONE", ""))
    try:
        zone = zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        yield Finding(
            PROBLEM,
            "time zone",
            f"timezone = {name!r} is not a known time zone "
            "(e.g. Asia/Shanghai); is the tzdata package installed?",
        )
        return
    local = clock.local(clock.utcnow(), zone).strftime("%Y-%m-%d %H:%M %Z")
    yield Finding(OK, "time zone", f"{name} (local time {local})")


def check_ntp(config: dict[str, Any]) -> Iterable[Finding]:
    tool = shutil.which("timedatectl")
    if tool is None:
        return
    try:
        out = subprocess.run(
            [tool, "show", "-p", "NTPSynchronized", "--value"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return
    if out.returncode == 0 and out.stdout.strip() == "no":
        yield Finding(
            NOTE,
            "clock",
            "the system clock is not synchronised (NTP); meters are set "
            "from this clock every night: point systemd-timesyncd at a LAN time server",
        )


def check_translations(config: dict[str, Any]) -> Iterable[Finding]:
    base = APP_DIR / "translations"
    catalogues = sorted(base.glob("*/LC_MESSAGES/messages.po"))
    stale = []
    for po in catalogues:
        mo = po.with_suffix(".mo")
        if not mo.exists() or mo.stat().st_mtime < po.stat().st_mtime:
            stale.append(po.parent.parent.name)
    if stale:
        yield Finding(
            PROBLEM,
            "translations",
            f"not compiled (or older than the .po): {', '.join(stale)}; "
            f"run: pybabel compile -d {base}",
        )
    else:
        yield Finding(OK, "translations", f"{len(catalogues)} catalogue(s) compiled")


def check_assets(config: dict[str, Any]) -> Iterable[Finding]:
    vendor = APP_DIR / "static" / "vendor" / "htmx.min.js"
    if vendor.exists():
        yield Finding(OK, "assets", "browser assets built")
    else:
        yield Finding(PROBLEM, "assets", f"{vendor} is missing: run packaging/assets/build.sh")


def check_queue(config: dict[str, Any]) -> Iterable[Finding]:
    from app.ops.health import queue_status
    from workers.queue import make_huey

    queue = make_huey({**config, "HUEY_IMMEDIATE": False})
    where = config.get("REDIS_URL") or os.path.join(config["STATE_DIR"], "huey.db")
    state = queue_status(queue)
    if state == "ok":
        yield Finding(OK, "queue", f"task queue reachable ({hide_password(str(where))})")
    else:
        yield Finding(PROBLEM, "queue", f"task queue {hide_password(str(where))}: {state}")


def hide_password(url: str) -> str:
    """A URL fit to print: ``mysql://user:***@host/db``."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        if ":" in creds:
            return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return url


def check_database(config: dict[str, Any], now: dt.datetime) -> Iterable[Finding]:
    from app.db import db, init_db
    from app.ops.backup import close_database

    url = str(config["DATABASE_URL"])
    shown = hide_password(url)
    try:
        database = init_db(url)
        database.connect(reuse_if_open=True)
    except Exception as exc:  # noqa: BLE001 - any driver error means unreachable
        yield Finding(PROBLEM, "database", f"{shown} is not reachable: {exc}")
        return
    try:
        schema = _schema_findings(shown)
        yield from schema
        if has_problems(schema):
            return
        yield from _clock_findings(now)
        yield from _sms_findings()
    finally:
        close_database(db.obj)


def _schema_findings(shown: str) -> list[Finding]:
    from app.schema import runner

    rows = runner().status()
    unknown = [m.name for m in rows if m.applied and m.path is None]
    pending = [m.name for m in rows if not m.applied]
    if not any(m.applied for m in rows):
        return [
            Finding(
                PROBLEM, "database", f"{shown} has no meterdesk schema: run meterdesk db upgrade"
            )
        ]
    if unknown:
        return [
            Finding(
                PROBLEM,
                "database",
                f"{shown} was migrated by a newer meterdesk "
                f"({', '.join(unknown)}): install that version",
            )
        ]
    if pending:
        return [
            Finding(
                PROBLEM,
                "database",
                f"{len(pending)} migration(s) pending "
                f"({', '.join(pending)}): run meterdesk db upgrade",
            )
        ]
    return [Finding(OK, "database", f"{shown} reachable, schema up to date ({rows[-1].name})")]


def _clock_findings(now: dt.datetime) -> list[Finding]:
    from peewee import fn

    from app.models import AuditLog, Entry

    newest = max(
        (
            v
            for v in (
                Entry.select(fn.MAX(Entry.created_at)).scalar(),
                AuditLog.select(fn.MAX(AuditLog.at)).scalar(),
            )
            if v is not None
        ),
        default=None,
    )
    if isinstance(newest, str):  # SQLite aggregate results come back as text
        newest = dt.datetime.fromisoformat(newest)
    if newest is not None and now < newest - CLOCK_TOLERANCE:
        behind = newest - now
        return [
            Finding(
                PROBLEM,
                "clock",
                f"the clock ({now:%Y-%m-%d %H:%M} UTC) is {behind} behind "
                "the newest stored record: set the time (and NTP) before selling or reading",
            )
        ]
    return [Finding(OK, "clock", f"{now:%Y-%m-%d %H:%M:%S} UTC")]


def _sms_findings() -> list[Finding]:
    from app.models import Property

    try:
        from app.models.sms import SmsSettings
    except ImportError:
        return [Finding(NOTE, "sms", "this version has no SMS settings")]
    properties = list(Property.select().order_by(Property.code))
    if not properties:
        return [Finding(NOTE, "sms", "no property set up yet")]
    settings = {s.property_id: s for s in SmsSettings.select()}  # type: ignore[attr-defined]
    findings = []
    for prop in properties:
        s = settings.get(prop.id)  # type: ignore[attr-defined]
        sender = getattr(s, "sender", "none") if s is not None else "none"
        if sender == "none":
            findings.append(
                Finding(
                    PROBLEM,
                    "sms",
                    f"property {prop.code}: SMS is not configured, so "
                    "tenants get no low-balance or arrears warnings (console: SMS settings)",
                )
            )
        elif sender == "twilio":
            missing = [
                label
                for attr, label in (
                    ("twilio_account_sid", "account SID"),
                    ("twilio_auth_token", "auth token"),
                    ("twilio_from", "sender number"),
                )
                if not getattr(s, attr, "")
            ]
            if missing:
                findings.append(
                    Finding(
                        PROBLEM, "sms", f"property {prop.code}: Twilio {', '.join(missing)} missing"
                    )
                )
            else:
                findings.append(Finding(OK, "sms", f"property {prop.code}: Twilio"))
        elif sender == "modem":
            port = getattr(s, "modem_port", "")
            if not port:
                findings.append(Finding(PROBLEM, "sms", f"property {prop.code}: no modem port set"))
            elif port.startswith("/dev/") and not Path(port).exists():
                findings.append(
                    Finding(PROBLEM, "sms", f"property {prop.code}: modem {port} is not present")
                )
            else:
                findings.append(Finding(OK, "sms", f"property {prop.code}: modem {port}"))
        else:
            findings.append(Finding(NOTE, "sms", f"property {prop.code}: sender {sender!r}"))
    return findings


def check_backups(config: dict[str, Any], now: dt.datetime) -> Iterable[Finding]:
    from app.ops.backup import backup_dir, list_backups, sqlite_path

    if sqlite_path(str(config["DATABASE_URL"])) is None and not (
        shutil.which("mysqldump") or shutil.which("mariadb-dump")
    ):
        yield Finding(
            PROBLEM,
            "backup",
            "MariaDB/MySQL site without the mysqldump client: the "
            "nightly backup cannot run (apt-get install mariadb-client)",
        )
        return
    directory = backup_dir(config)
    found = list_backups(directory)
    if not found:
        yield Finding(
            NOTE,
            "backup",
            f"no backup in {directory} yet (the worker makes one every night; "
            "meterdesk backup now makes one at once)",
        )
        return
    newest = found[0]
    made = dt.datetime.fromtimestamp(newest.stat().st_mtime, dt.UTC).replace(tzinfo=None)
    age = now - made
    if age > BACKUP_MAX_AGE:
        yield Finding(
            PROBLEM,
            "backup",
            f"the newest backup {newest.name} is {age.days} day(s) old: "
            "is the worker running? (systemctl status meterdesk-worker)",
        )
    else:
        when = clock.local(made, config.get("TIMEZONE")).strftime("%Y-%m-%d %H:%M %z")
        yield Finding(OK, "backup", f"{len(found)} backup(s), newest {newest.name} ({when})")


def has_problems(findings: Iterable[Finding]) -> bool:
    return any(f.level == PROBLEM for f in findings)
