"""Shared fixtures: an app on a freshly migrated database (a temp SQLite file by default, the
MariaDB named by MD_TEST_DATABASE_URL when set), clients, a fixed clock, a small site."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile  # noqa: E402

import pytest

os.environ.setdefault("MD_CONFIG_FILE", "/nonexistent/meterdesk-test.toml")
# The huey instance is built at import time from the environment: keep it in memory.
os.environ["MD_HUEY_IMMEDIATE"] = "1"
os.environ.setdefault("MD_STATE_DIR", tempfile.mkdtemp(prefix="md-test-state-"))

from app import create_app  # noqa: E402
from app.db import db, init_db  # noqa: E402
from app.models import MODELS  # noqa: E402
from app.schema import upgrade  # noqa: E402

TEST_DB_URL = os.environ.get("MD_TEST_DATABASE_URL", "")

if os.environ.get("MD_TEST_NOW") and "MD_TEST_CLOCK_OFFSET" not in os.environ:
    raise RuntimeError(
        "MD_TEST_NOW is set but the clock was not moved: run with PYTHONPATH=tests/travel "
        "(make test-at WHEN=...)"
    )


def _close() -> None:
    if db.obj is None:
        return
    if hasattr(db.obj, "close_all"):
        db.obj.close_all()
    elif not db.is_closed():
        db.close()


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory):
    """SQLite: a migrated database file copied for each test.  MySQL: migrate once."""
    if TEST_DB_URL:
        database = init_db(TEST_DB_URL)
        with database.connection_context():
            tables = database.get_tables()
            if tables:
                database.execute_sql("SET FOREIGN_KEY_CHECKS=0")
                for table in tables:
                    database.execute_sql(f"DROP TABLE `{table}`")
                database.execute_sql("SET FOREIGN_KEY_CHECKS=1")
            upgrade()
        _close()
        return None
    path = tmp_path_factory.mktemp("template") / "template.db"
    database = init_db(f"sqlite:///{path}")
    with database.connection_context():
        upgrade()
        database.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    _close()
    return path


@pytest.fixture
def database_url(migrated_template, tmp_path):
    if TEST_DB_URL:
        database = init_db(TEST_DB_URL)
        with database.connection_context():
            database.execute_sql("SET FOREIGN_KEY_CHECKS=0")
            for model in reversed(MODELS):
                database.execute_sql(f"DELETE FROM `{model._meta.table_name}`")
            database.execute_sql("SET FOREIGN_KEY_CHECKS=1")
        _close()
        return TEST_DB_URL
    target = tmp_path / "meterdesk.db"
    shutil.copy(migrated_template, target)
    return f"sqlite:///{target}"


@pytest.fixture
def app(database_url, tmp_path):
    application = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": database_url,
            "STATE_DIR": str(tmp_path / "state"),
            "SECRET_KEY": "test-secret",
            "HUEY_IMMEDIATE": True,
        }
    )
    # Like a request: tasks run inside the test (huey immediate mode) open their own
    # connection context and must not close the test's connection.
    # (Bound to this test's database object: a test may re-bind the proxy, e.g. a restore.)
    with db.obj.connection_context():
        yield application
    _close()


@pytest.fixture
def now() -> dt.datetime:
    return dt.datetime(2026, 11, 2, 4, 0, 0)  # 12:00 in Asia/Shanghai


@pytest.fixture
def clock_at():
    """``clock_at(when)`` moves the wall clock (every ``utcnow()`` of the product) to ``when``
    (naive = UTC) for the rest of the test; ``tick=False`` holds it there."""
    import time_machine

    moved = []

    def move(when: dt.datetime, *, tick: bool = True) -> None:
        traveller = time_machine.travel(
            when if when.tzinfo else when.replace(tzinfo=dt.UTC), tick=tick
        )
        traveller.start()
        moved.append(traveller)

    yield move
    for traveller in reversed(moved):
        traveller.stop()


@pytest.fixture
def site(app, now):
    from tests.factories import make_site

    return make_site(now)


@pytest.fixture
def client(app):
    return app.test_client()
