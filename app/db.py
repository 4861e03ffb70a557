"""The database handle.

``db`` is a peewee ``DatabaseProxy`` bound at start-up by ``init_db(url)``:
``sqlite:///path`` (default, WAL) or ``mysql://user:pass@host:port/name`` (MariaDB/MySQL,
pooled, utf8mb4).  Every write goes through ``write_tx()``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any, Iterator
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


def after_commit(fn: Callable[[], Any]) -> None:
    """Run ``fn`` after the current transaction commits (at once outside a transaction)."""
    if db.transaction_depth() == 0:
        fn()
    else:
        db.after_commit(fn)
