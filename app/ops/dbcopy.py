"""``meterdesk db copy --to URL``: move a site to another database without losing a row.

The usual case is a SQLite site outgrowing one file and moving to MariaDB; any direction
between the supported backends works.  The steps:

1. The target is migrated to this version's schema (a missing MariaDB database is created),
   and must then hold no rows in any meterdesk table; otherwise the copy is refused.
2. Every table in ``MODELS`` (dependency order) is copied in primary-key order, in chunks,
   from one consistent snapshot of the source, through the models' own field conversions;
   then the ``schema_migration`` history with its original dates.
3. Row counts are compared table by table and the ledger is verified on both sides.

A failure part-way empties the target again, so the command can simply be run again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from peewee import Database, MySQLDatabase

from app.ops.backup import close_database

HISTORY_TABLE = "schema_migration"
DEFAULT_CHUNK = 1000
# Bound parameters per statement: SQLite allows 32766 since 3.32, MySQL has no small limit.
MAX_PARAMS = 30000


class CopyError(Exception):
    """The copy could not start or did not complete; the message says what to do."""


@dataclass
class TableCount:
    table: str
    source: int
    target: int
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.source == self.target


@dataclass
class CopyReport:
    tables: list[TableCount] = field(default_factory=list)
    source_ledger: list[str] = field(default_factory=list)
    target_ledger: list[str] = field(default_factory=list)
    ledger_accounts: int = 0
    ledger_entries: int = 0
    skipped: list[str] = field(default_factory=list)  # source tables meterdesk does not know
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return (
            all(t.ok for t in self.tables)
            and not self.source_ledger
            and not self.target_ledger
            and not self.skipped
        )

    @property
    def rows(self) -> int:
        return sum(t.target for t in self.tables)


def _runner(database: Database) -> Any:
    from playhouse.migrations import Runner

    from app.schema import MIGRATIONS_DIR

    return Runner(database, directory=str(MIGRATIONS_DIR), table_name=HISTORY_TABLE)


def open_target(url: str, echo: Callable[[str], None]) -> Database:
    """Connect to the target, creating a missing MariaDB/MySQL database (utf8mb4)."""
    from app.db import make_database

    database = make_database(url)
    try:
        database.connect()
        return database
    except Exception as exc:  # noqa: BLE001 - examined below
        code = exc.args[0] if getattr(exc, "args", None) else None
        if not isinstance(database, MySQLDatabase) or code != 1049:  # 1049: unknown database
            raise CopyError(f"cannot connect to the target: {exc}") from None
    name = urlparse(url).path.lstrip("/")
    server = make_database(url.split("?")[0].rsplit("/", 1)[0] + "/information_schema")
    try:
        with server.connection_context():
            server.execute_sql(
                f"CREATE DATABASE `{name.replace('`', '``')}` CHARACTER SET utf8mb4 "
                "COLLATE utf8mb4_unicode_ci"
            )
    except Exception as exc:  # noqa: BLE001
        raise CopyError(
            f"the target database {name!r} does not exist and cannot be created: {exc}"
        ) from None
    finally:
        close_database(server)
    echo(f"created database {name} (utf8mb4)")
    database.connect()
    return database


def _models() -> list[Any]:
    from app.models import MODELS

    return list(MODELS)


def _prepare_target(source: Database, target: Database, echo: Callable[[str], None]) -> None:
    """Refuse a target with data or another schema history; migrate it to this version."""
    models = _models()
    existing = set(target.get_tables())
    busy = [
        m._meta.table_name
        for m in models
        if m._meta.table_name in existing and m.select().bind(target).limit(1).count(target) > 0
    ]
    others = sorted(
        t
        for t in existing - {m._meta.table_name for m in models} - {HISTORY_TABLE}
        if not t.startswith("sqlite_")
    )
    if busy:
        raise CopyError(
            f"the target is not empty: {', '.join(busy)} hold rows. Copy into an empty "
            "database (drop and re-create it, or name a new one)."
        )
    if others:
        raise CopyError(
            f"the target holds tables meterdesk does not know ({', '.join(others)}); "
            "copy into an empty database"
        )
    src_runner, dst_runner = _runner(source), _runner(target)
    src_status = src_runner.status()
    pending = [m.name for m in src_status if not m.applied]
    unknown = [m.name for m in src_status if m.applied and m.path is None]
    if unknown:
        raise CopyError(
            f"the source was migrated by a newer meterdesk ({', '.join(unknown)}); "
            "run the copy with that version"
        )
    if pending:
        raise CopyError(
            f"the source has pending migrations ({', '.join(pending)}): run "
            "`meterdesk db upgrade` first"
        )
    dst_unknown = [m.name for m in dst_runner.status() if m.applied and m.path is None]
    if dst_unknown:
        raise CopyError(f"the target was migrated by a newer meterdesk ({', '.join(dst_unknown)})")
    applied = dst_runner.up()
    if applied:
        echo(f"target migrated: {', '.join(applied)}")
    else:
        echo("target schema is up to date")


def _quoted(database: Database, name: str) -> str:
    left, right = database.quote[0], database.quote[1]
    return f"{left}{name.replace(right, right * 2)}{right}"


def _same_database(a: Database, b: Database) -> bool:
    if type(a) is not type(b) and not (
        isinstance(a, MySQLDatabase) and isinstance(b, MySQLDatabase)
    ):
        return False
    if isinstance(a, MySQLDatabase):
        ka, kb = a.connect_params, b.connect_params
        return (a.database, ka.get("host"), ka.get("port")) == (
            b.database,
            kb.get("host"),
            kb.get("port"),
        )
    return os.path.realpath(str(a.database)) == os.path.realpath(str(b.database))


def _check_columns(source: Database, target: Database, model: Any) -> list[str]:
    """The model's columns, after checking that both tables have exactly them."""
    table = model._meta.table_name
    columns = [f.column_name for f in model._meta.sorted_fields]
    for side, database in (("source", source), ("target", target)):
        actual = {c.name for c in database.get_columns(table)}
        if actual != set(columns):
            extra, missing = sorted(actual - set(columns)), sorted(set(columns) - actual)
            raise CopyError(
                f"{side} table {table} does not match this version's model "
                f"(extra: {extra or '-'}, missing: {missing or '-'}); nothing copied there"
            )
    return columns


