"""``meterdesk db copy``: every row into an empty database, counts and ledger compared; the
SQLite -> MariaDB -> SQLite round trip runs when MariaDB answers on 127.0.0.1:3306."""

from __future__ import annotations

import os
import secrets
import socket
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from app.db import make_database
from app.ops import runlock
from app.ops.dbcopy import CopyError, copy_database
from tests.packaging.sites import sqlite_site

MYSQL_SERVER = "mysql://root@127.0.0.1:3306"
# Unique per run: two suite runs on one machine (CI's legs, two clones) must not share them.
RUN = f"{os.getpid()}_{secrets.token_hex(3)}"
COPY_DB = f"md_copy_{RUN}"


def _mariadb_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 3306), timeout=0.5):
            return True
    except OSError:
        return False


needs_mariadb = pytest.mark.skipif(
    not _mariadb_up(), reason="MariaDB is not answering on 127.0.0.1:3306"
)


def _quiet(_: str) -> None:
    pass


def _sums(database) -> dict[str, int]:
    """Money fingerprints that a lossy copy would change."""
    with database.connection_context():
        q = database.execute_sql
        return {
            "legs": int(q("SELECT COALESCE(SUM(amount_fen), 0) FROM leg").fetchone()[0]),
            "abs_legs": int(q("SELECT COALESCE(SUM(ABS(amount_fen)), 0) FROM leg").fetchone()[0]),
            "balances": int(
                q("SELECT COALESCE(SUM(balance_fen), 0) FROM ledger_account").fetchone()[0]
            ),
            "sales": int(q("SELECT COALESCE(SUM(net_fen), 0) FROM sale").fetchone()[0]),
        }


@pytest.fixture
def source(tmp_path):
    with sqlite_site(tmp_path / "source.db", accounts=5) as url:
        database = make_database(url)
        database.connect()
        yield database
        database.close()


def test_copy_to_an_empty_sqlite_database_keeps_every_row_and_the_ledger(source, tmp_path):
    lines: list[str] = []
    report = copy_database(
        source, f"sqlite:///{tmp_path / 'target.db'}", chunk=7, echo=lines.append
    )
    assert report.ok, report
    counts = {t.table: (t.source, t.target) for t in report.tables}
    assert counts["sale"] == (5, 5) and counts["leg"][0] > 0
    assert counts["schema_migration"][0] == counts["schema_migration"][1] > 0
    assert all(s == t for s, t in counts.values())
    assert report.ledger_entries == 5 and not report.target_ledger
    assert any(line.startswith("sale") and "ok" in line for line in lines)
    target = make_database(f"sqlite:///{tmp_path / 'target.db'}")
    assert _sums(target) == _sums(source)
    with (
        closing(sqlite3.connect(tmp_path / "target.db")) as a,
        closing(sqlite3.connect(tmp_path / "source.db")) as b,
    ):
        history = "SELECT name, applied FROM schema_migration ORDER BY name"
        assert a.execute(history).fetchall() == b.execute(history).fetchall()


def test_copy_refuses_a_target_with_rows_and_the_source_itself(source, tmp_path):
    target = f"sqlite:///{tmp_path / 'target.db'}"
    copy_database(source, target, echo=_quiet)
    with pytest.raises(CopyError, match="the target is not empty: property"):
        copy_database(source, target, echo=_quiet)
    with pytest.raises(CopyError, match="the target is the source"):
        copy_database(source, f"sqlite:///{source.database}", echo=_quiet)


def test_copy_refuses_a_source_with_pending_migrations_or_unknown_tables(source, tmp_path):
    with source.connection_context():
        source.execute_sql("CREATE TABLE local_notes (id INTEGER PRIMARY KEY, body TEXT)")
        source.execute_sql("INSERT INTO local_notes (body) VALUES ('x')")
    with pytest.raises(CopyError, match="local_notes"):
        copy_database(source, f"sqlite:///{tmp_path / 'a.db'}", echo=_quiet)
    with source.connection_context():
        source.execute_sql("DROP TABLE local_notes")
        last = source.execute_sql("SELECT MAX(name) FROM schema_migration").fetchone()[0]
        source.execute_sql("DELETE FROM schema_migration WHERE name = ?", (last,))
    with pytest.raises(CopyError, match="pending migrations"):
        copy_database(source, f"sqlite:///{tmp_path / 'b.db'}", echo=_quiet)


