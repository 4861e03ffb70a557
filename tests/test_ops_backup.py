"""Backups: the online SQLite copy, retention, the nightly task, and the verified restore."""

from __future__ import annotations

import datetime as dt
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from app.ops import runlock
from app.ops.backup import BackupError, backup_now, list_backups, restore
from tests.packaging.sites import sqlite_site


def _count(path: Path, table: str) -> int:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]


@pytest.fixture
def box(tmp_path):
    """A configuration whose database is a populated SQLite file."""
    state = tmp_path / "state"
    state.mkdir()
    with sqlite_site(state / "meterdesk.db") as url:
        yield {"STATE_DIR": str(state), "DATABASE_URL": url}


def test_backup_is_a_consistent_copy_taken_while_a_writer_holds_the_database(box):
    live = Path(box["STATE_DIR"]) / "meterdesk.db"
    writer = sqlite3.connect(live, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("DELETE FROM audit_log")  # uncommitted: must not be in the copy
    try:
        result = backup_now(box)
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert result.kind == "sqlite" and result.path.parent == Path(box["STATE_DIR"]) / "backups"
    assert result.path.name.startswith("meterdesk-") and result.path.suffix == ".db"
    assert result.path.stat().st_mode & 0o777 == 0o600
    assert _count(result.path, "sale") == _count(live, "sale") == 3
    assert _count(result.path, "audit_log") == _count(live, "audit_log") > 0
    with closing(sqlite3.connect(result.path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert not list(result.path.parent.glob(".*partial"))


def test_retention_keeps_the_newest_backups_only(box):
    start = dt.datetime(2026, 11, 1, 18, 37, tzinfo=dt.UTC)
    made = [backup_now(box, now=start + dt.timedelta(days=i), keep=3).path for i in range(5)]
    kept = list_backups(Path(box["STATE_DIR"]) / "backups")
    assert kept == list(reversed(made[2:]))
    assert not made[0].exists() and not made[1].exists()


def test_backup_dir_and_keep_come_from_the_configuration(box, tmp_path):
    config = {**box, "BACKUP_DIR": str(tmp_path / "elsewhere"), "BACKUP_KEEP": "1"}
    backup_now(config, label="before Upgrade!")
    second = backup_now(config, label="pre-upgrade")
    assert list_backups(tmp_path / "elsewhere") == [second.path]
    assert second.path.name.endswith("-pre-upgrade.db")
    with pytest.raises(BackupError, match="BACKUP_KEEP"):
        backup_now({**box, "BACKUP_KEEP": "many"})


def test_the_nightly_task_backs_up_the_configured_database(box, monkeypatch):
    from workers.tasks.backup import backup_task

    monkeypatch.setenv("MD_STATE_DIR", box["STATE_DIR"])
    monkeypatch.setenv("MD_DATABASE_URL", box["DATABASE_URL"])
    path = backup_task.call_local()
    assert path and Path(path).exists() and _count(Path(path), "sale") == 3


def test_the_nightly_task_logs_instead_of_failing_without_mysqldump(box, monkeypatch, caplog):
    from workers.tasks.backup import backup_task

    monkeypatch.setattr("shutil.which", lambda name: None)
    monkeypatch.setenv("MD_STATE_DIR", box["STATE_DIR"])
    monkeypatch.setenv("MD_DATABASE_URL", "mysql://meterdesk:pw@127.0.0.1:3306/meterdesk")
    assert backup_task.call_local() is None
    assert "mysqldump" in caplog.text


def test_a_mysql_site_without_mysqldump_is_told_what_backup_covers(box, monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(BackupError, match="mysqldump client is not installed"):
        backup_now({**box, "DATABASE_URL": "mysql://u:p@127.0.0.1:3306/site"})


def test_restore_refuses_while_meterdesk_runs_unless_forced(box):
    backup = backup_now(box).path
    lock = runlock.acquire(box["STATE_DIR"], "web")
    try:
        with pytest.raises(BackupError, match=r"meterdesk is running \(web \(pid \d+\)\)"):
            restore(box, backup)
        result = restore(box, backup, force=True, echo=lambda _: None)
    finally:
        lock.release()
    assert result.previous


def test_restore_swaps_in_the_backup_and_keeps_the_replaced_database(box):
    live = Path(box["STATE_DIR"]) / "meterdesk.db"
    backup = backup_now(box).path
    with closing(sqlite3.connect(live)) as conn:
        conn.execute("DELETE FROM audit_log")
        conn.commit()
    mode = live.stat().st_mode & 0o777
    result = restore(box, backup, echo=lambda _: None)
    assert result.ledger_entries > 0 and result.rows["sale"] == 3 and result.migrated == []
    assert _count(live, "audit_log") == _count(backup, "audit_log") > 0
    kept = Path(result.previous)
    assert kept.name.startswith("meterdesk.db.") and kept.name.endswith(".pre-restore")
    assert _count(kept, "audit_log") == 0
    assert live.stat().st_mode & 0o777 == mode
    assert not list(live.parent.glob("*.restoring*"))


def test_restore_refuses_a_backup_whose_ledger_does_not_verify(box):
    live = Path(box["STATE_DIR"]) / "meterdesk.db"
    backup = backup_now(box).path
    with closing(sqlite3.connect(backup)) as conn:
        conn.execute(
            "UPDATE ledger_account SET balance_fen = balance_fen + 1 WHERE code LIKE 'wallet:%'"
        )
        conn.commit()
    before = live.read_bytes()
    messages: list[str] = []
    with pytest.raises(BackupError, match="does not verify"):
        restore(box, backup, echo=messages.append)
    assert any("cached" in m for m in messages)
    assert live.read_bytes() == before
    assert not list(live.parent.glob("*.pre-restore"))


def test_restore_refuses_what_is_not_a_backup_of_this_site(box, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(BackupError, match="not a SQLite database"):
        restore(box, text)
    future = backup_now(box).path
    with closing(sqlite3.connect(future)) as conn:
        conn.execute(
            "INSERT INTO schema_migration (name, applied) VALUES ('9999_future', '2030-01-01')"
        )
        conn.commit()
    with pytest.raises(BackupError, match="newer meterdesk"):
        restore(box, future)
    with pytest.raises(BackupError, match="gzip-compressed mysqldump"):
        restore({**box, "DATABASE_URL": "mysql://u:p@127.0.0.1:3306/site"}, future)


def test_restore_of_an_older_backup_brings_the_copy_to_this_schema(box, tmp_path):
    from playhouse.migrations import Runner

    from app.db import make_database
    from app.schema import MIGRATIONS_DIR

    old = tmp_path / "old.db"
    database = make_database(f"sqlite:///{old}")
    runner = Runner(database, directory=str(MIGRATIONS_DIR), table_name="schema_migration")
    with database.connection_context():
        runner.up(target="0001_initial")
        later = [m.name for m in runner.status() if not m.applied]
    if not later:
        pytest.skip("only one migration exists")
    messages: list[str] = []
    result = restore(box, old, echo=messages.append)
    assert result.migrated == later
    assert any("older than this version" in m for m in messages)
    with closing(sqlite3.connect(Path(box["STATE_DIR"]) / "meterdesk.db")) as conn:
        applied = [r[0] for r in conn.execute("SELECT name FROM schema_migration ORDER BY name")]
    assert applied == ["0001_initial", *later]


def test_backup_cli_now_list_and_restore(app, box, tmp_path):
    from app.cli import backup_cli

    runner = app.test_cli_runner()
    app.config.update(box)
    made = runner.invoke(backup_cli, ["now", "--label", "manual"])
    assert made.exit_code == 0, made.output
    assert "backup " in made.output and "-manual.db" in made.output
    path = runner.invoke(backup_cli, ["now", "--print-path"]).output.strip()
    assert Path(path).exists()
    listed = runner.invoke(backup_cli, ["list"])
    assert path in listed.output and "-manual.db" in listed.output
    restored = runner.invoke(backup_cli, ["restore", "--yes", path])
    assert restored.exit_code == 0, restored.output
    assert "ledger OK" in restored.output and ".pre-restore" in restored.output
    lock = runlock.acquire(box["STATE_DIR"], "worker")
    try:
        busy = runner.invoke(backup_cli, ["restore", "--yes", path])
    finally:
        lock.release()
    assert busy.exit_code == 1 and "meterdesk is running (worker" in busy.output
