"""The ``meterdesk`` command."""

from __future__ import annotations

import csv
import getpass
import sys

import click
from flask.cli import AppGroup, FlaskGroup

from app import clock
from app.db import db


def _make_app():
    from app import create_app

    return create_app()


cli = FlaskGroup(
    create_app=_make_app,
    add_default_commands=True,
    help="meterdesk: prepaid electricity and water management.",
)

db_cli = AppGroup("db", help="Database schema.")
user_cli = AppGroup("user", help="Staff users.")
token_cli = AppGroup("token", help="API tokens.")
demo_cli = AppGroup("demo", help="Demo data.")
ledger_cli = AppGroup("ledger", help="The money ledger.")
readings_cli = AppGroup("readings", help="Meter readings.")
rollups_cli = AppGroup("rollups", help="Daily usage rollups.")


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations."""
    from app.schema import upgrade

    try:
        with db.connection_context():
            applied = upgrade()
    except Exception as exc:  # noqa: BLE001 - the traceback for support, then one clear line
        import traceback

        from app.schema import status

        traceback.print_exc()
        try:
            with db.connection_context():
                done = [name for name, state in status() if state != "pending"]
        except Exception:  # noqa: BLE001
            done = []
        raise click.ClickException(
            f"migration failed ({type(exc).__name__}: {exc}); applied so far: "
            f"{', '.join(done) or 'none'}. A failed migration may leave partial changes: "
            "restore the backup taken before the upgrade (packaging/upgrade.sh does this)"
        ) from None
    click.echo("applied: " + ", ".join(applied) if applied else "database is up to date")


@db_cli.command("status")
def db_status() -> None:
    """List migrations and whether they are applied; exit 1 if any is pending."""
    from app.schema import status

    with db.connection_context():
        rows = status()
    for name, state in rows:
        click.echo(f"{name}\t{state}")
    if any(state == "pending" for _, state in rows):
        sys.exit(1)


@user_cli.command("create")
@click.argument("username")
@click.option(
    "--role",
    type=click.Choice(["admin", "manager", "cashier", "electrician", "viewer"]),
    default="admin",
    show_default=True,
)
@click.option("--password", envvar="MD_NEW_PASSWORD", help="Prompted for when not given.")
@click.option("--full-name", default="")
def user_create(username: str, role: str, password: str | None, full_name: str) -> None:
    """Create a staff user."""
    from app.domain.actors import SYSTEM
    from app.domain.errors import DomainError
    from app.domain.users import create_user
    from app.models import utcnow

    if not password:
        password = getpass.getpass("password: ")
    try:
        with db.connection_context():
            create_user(username, password, role, full_name=full_name, actor=SYSTEM, now=utcnow())
    except DomainError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"created {role} '{username}'")


@token_cli.command("create")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(["admin", "manager", "cashier", "electrician", "viewer"]),
    required=True,
)
def token_create(name: str, role: str) -> None:
    """Create an API token; the secret is printed once."""
    from app.domain.actors import SYSTEM
    from app.domain.users import create_api_token
    from app.models import utcnow

    with db.connection_context():
        _, secret = create_api_token(name, role, actor=SYSTEM, now=utcnow())
    click.echo(secret)


@demo_cli.command("load")
@click.option("--admin-password-file", default=None, help="Where the demo admin password is kept.")
def demo_load(admin_password_file: str | None) -> None:
    """Load the demo mall (safe to run again: existing data is kept)."""
    from flask import current_app

    from app.demo import load_demo

    path = admin_password_file or f"{current_app.config['STATE_DIR']}/admin-password"
    with db.connection_context():
        summary = load_demo(password_file=path)
    click.echo(summary)


@ledger_cli.command("verify")
def ledger_verify() -> None:
    """Re-derive every balance from the ledger legs; exit 1 on any difference."""
    from app.domain.ledger import verify_ledger

    with db.connection_context():
        report = verify_ledger()
    for problem in report.problems:
        click.echo(problem, err=True)
    click.echo(
        f"{report.accounts} ledger accounts, {report.entries} entries: "
        + ("OK" if report.ok else f"{len(report.problems)} problems")
    )
    if not report.ok:
        sys.exit(1)


@rollups_cli.command("rebuild")
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="First local day to recompute (YYYY-MM-DD); all days when omitted.",
)
def rollups_rebuild(since) -> None:
    """Recompute the daily usage rollup from the readings."""
    from app.domain.actors import SYSTEM
    from app.domain.usage import rebuild_usage
    from app.models import utcnow

    with db.connection_context():
        rows = rebuild_usage(since=since.date() if since else None, actor=SYSTEM, now=utcnow())
    click.echo(f"{rows} daily usage rows written" + (f" from {since:%Y-%m-%d}" if since else ""))


@readings_cli.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--batch", default=5000, show_default=True)
def readings_import(path: str, batch: int) -> None:
    """Import readings from CSV: serial,read_at,total[,t1,t2,t3,t4] (header row required;
    read_at ISO-8601, UTC unless it carries an offset; registers as raw integers)."""
    from app.db import write_tx
    from app.domain.actors import SYSTEM
    from app.domain.errors import DomainError
    from app.domain.readings import ReadingIn, apply_readings, validate
    from app.models import utcnow

    items: list[ReadingIn] = []
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = {"serial", "read_at", "total"} - set(reader.fieldnames or [])
        if missing:
            raise click.ClickException(f"the CSV lacks column(s): {', '.join(sorted(missing))}")
        for line, row in enumerate(reader, start=2):
            try:

                def reg(name: str, row: dict = row) -> int | None:
                    value = (row.get(name) or "").strip()
                    return int(value) if value else None

                total = reg("total")
                if total is None:
                    raise ValueError("total is empty")
                items.append(
                    ReadingIn(
                        serial=row["serial"].strip(),
                        read_at=row["read_at"],
                        total=total,
                        t1=reg("t1"),
                        t2=reg("t2"),
                        t3=reg("t3"),
                        t4=reg("t4"),
                        source="csv",
                    )
                )
            except ValueError as exc:
                raise click.ClickException(f"line {line}: {exc}; nothing was imported") from None
    counts: dict[str, int] = {}
    now = utcnow()
    try:
        validate(items, now)
    except DomainError as exc:
        index = int((exc.field or "readings.0").split(".")[1])
        raise click.ClickException(
            f"line {index + 2}: {exc.message}; nothing was imported"
        ) from None
    try:
        with db.connection_context(), write_tx():
            for i in range(0, len(items), batch):
                for res in apply_readings(items[i : i + batch], actor=SYSTEM, now=now):
                    key = "duplicate" if res.duplicate else res.status
                    counts[key] = counts.get(key, 0) + 1
    except DomainError as exc:
        raise click.ClickException(f"{exc.message}; nothing was imported") from None
    click.echo(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "no readings")


@cli.command("simulate")
@click.option(
    "--site",
    "site_file",
    type=click.Path(exists=True, dir_okay=False),
    help="Site description (TOML); without it the gateways and meters in the database.",
)
@click.option("--speed", default=1.0, show_default=True, help="Simulated seconds per real second.")
def simulate(site_file: str | None, speed: float) -> None:
    """Run a simulated site: virtual RS-485 gateways on 127.0.0.1 with virtual meters."""
    import asyncio

    from app.sim.meters import monotonic_clock, wall_clock
    from app.sim.site import build_site, describe_database_site, load_site_file, serve

    if site_file:
        description = load_site_file(site_file)
    else:
        with db.connection_context():
            description = describe_database_site()
    if not description.get("gateway"):
        raise click.ClickException("the site has no gateways")
    clock = monotonic_clock(wall_clock(), speed)
    try:
        asyncio.run(serve(build_site(description, clock=clock)))
    except KeyboardInterrupt:
        pass


PROBE_PROTOCOLS = ["dlt645-2007", "dlt645-1997", "cjt188", "modbus-rtu-tcp", "modbus-tcp"]


def _decimal(value: int | None, places: int) -> str | None:
    """An integer in 10^-places units as a decimal string (no float on the way)."""
    if value is None:
        return None
    sign = "-" if value < 0 else ""
    value = abs(value)
    if places == 0:
        return f"{sign}{value}"
    return f"{sign}{value // 10**places}.{value % 10**places:0{places}d}"


def probe_report(reading, kind: str) -> dict:
    """A driver reading as the documented probe JSON: decimal strings, units in the keys."""
    out: dict = {}
    if kind == "water":
        out["total_m3"] = _decimal(reading.total, 3)
    else:
        out["total_kwh"] = _decimal(reading.total, 2)
        for name, rate in (("t1", "sharp"), ("t2", "peak"), ("t3", "flat"), ("t4", "valley")):
            value = getattr(reading, name)
            if value is not None:
                out[f"{name}_{rate}_kwh"] = _decimal(value, 2)
    if reading.voltage_dv is not None:
        out["voltage_v"] = _decimal(reading.voltage_dv, 1)
    if reading.current_ma is not None:
        out["current_a"] = _decimal(reading.current_ma, 3)
    if reading.power_w is not None:
        out["power_kw"] = _decimal(reading.power_w, 3)
    if reading.balance_fen is not None:
        out["balance_yuan"] = _decimal(reading.balance_fen, 2)
    if reading.purchase_count is not None:
        out["purchase_count"] = reading.purchase_count
    if reading.supply is not None:
        out["valve" if kind == "water" else "relay"] = (
            ("open" if reading.supply == "on" else "closed") if kind == "water" else reading.supply
        )
    if reading.keep_power is not None:
        out["keep_power"] = reading.keep_power
    if reading.meter_time is not None:
        out["meter_time"] = reading.meter_time.isoformat()
    return out


@cli.command("probe")
@click.option("--protocol", type=click.Choice(PROBE_PROTOCOLS), required=True)
@click.option("--host", required=True)
@click.option("--port", type=int, required=True)
@click.option(
    "--address", required=True, help="Meter address (DL/T 645: 12 digits; CJ/T 188: 14; Modbus: id)"
)
@click.option("--profile", default="", help="Modbus register map name")
@click.option("--kind", type=click.Choice(["electricity", "water"]), default=None)
@click.option("--timeout", default=2.0, show_default=True)
@click.option("--trip", "action", flag_value="trip", help="Open the relay (cut supply), confirmed.")
@click.option(
    "--close", "action", flag_value="close", help="Close the relay (restore supply), confirmed."
)
@click.option("--keep-power", "action", flag_value="keep_power", help="Keep power on (保电).")
@click.option("--valve-open", "action", flag_value="valve_open")
@click.option("--valve-close", "action", flag_value="valve_close")
def probe(
    protocol: str,
    host: str,
    port: int,
    address: str,
    profile: str,
    kind: str | None,
    timeout: float,
    action: str | None,
) -> None:
    """Read one meter through a TCP gateway and print everything it said as one JSON object;
    optionally send one confirmed command."""
    import asyncio
    import datetime as dt
    import json

    from app.devices.drivers.base import MeterRef, NoAnswer, Refused
    from app.models import Gateway
    from workers.collector import make_driver

    kind = kind or ("water" if protocol == "cjt188" else "electricity")
    gateway = Gateway(
        id=0, host=host, port=port, transport="modbus-tcp" if protocol == "modbus-tcp" else "serial"
    )
    ref = MeterRef(address=address, protocol=protocol, kind=kind, profile=profile)

    async def main() -> dict:
        links: dict = {}
        driver = make_driver(gateway, protocol, links, timeout=timeout)
        try:
            result: dict = {"protocol": protocol, "address": address}
            if action:
                # the meter's clock keeps local time (the box's zone: a probe has no property)
                until = clock.local_naive(clock.utcnow()) + dt.timedelta(days=3650)
                if action == "keep_power":
                    await driver.keep_power(ref, True, valid_until=until)
                    result["command"] = {"keep_power": "acknowledged"}
                else:
                    on = action in ("close", "valve_open")
                    await driver.set_supply(ref, on, valid_until=until)
                    state = await driver.read_supply(ref)
                    if state != ("on" if on else "off"):
                        raise Refused(f"the meter reports supply {state} after the command")
                    result["command"] = {action: "confirmed"}
            try:
                reading = await driver.read(ref)
            except NoAnswer:
                if protocol != "dlt645-2007" or action:
                    raise
                # Older meters speak DL/T 645-1997 only: try it before giving up.
                old = MeterRef(address=address, protocol="dlt645-1997", kind=kind)
                reading = await make_driver(gateway, "dlt645-1997", links, timeout=timeout).read(
                    old
                )
                result.update({"protocol": "dlt645-1997", "detected": True})
            result.update(probe_report(reading, kind))
            return result
        finally:
            for link in links.values():
                closer = getattr(link, "close", None)
                if closer is not None:
                    maybe = closer()
                    if asyncio.iscoroutine(maybe):
                        await maybe

    try:
        click.echo(json.dumps(asyncio.run(main()), ensure_ascii=False))
    except NoAnswer:
        raise click.ClickException(
            f"no answer from meter {address} via {host}:{port} ({protocol})"
        ) from None
    except Refused as exc:
        raise click.ClickException(f"meter {address} refused: {exc}") from None
    except (ConnectionError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None


@cli.command("collect")
@click.option("--loop", "forever", is_flag=True, help="Keep polling (every --every seconds).")
@click.option("--every", default=10.0, show_default=True)
@click.option("--all", "force", is_flag=True, help="Read every meter now, due or not.")
def collect(forever: bool, every: float, force: bool) -> None:
    """Poll the gateways once (or in a loop) and carry out pending meter commands."""
    import asyncio
    import time

    from workers.collector import Collector

    async def main() -> None:
        collector = Collector()
        try:
            while True:
                started = time.monotonic()
                report = await collector.run_cycle(force=force)
                click.echo(
                    f"{report.gateways} gateways, {report.meters_read} read, {report.missed} missed, "
                    f"{report.commands_confirmed}/{report.commands_sent} commands confirmed, "
                    f"{report.seconds:.1f} s"
                )
                if not forever:
                    return
                await asyncio.sleep(max(every - (time.monotonic() - started), 0.5))
        finally:
            await collector.close()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass


@cli.command("mqtt")
@click.option("--host", default="127.0.0.1", show_default=True, envvar="MD_MQTT_HOST")
@click.option("--port", default=1883, show_default=True, envvar="MD_MQTT_PORT")
@click.option(
    "--topic",
    "topics",
    multiple=True,
    help="Subscription filter, repeatable (default: the topics of every adapter).",
)
@click.option(
    "--client-id",
    default="meterdesk-ingest",
    show_default=True,
    envvar="MD_MQTT_CLIENT_ID",
    help="Fixed and unique per ingestor: the broker keeps the session under it.",
)
@click.option("--username", default=None, envvar="MD_MQTT_USERNAME")
@click.option("--password", default=None, envvar="MD_MQTT_PASSWORD")
@click.option("--batch-size", default=500, show_default=True)
@click.option("--flush-interval", default=1.0, show_default=True)
def mqtt_ingest(
    host: str,
    port: int,
    topics: tuple[str, ...],
    client_id: str,
    username: str | None,
    password: str | None,
    batch_size: int,
    flush_interval: float,
) -> None:
    """Store meter readings pushed over MQTT (docs/mqtt.md) until SIGTERM."""
    import logging

    from app.devices.mqtt import DEFAULT_TOPICS, MqttIngestor

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    MqttIngestor(
        host,
        port,
        topics or DEFAULT_TOPICS,
        client_id=client_id,
        batch_size=batch_size,
        flush_interval=flush_interval,
        username=username,
        password=password,
    ).run_forever()


# -- operations: backups, checks, health, the worker, moving databases -------------------------

backup_cli = AppGroup("backup", help="Database backups (SQLite online copy; mysqldump on MariaDB).")
config_cli = AppGroup("config", help="The effective configuration.")


def _size(n: int) -> str:
    """A byte count for people: 812 B, 3.4 MiB."""
    value = float(n)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


@backup_cli.command("now")
@click.option("--label", default="", help="Added to the file name, e.g. pre-upgrade.")
@click.option("--print-path", is_flag=True, help="Print only the new file's path (for scripts).")
def backup_now_command(label: str, print_path: bool) -> None:
    """Back up the database now (online: meterdesk keeps running) and apply the retention."""
    from flask import current_app

    from app.ops.backup import BackupError, backup_now

    try:
        result = backup_now(current_app.config, label=label)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    if print_path:
        click.echo(str(result.path))
        return
    click.echo(
        f"backup {result.path} ({_size(result.size)}, {result.kind}, {result.seconds:.1f} s)"
    )
    for old in result.removed:
        click.echo(f"removed old backup {old.name}")


@backup_cli.command("list")
def backup_list_command() -> None:
    """List the backups, newest first."""
    import datetime as dt

    from flask import current_app

    from app.ops.backup import backup_dir, list_backups

    directory = backup_dir(current_app.config)
    found = list_backups(directory)
    if not found:
        click.echo(f"no backups in {directory}")
    for path in found:
        st = path.stat()
        when = clock.local(dt.datetime.fromtimestamp(st.st_mtime, dt.UTC)).strftime(
            "%Y-%m-%d %H:%M %z"
        )
        click.echo(f"{when}  {_size(st.st_size):>10}  {path}")


@backup_cli.command("restore")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--force", is_flag=True, help="Restore even though meterdesk seems to be running.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def backup_restore_command(file: str, force: bool, yes: bool) -> None:
    """Replace the database with a backup.  Stop meterdesk first; the backup is verified
    (integrity, ledger) before anything is replaced, and the replaced database is kept."""
    from pathlib import Path

    from flask import current_app

    from app.ops.backup import BackupError, restore, sqlite_path

    live = sqlite_path(str(current_app.config["DATABASE_URL"])) or "the MariaDB/MySQL database"
    if not yes:
        click.confirm(f"Replace {live} with {file}?", abort=True)
    try:
        result = restore(current_app.config, Path(file), force=force, echo=click.echo)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"restored {file} into {result.database}: ledger OK ({result.ledger_accounts} accounts, "
        f"{result.ledger_entries} entries), {sum(result.rows.values())} rows"
    )
    if result.previous:
        click.echo(f"the replaced database is kept as {result.previous}")
    click.echo("start meterdesk again: systemctl start meterdesk-web meterdesk-worker")


@db_cli.command("check")
def db_check() -> None:
    """Exit 0 when the database is reachable and fully migrated (the units' start check)."""
    from app.ops.health import database_status

    with db.connection_context():
        state = database_status()
    if state == "ok":
        click.echo("database schema is up to date")
        return
    hints = {
        "migrations pending": "run `meterdesk db upgrade` (packaging/upgrade.sh does this)",
        "newer schema": "the database was migrated by a newer meterdesk: install that version",
        "unreachable": "is the database server running, and is database_url right?",
    }
    raise click.ClickException(f"database: {state}; {hints.get(state, '')}")


@db_cli.command("copy")
@click.option(
    "--to",
    "target",
    required=True,
    metavar="URL",
    help="Target database, e.g. mysql://meterdesk:PASSWORD@127.0.0.1:3306/meterdesk",
)
@click.option("--chunk", default=1000, show_default=True, help="Rows per read.")
@click.option("--force", is_flag=True, help="Copy even though meterdesk seems to be running.")
def db_copy(target: str, chunk: int, force: bool) -> None:
    """Copy every row into an empty database (e.g. SQLite -> MariaDB), then compare row counts
    and verify the ledger on both sides; exit 1 on any difference."""
    from flask import current_app

    from app.ops import runlock
    from app.ops.check import hide_password
    from app.ops.dbcopy import CopyError, copy_database

    busy = runlock.running(current_app.config["STATE_DIR"])
    if busy and not force:
        raise click.ClickException(
            f"meterdesk is running ({runlock.describe(busy)}): rows written during the copy would "
            "be missing from the target. Stop it first (systemctl stop meterdesk-web meterdesk-worker) "
            "or pass --force."
        )
    try:
        with db.connection_context():
            report = copy_database(db.obj, target, chunk=chunk, echo=click.echo)
    except CopyError as exc:
        raise click.ClickException(str(exc)) from None
    for problem in report.source_ledger:
        click.echo(f"source ledger: {problem}", err=True)
    for problem in report.target_ledger:
        click.echo(f"target ledger: {problem}", err=True)
    different = [t.table for t in report.tables if not t.ok]
    click.echo(
        f"{len(report.tables)} tables, {report.rows} rows copied in {report.seconds:.1f} s; "
        f"ledger on the target: {report.ledger_accounts} accounts, {report.ledger_entries} entries, "
        + ("OK" if not report.target_ledger else f"{len(report.target_ledger)} problems")
    )
    if not report.ok:
        raise click.ClickException(
            "the copy differs from the source"
            + (f" (row counts: {', '.join(different)})" if different else "")
            + "; do not switch to the target"
        )
    shown = hide_password(target)
    click.echo(
        f'all row counts equal. To switch: set database_url = "{shown}"'
        + (" (with the real password)" if shown != target else "")
        + " in config.toml and restart meterdesk."
    )


@user_cli.command("list")
def user_list() -> None:
    """List staff users: name, role, whether active."""
    from app.models import User

    with db.connection_context():
        for user in User.select().order_by(User.username):
            state = "active" if getattr(user, "active", True) else "disabled"
            click.echo(f"{user.username}\t{user.role}\t{state}")


@config_cli.command("get", with_appcontext=False)
@click.argument("key")
def config_get(key: str) -> None:
    """Print one effective setting (file, then MD_* environment), e.g. `config get listen`."""
    from app.config import load_config

    config = load_config()
    if key.upper() not in config:
        raise click.ClickException(f"unknown setting {key!r}")
    click.echo(config[key.upper()])


@cli.command("check", with_appcontext=False)
@click.option("--quiet", "-q", is_flag=True, help="Print the problems only.")
def check_command(quiet: bool) -> None:
    """Check the setup: configuration, state directory and secret key, database and migrations,
    queue, translations, assets, clock and time zone, SMS, backups.  Exit 1 on any problem."""
    from app.ops.check import NOTE, PROBLEM, has_problems, run_checks

    findings = run_checks()
    for f in findings:
        if quiet and f.level != PROBLEM:
            continue
        label = {PROBLEM: "PROBLEM", NOTE: "note"}.get(f.level, "ok")
        click.echo(f"{label:<8} {f.topic:<13} {f.message}")
    problems = [f for f in findings if f.level == PROBLEM]
    if has_problems(findings):
        click.echo(f"{len(problems)} problem(s)", err=True)
        sys.exit(1)
    if not quiet:
        click.echo("no problems")


@cli.command("health")
@click.option("--url", default=None, help="Default: /healthz at the configured listen address.")
@click.option("--wait", default=0.0, show_default=True, help="Keep asking this many seconds.")
def health_command(url: str | None, wait: float) -> None:
    """Ask the running console's /healthz; exit 1 unless it answers healthy."""
    import json

    from flask import current_app

    from app.ops.health import health_url, wait_healthy

    try:
        url = url or health_url(current_app.config)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    ok, body = wait_healthy(url, timeout=wait)
    click.echo(json.dumps(body, ensure_ascii=False) if isinstance(body, dict) else f"{url}: {body}")
    if not ok:
        sys.exit(1)


@cli.command("worker")
@click.option("--workers", "-w", default=2, show_default=True, help="Worker threads.")
@click.option(
    "--periodic/--no-periodic",
    default=True,
    show_default=True,
    help="Run the periodic tasks (exactly one consumer per box does).",
)
def worker_command(workers: int, periodic: bool) -> None:
    """Run the task consumer (the meterdesk-worker unit): SIGINT finishes running tasks and stops."""
    from flask import current_app

    from app.ops.worker import WorkerError, run_worker

    try:
        run_worker(current_app.config, workers=workers, periodic=periodic)
    except WorkerError as exc:
        raise click.ClickException(str(exc)) from None


for group in (
    db_cli,
    user_cli,
    token_cli,
    demo_cli,
    ledger_cli,
    readings_cli,
    rollups_cli,
    backup_cli,
    config_cli,
):
    cli.add_command(group)


def main() -> None:
    cli.main(prog_name="meterdesk")


if __name__ == "__main__":
    main()