def _copy_table(source: Database, target: Database, model: Any, chunk: int) -> int:
    """Copy one table in primary-key order; return the rows copied."""
    fields = list(model._meta.sorted_fields)
    pk = model._meta.primary_key
    per_insert = max(1, min(chunk, MAX_PARAMS // max(1, len(fields))))
    copied = 0
    base = model.select(*fields).order_by(pk) if pk else model.select(*fields).order_by(*fields)
    last = None
    offset = 0
    with target.atomic():
        while True:
            query = base
            if pk is not None and last is not None:
                query = query.where(pk > last)
            elif pk is None:
                query = query.offset(offset)
            rows = list(query.limit(chunk).tuples().bind(source))
            if not rows:
                break
            for i in range(0, len(rows), per_insert):
                model.insert_many(rows[i : i + per_insert], fields=fields).execute(target)
            copied += len(rows)
            offset += len(rows)
            if pk is not None:
                last = rows[-1][fields.index(pk)]
            if len(rows) < chunk:
                break
    return copied


def _copy_history(source: Database, target: Database) -> TableCount:
    src, dst = _runner(source), _runner(target)
    history = list(
        src.History.select(src.History.name, src.History.applied).order_by(src.History.id).tuples()
    )
    with target.atomic():
        dst.History.delete().execute()
        if history:
            dst.History.insert_many(
                history, fields=[dst.History.name, dst.History.applied]
            ).execute()
    return TableCount(HISTORY_TABLE, len(history), dst.History.select().count())


def _empty_target(target: Database) -> None:
    """Undo a partial copy (best effort): delete the rows in reverse dependency order."""
    for model in reversed(_models()):
        try:
            with target.atomic():
                model.delete().execute(target)
        except Exception:  # noqa: BLE001 - best effort, the error that matters is re-raised
            pass


def _ledger_problems(database: Database) -> tuple[list[str], int, int]:
    from app.domain.ledger import verify_ledger

    with database.bind_ctx(_models()):
        report = verify_ledger()
    return report.problems, report.accounts, report.entries


def copy_database(
    source: Database,
    target_url: str,
    *,
    chunk: int = DEFAULT_CHUNK,
    echo: Callable[[str], None] = print,
) -> CopyReport:
    """Copy everything from ``source`` (connected) into the empty database at ``target_url``."""
    from app.db import make_database

    if chunk < 1:
        raise CopyError("--chunk must be at least 1")
    started = time.monotonic()
    if _same_database(source, make_database(target_url)):
        raise CopyError("the target is the source database")
    target = open_target(target_url, echo)
    report = CopyReport()
    try:
        models = _models()
        known = {m._meta.table_name for m in models} | {HISTORY_TABLE}
        report.skipped = sorted(
            t
            for t in set(source.get_tables()) - known
            if not t.startswith("sqlite_")
            if source.execute_sql(f"SELECT COUNT(*) FROM {_quoted(source, t)}").fetchone()[0] > 0
        )
        if report.skipped:
            raise CopyError(
                f"the source has tables with rows that meterdesk does not know "
                f"({', '.join(report.skipped)}); they would be lost, so nothing was copied"
            )
        _prepare_target(source, target, echo)
        for model in models:
            _check_columns(source, target, model)
        try:
            with source.atomic():  # one consistent snapshot of the source
                for model in models:
                    t0 = time.monotonic()
                    table = model._meta.table_name
                    expected = model.select().count(source)
                    _copy_table(source, target, model, chunk)
                    count = TableCount(
                        table, expected, model.select().count(target), time.monotonic() - t0
                    )
                    report.tables.append(count)
                    echo(
                        f"{table:<28} {count.source:>10} -> {count.target:<10} "
                        f"{'ok' if count.ok else 'DIFFERENT'} ({count.seconds:.1f} s)"
                    )
                report.tables.append(_copy_history(source, target))
                report.source_ledger, _, _ = _ledger_problems(source)
        except CopyError:
            _empty_target(target)
            raise
        except Exception as exc:  # noqa: BLE001 - any driver error: undo and explain
            _empty_target(target)
            raise CopyError(
                f"the copy failed and the target was emptied again: {type(exc).__name__}: {exc}"
            ) from None
        report.target_ledger, report.ledger_accounts, report.ledger_entries = _ledger_problems(
            target
        )
    finally:
        close_database(target)
    report.seconds = time.monotonic() - started
    return report
