"""The database handle.

``db`` is a peewee ``DatabaseProxy`` bound at start-up by ``init_db(url)``:
``sqlite:///path`` (default, WAL) or ``mysql://user:pass@host:port/name`` (MariaDB/MySQL,
pooled, utf8mb4).  Every write goes through ``write_tx()``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from peewee import DatabaseProxy, MySQLDatabase, SqliteDatabase
from playhouse.pool import PooledMySQLDatabase

db = DatabaseProxy()

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "foreign_keys": 1,
    "synchronous": "normal",
    "busy_timeout": 15000,
    "cache_size": -16000,
}


def make_database(url: str) -> SqliteDatabase | MySQLDatabase:
    """Build (but do not bind) a peewee database from a URL."""
    parsed = urlparse(url)
    scheme = parsed.scheme.lower()
    if scheme == "sqlite":
        path = unquote(parsed.path)
        if url.startswith("sqlite:///"):
            path = url[len("sqlite:///") :]
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        return SqliteDatabase(path or ":memory:", pragmas=SQLITE_PRAGMAS, timeout=15)
    if scheme in {"mysql", "mariadb", "mysql+pool"}:
        options = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        return PooledMySQLDatabase(
            parsed.path.lstrip("/"),
            user=unquote(parsed.username or "root"),
            password=unquote(parsed.password or ""),
            host=parsed.hostname or "127.0.0.1",
            port=parsed.port or 3306,
            charset="utf8mb4",
            max_connections=int(options.get("max_connections", 16)),
            stale_timeout=int(options.get("stale_timeout", 300)),
            autoconnect=True,
        )
    raise ValueError(f"unsupported database URL scheme: {scheme!r} (use sqlite:/// or mysql://)")


def init_db(url: str) -> Any:
    """Bind the proxy to the database named by ``url`` and return it."""
    database = make_database(url)
    db.initialize(database)
    return database


def is_sqlite() -> bool:
    return isinstance(db.obj, SqliteDatabase)


@contextmanager
def write_tx() -> Iterator[None]:
    """A write transaction: ``BEGIN IMMEDIATE`` on SQLite, a plain transaction on MySQL.

    Nested calls become savepoints.  Side effects registered with ``after_commit`` run only
    once the outermost transaction has committed.
    """
    if db.transaction_depth() == 0 and is_sqlite():
        ctx = db.atomic("IMMEDIATE")
    else:
        ctx = db.atomic()
    with ctx:
        yield


def lock_rows(table: str, ids: Iterable[int]) -> None:
    """Take the write locks of these rows now, in id order (MySQL ``SELECT ... FOR UPDATE``).

    InnoDB takes a shared lock on a parent row when a child row referencing it is inserted; a
    later ``UPDATE`` of that parent then needs to upgrade it, and two transactions doing the
    same to one row deadlock.  Locking the rows a transaction will update first, always in
    the same order, makes concurrent writers queue instead.  SQLite needs nothing: its write
    transactions (``BEGIN IMMEDIATE``) already run one at a time.
    """
    ids = sorted(set(ids))
    if not ids or is_sqlite() or db.transaction_depth() == 0:
        return
    for i in range(0, len(ids), 1000):
        chunk = ids[i : i + 1000]
        marks = ", ".join(["%s"] * len(chunk))
        db.execute_sql(
            f"SELECT id FROM `{table}` WHERE id IN ({marks}) ORDER BY id FOR UPDATE", chunk
        )


def after_commit(fn: Callable[[], Any]) -> None:
    """Run ``fn`` after the current transaction commits (at once outside a transaction)."""
    if db.transaction_depth() == 0:
        fn()
    else:
        db.after_commit(fn)


def db_time(value: Any) -> Any:
    """A datetime as the driver should receive it in raw statements (SQLite: text)."""
    if value is None or not is_sqlite():
        return value
    return str(value)


MAX_PARAMS = 30000  # below SQLite's 32766 bound variables per statement (MySQL allows 65535)


def insert_chunked(model: Any, rows: list[dict[str, Any]], chunk: int = 500) -> None:
    """Insert many rows (dicts with the same keys) with ``insert_many``, ``chunk`` rows a
    statement or fewer so that no statement binds more than ``MAX_PARAMS`` values (peewee adds
    every column with a default to each row)."""
    per_insert = max(1, min(chunk, MAX_PARAMS // max(1, len(model._meta.columns))))
    for i in range(0, len(rows), per_insert):
        model.insert_many(rows[i : i + per_insert]).execute()


def bulk_update(
    table: str, key: str, assignments: list[str], rows: list[tuple], chunk: int = 500
) -> None:
    """Update many rows by key in as few statements as the backend allows.

    ``assignments`` are SQL fragments with ``{}`` where the row's value goes, e.g.
    ``"last_total = {}"`` or ``"balance_fen = balance_fen + normal * {}"``; each row is
    ``(value for each assignment..., key value)``.  SQLite runs one prepared statement over
    all rows; MySQL joins a derived table of the rows, ``chunk`` at a time.
    """
    if not rows:
        return
    if is_sqlite():
        sets = ", ".join(a.format("?") for a in assignments)
        db.cursor().executemany(f'UPDATE "{table}" SET {sets} WHERE "{key}" = ?', rows)
        return
    n = len(assignments)
    sets = ", ".join(
        a.replace(a.split("=")[0].strip(), f"t.`{a.split('=')[0].strip()}`", 1).format(f"v.c{i}")
        for i, a in enumerate(assignments)
    )
    cols = ", ".join([f"%s AS c{i}" for i in range(n)] + ["%s AS k"])
    row_sql = ", ".join(["%s"] * (n + 1))
    for i in range(0, len(rows), chunk):
        part = rows[i : i + chunk]
        derived = f"SELECT {cols}" + "".join(f" UNION ALL SELECT {row_sql}" for _ in part[1:])
        params = [v for row in part for v in row]
        db.execute_sql(
            f"UPDATE `{table}` t JOIN ({derived}) v ON t.`{key}` = v.k SET {sets}", params
        )
