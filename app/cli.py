"""The ``meterdesk`` command."""

from __future__ import annotations

import csv
import getpass
import sys

import click
from flask.cli import AppGroup, FlaskGroup

from app.db import db


def _make_app():
    from app import create_app

    return create_app()


cli = FlaskGroup(create_app=_make_app, add_default_commands=True,
                 help="meterdesk: prepaid electricity and water management.")

db_cli = AppGroup("db", help="Database schema.")
user_cli = AppGroup("user", help="Staff users.")
token_cli = AppGroup("token", help="API tokens.")
demo_cli = AppGroup("demo", help="Demo data.")
ledger_cli = AppGroup("ledger", help="The money ledger.")
readings_cli = AppGroup("readings", help="Meter readings.")


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations."""
    from app.schema import upgrade

    with db.connection_context():
        applied = upgrade()
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
@click.option("--role", type=click.Choice(["admin", "manager", "cashier", "electrician", "viewer"]),
              default="admin", show_default=True)
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
@click.option("--role", type=click.Choice(["admin", "manager", "cashier", "electrician", "viewer"]),
              required=True)
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
    click.echo(f"{report.accounts} ledger accounts, {report.entries} entries: "
               + ("OK" if report.ok else f"{len(report.problems)} problems"))
    if not report.ok:
        sys.exit(1)


@readings_cli.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--batch", default=5000, show_default=True)
def readings_import(path: str, batch: int) -> None:
    """Import readings from CSV: serial,read_at,total[,t1,t2,t3,t4] (header row required;
    read_at ISO-8601, UTC unless it carries an offset; registers as raw integers)."""
    from app.domain.actors import SYSTEM
    from app.domain.errors import DomainError
    from app.db import write_tx
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
                def reg(name: str) -> int | None:
                    value = (row.get(name) or "").strip()
                    return int(value) if value else None

                total = reg("total")
                if total is None:
                    raise ValueError("total is empty")
                items.append(ReadingIn(serial=row["serial"].strip(), read_at=row["read_at"], total=total,
                                       t1=reg("t1"), t2=reg("t2"), t3=reg("t3"), t4=reg("t4"), source="csv"))
            except ValueError as exc:
                raise click.ClickException(f"line {line}: {exc}; nothing was imported") from None
    counts: dict[str, int] = {}
    now = utcnow()
    try:
        validate(items, now)
    except DomainError as exc:
        index = int((exc.field or "readings.0").split(".")[1])
        raise click.ClickException(f"line {index + 2}: {exc.message}; nothing was imported") from None
    try:
        with db.connection_context(), write_tx():
            for i in range(0, len(items), batch):
                for res in apply_readings(items[i : i + batch], actor=SYSTEM, now=now):
                    key = "duplicate" if res.duplicate else res.status
                    counts[key] = counts.get(key, 0) + 1
    except DomainError as exc:
        raise click.ClickException(f"{exc.message}; nothing was imported") from None
    click.echo(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "no readings")


for group in (db_cli, user_cli, token_cli, demo_cli, ledger_cli, readings_cli):
    cli.add_command(group)


def main() -> None:
    cli.main(prog_name="meterdesk")


if __name__ == "__main__":
    main()

