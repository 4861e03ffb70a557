"""A small populated SQLite site for the operations tests (backups, checks, copies): its own
file, whatever database the rest of the suite runs on."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app.db import db, init_db
from app.domain.actors import SYSTEM
from app.domain.sales import sell
from app.schema import upgrade
from tests.factories import make_site

NOW = dt.datetime(2026, 11, 2, 4, 0, 0)


def populate(accounts: int = 3) -> None:
    """A property with ``accounts`` accounts, each with one sale (the bound database)."""
    site = make_site(NOW)
    for i in range(accounts):
        acct, _ = site.account()
        sell(
            acct,
            amount_fen=10_000 + i,
            method="cash",
            idempotency_key=f"ops-{i}",
            actor=SYSTEM,
            now=NOW,
        )


@contextmanager
def sqlite_site(path: Path, accounts: int = 3) -> Iterator[str]:
    """Create, migrate and populate a SQLite database at ``path``; yield its URL with the
    proxy bound to it (closed afterwards, and the previous binding restored)."""
    previous = db.obj
    url = f"sqlite:///{path}"
    database = init_db(url)
    try:
        with database.connection_context():
            upgrade()
            populate(accounts)
        yield url
    finally:
        if db.obj is not None and not db.is_closed():
            db.close()
        if previous is not None:  # give the app fixture its database back
            db.initialize(previous)