def test_a_failed_copy_leaves_the_target_empty(source, tmp_path, monkeypatch):
    import app.ops.dbcopy as dbcopy

    real = dbcopy._copy_table
    calls = {"n": 0}

    def flaky(src, dst, model, chunk):
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("disk full")
        return real(src, dst, model, chunk)

    monkeypatch.setattr(dbcopy, "_copy_table", flaky)
    target = tmp_path / "target.db"
    with pytest.raises(CopyError, match="emptied again: RuntimeError: disk full"):
        copy_database(source, f"sqlite:///{target}", echo=_quiet)
    with closing(sqlite3.connect(target)) as conn:
        assert conn.execute("SELECT COUNT(*) FROM property").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM ledger_account").fetchone()[0] == 0
    monkeypatch.setattr(dbcopy, "_copy_table", real)
    assert copy_database(source, f"sqlite:///{target}", echo=_quiet).ok  # and it can run again


def test_db_copy_command_refuses_a_running_box_and_reports_equal_counts(app, tmp_path):
    from app.cli import db_cli

    state = tmp_path / "copy-state"
    with sqlite_site(tmp_path / "src.db") as url:
        app.config.update({"DATABASE_URL": url, "STATE_DIR": str(state)})
        runner = app.test_cli_runner()
        target = f"sqlite:///{tmp_path / 'dst.db'}"
        lock = runlock.acquire(state, "web")
        try:
            busy = runner.invoke(db_cli, ["copy", "--to", target])
        finally:
            lock.release()
        assert busy.exit_code == 1 and "meterdesk is running (web" in busy.output
        done = runner.invoke(db_cli, ["copy", "--to", target])
        assert done.exit_code == 0, done.output
        assert "all row counts equal" in done.output and "ledger on the target" in done.output
        again = runner.invoke(db_cli, ["copy", "--to", target])
        assert again.exit_code == 1 and "not empty" in again.output


@needs_mariadb
def test_sqlite_to_mariadb_and_back_keeps_every_row_and_the_ledger(source, tmp_path):
    server = make_database(f"{MYSQL_SERVER}/information_schema")
    with server.connection_context():
        server.execute_sql(f"DROP DATABASE IF EXISTS {COPY_DB}")
    lines: list[str] = []
    try:
        there = copy_database(source, f"{MYSQL_SERVER}/{COPY_DB}", echo=lines.append)
        assert f"created database {COPY_DB} (utf8mb4)" in lines
        assert there.ok, there
        mariadb = make_database(f"{MYSQL_SERVER}/{COPY_DB}")
        assert _sums(mariadb) == _sums(source)
        back = copy_database(mariadb, f"sqlite:///{tmp_path / 'back.db'}", echo=_quiet)
        assert back.ok, back
        assert [(t.table, t.target) for t in back.tables] == [
            (t.table, t.source) for t in there.tables
        ]
        assert _sums(make_database(f"sqlite:///{tmp_path / 'back.db'}")) == _sums(source)
        with pytest.raises(CopyError, match="not empty"):
            copy_database(source, f"{MYSQL_SERVER}/{COPY_DB}", echo=_quiet)
        mariadb.close_all()
    finally:
        with server.connection_context():
            server.execute_sql(f"DROP DATABASE IF EXISTS {COPY_DB}")
        server.close_all()


@needs_mariadb
def test_mariadb_backup_and_restore_round_trip(source, tmp_path):
    import shutil

    from app.ops.backup import backup_now, restore

    if not shutil.which("mysqldump") or not shutil.which("mysql"):
        pytest.skip("the mysql/mysqldump clients are not installed")
    name = f"md_backup_{RUN}"
    server = make_database(f"{MYSQL_SERVER}/information_schema")

    def drop_all() -> None:
        with server.connection_context():
            for db_name in (name, f"{name}_restore", f"{name}_pre_restore"):
                server.execute_sql(f"DROP DATABASE IF EXISTS {db_name}")

    drop_all()
    try:
        url = f"{MYSQL_SERVER}/{name}"
        assert copy_database(source, url, echo=_quiet).ok
        config = {"STATE_DIR": str(tmp_path / "state"), "DATABASE_URL": url}
        backup = backup_now(config)
        assert backup.kind == "mysqldump" and backup.path.name.endswith(".sql.gz")
        site = make_database(url)
        with site.connection_context():
            site.execute_sql("DELETE FROM audit_log")
        result = restore(config, backup.path, echo=_quiet)
        assert result.previous == f"{name}_pre_restore" and result.rows["sale"] == 5
        assert _sums(site) == _sums(source)
        with site.connection_context():
            assert site.execute_sql("SELECT COUNT(*) FROM audit_log").fetchone()[0] > 0
            kept = site.execute_sql(
                f"SELECT COUNT(*) FROM {name}_pre_restore.audit_log"
            ).fetchone()[0]
        assert kept == 0
        site.close_all()
        with pytest.raises(Exception, match="is not a gzip"):
            restore(config, Path(source.database), echo=_quiet)
    finally:
        drop_all()
        server.close_all()
