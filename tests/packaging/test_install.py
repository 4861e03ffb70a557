"""packaging/install.sh and upgrade.sh into a temporary root, and the units run as systemd
would run them (tests/packaging/unitrun.py), without systemd.

The install reuses this test run's venv for the third-party packages (``--venv-from``); the
release, its venv, the pip install of meterdesk itself, assets, translations, configuration,
migrations, admin and units all go through the scripts' real code.  The tests in this module
share one installation and run in file order.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import urllib.request
from contextlib import closing
from pathlib import Path

import pytest

from tests.packaging import unitrun

REPO = Path(__file__).resolve().parents[2]
SOURCE_ENTRIES = [
    "app",
    "workers",
    "migrations",
    "templates",
    "packaging",
    "docs",
    "setup.cfg",
    "pyproject.toml",
    "MANIFEST.in",
    "README.md",
    "CHANGELOG.md",
    "babel.cfg",
    "Makefile",
]
UNITS = [
    "meterdesk-web.service",
    "meterdesk-worker.service",
    "meterdesk-simulator.service",
    "meterdesk-mqtt.service",
]
ADMIN_PASSWORD = "install-test-pass"

pytestmark = pytest.mark.skipif(
    sys.prefix == sys.base_prefix,
    reason="the install test reuses the test venv's packages (--venv-from)",
)


def _clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without the test suite's MD_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MD_")}
    env.update(extra)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _snapshot_source(dest: Path) -> Path:
    """A frozen copy of the source tree (others may edit the working tree meanwhile)."""
    dest.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for entry in SOURCE_ENTRIES:
        src = REPO / entry
        if src.is_dir():
            shutil.copytree(src, dest / entry, symlinks=True, ignore=ignore)
        elif src.exists():
            shutil.copy2(src, dest / entry)
    return dest


class Box:
    """One installed root: paths and helpers."""

    def __init__(self, root: Path, source: Path, port: int, tmp: Path) -> None:
        self.root = root
        self.source = source
        self.port = port
        self.tmp = tmp
        self.prefix = root / "opt/meterdesk"
        self.config = root / "etc/meterdesk/config.toml"
        self.state = root / "var/lib/meterdesk"
        self.unit_dir = root / "etc/systemd/system"
        self.run_dir = tmp / "run"
        self.ctl = tmp / "service-ctl"
        self.ctl.write_text(
            f"#!/bin/sh\nexec {sys.executable} {unitrun.__file__} "
            f'--unit-dir {self.unit_dir} --run-dir {self.run_dir} "$@"\n'
        )
        self.ctl.chmod(0o755)

    def install(self, *args: str, source: Path | None = None) -> subprocess.CompletedProcess:
        script = (source or self.source) / "packaging/install.sh"
        return subprocess.run(
            [
                "bash",
                str(script),
                "--root",
                str(self.root),
                "--venv-from",
                sys.prefix,
                "--listen",
                f"127.0.0.1:{self.port}",
                "--admin-user",
                "boss",
                "--admin-password-file",
                str(self.tmp / "admin-password"),
                *args,
            ],
            env=_clean_env(),
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )

    def upgrade(self, source: Path) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                "bash",
                str(source / "packaging/upgrade.sh"),
                "--root",
                str(self.root),
                "--venv-from",
                sys.prefix,
                "--service-ctl",
                str(self.ctl),
                "--health-timeout",
                "30",
            ],
            env=_clean_env(),
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )

    def md(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """meterdesk of the current release, with the units' environment."""
        result = subprocess.run(
            [str(self.prefix / "current/venv/bin/meterdesk"), *args],
            cwd=self.state,
            env={
                "PATH": unitrun.BASE_PATH,
                "LANG": "C.UTF-8",
                "HOME": str(self.state),
                "MD_CONFIG_FILE": str(self.config),
            },
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check:
            assert result.returncode == 0, result.stdout + result.stderr
        return result

    def unit(self, name: str) -> unitrun.Unit:
        return unitrun.parse_unit(self.unit_dir / name)

    def start(self, *names: str) -> None:
        for name in names:
            unitrun.start(self.unit(name), self.run_dir)

    def stop_all(self) -> None:
        for name in UNITS:
            if (self.unit_dir / name).exists():
                unitrun.stop(self.unit(name), self.run_dir, timeout=20)

    def healthz(self) -> tuple[int, dict]:
        import json
        import time

        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.port}/healthz", timeout=5
                ) as r:
                    return r.status, json.loads(r.read())
            except urllib.error.HTTPError as exc:
                return exc.code, json.loads(exc.read())
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def counts(self, path: Path | None = None) -> dict[str, int]:
        """Rows per table of the live database (or of ``path``)."""
        with closing(sqlite3.connect(path or self.state / "meterdesk.db")) as conn:
            tables = [
                r[0]
                for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
                )
            ]
            return {t: conn.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables}

    def pre_upgrade_backup(self) -> Path:
        return sorted((self.state / "backups").glob("meterdesk-*-pre-upgrade*.db"))[-1]

    def release(self) -> str:
        return os.readlink(self.prefix / "current")


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("install")
    (tmp / "admin-password").write_text(ADMIN_PASSWORD + "\n")
    source = _snapshot_source(tmp / "source")
    b = Box(tmp / "root", source, _free_port(), tmp)
    result = b.install()
    b.first_install = result
    yield b
    b.stop_all()


def test_install_lays_out_code_config_state_and_units_inside_the_root(box):
    result = box.first_install
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"open http://127.0.0.1:{box.port}/" in result.stdout
    assert "created admin boss" in result.stdout
    current = box.prefix / "current"
    assert current.is_symlink() and (current / "venv/bin/meterdesk").exists()
    assert (current / "app/static/vendor/htmx.min.js").exists()
    assert list((current / "app/translations").glob("*/LC_MESSAGES/messages.mo"))
    assert box.state.stat().st_mode & 0o777 == 0o750
    assert box.config.stat().st_mode & 0o777 == 0o640
    assert (box.state / "secret_key").stat().st_mode & 0o777 == 0o600
    config = box.config.read_text()
    assert f'listen = "127.0.0.1:{box.port}"' in config and f'state_dir = "{box.state}"' in config
    assert '# database_url = "mysql://' in config  # the template's comments are kept
    for name in UNITS:
        text = (box.unit_dir / name).read_text()
        assert "@" not in text.replace("$MAINPID", ""), f"{name} has an unrendered placeholder"
        exec_start = box.unit(name).exec_start
        assert exec_start[0].startswith(str(box.prefix)), exec_start
    web = box.unit("meterdesk-web.service")
    assert web.settings["Service.ProtectSystem"] == ["strict"]
    assert web.settings["Service.ReadWritePaths"] == [str(box.state)]
    assert web.settings["Service.NoNewPrivileges"] == ["yes"] and web.settings[
        "Service.PrivateTmp"
    ] == ["yes"]
    assert any("db check" in " ".join(cmd) for cmd in web.exec_start_pre)
    worker = box.unit("meterdesk-worker.service")
    assert worker.settings["Service.KillSignal"] == ["SIGINT"]
    assert worker.settings["Service.Restart"] == ["on-failure"]
    assert "boss\tadmin\tactive" in box.md("user", "list").stdout
    assert "UPGRADE" not in result.stdout


def _tree_state(root: Path) -> dict[str, tuple]:
    """Every file under the root except the live databases: content hash and mtime."""
    volatile = ("meterdesk.db", "huey.db")
    state = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if "__pycache__" in rel or path.name.startswith(volatile) or "/run/" in f"/{rel}":
            continue
        if path.is_symlink():
            state[rel] = ("link", os.readlink(path))
        elif path.is_file():
            state[rel] = (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
    return state


def test_a_second_install_changes_nothing_and_keeps_config_secret_and_data(box):
    before = _tree_state(box.root)
    rows = box.counts()
    second = box.install()
    assert second.returncode == 0, second.stdout + second.stderr
    assert "already installed, nothing changed" in second.stdout
    assert "kept" in second.stdout and "an admin exists already" in second.stdout
    assert _tree_state(box.root) == before
    assert box.counts() == rows


def test_the_units_start_the_console_and_the_worker_without_systemd(box):
    box.start("meterdesk-web.service", "meterdesk-worker.service")
    status, body = box.healthz()
    assert status == 200, body
    assert body["database"] == "ok" and body["queue"] == "ok" and body["status"] == "ok"
    assert set(body) == {"status", "database", "queue", "poll", "last_poll_age_seconds"}
    # Both hold their run lock: a restore into the running box is refused.
    import time

    deadline = time.monotonic() + 20
    while not (box.state / "run/worker.lock").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    backup = box.md("backup", "now", "--print-path").stdout.strip()
    refused = box.md("backup", "restore", "--yes", backup, check=False)
    assert refused.returncode != 0 and "meterdesk is running" in refused.stdout + refused.stderr
    # A second periodic consumer refuses to start.
    second = box.md("worker", check=False)
    assert second.returncode != 0 and "already running" in second.stdout + second.stderr
    # SIGINT (the unit's KillSignal) stops the worker gracefully, well within TimeoutStopSec.
    assert unitrun.stop(box.unit("meterdesk-worker.service"), box.run_dir, timeout=30)
    log = (box.run_dir / "meterdesk-worker.service.log").read_text()
    assert "Received SIGINT" in log and "Consumer exiting" in log
    assert unitrun.stop(box.unit("meterdesk-web.service"), box.run_dir, timeout=30)


def test_systemd_analyze_accepts_the_units(box):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed on this machine")
    paths = [str(box.unit_dir / name) for name in UNITS]
    result = subprocess.run([tool, "verify", *paths], capture_output=True, text=True, timeout=60)
    ours = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if any(name in line for name in UNITS)
    ]
    assert result.returncode == 0 and not ours, result.stdout + result.stderr


def _new_source(box: Box, name: str, migration: str) -> Path:
    source = box.tmp / name
    shutil.copytree(box.source, source, symlinks=True)
    (source / "migrations" / "0099_upgrade_test.py").write_text(migration)
    return source


BROKEN_MIGRATION = '''"""Damages data, then fails: the upgrade must roll back and restore."""
atomic = False


def up(migrator, db):
    db.execute_sql("DELETE FROM audit_log")
    db.execute_sql("DELETE FROM reading")
    raise RuntimeError("deliberately failing migration")
'''

GOOD_MIGRATION = '''"""A harmless new table."""
from peewee import CharField, Model


def up(migrator, db):
    class UpgradeProbe(Model):
        note = CharField(default="")

        class Meta:
            database = db
            table_name = "upgrade_probe"

    db.create_tables([UpgradeProbe])
'''


@pytest.fixture
def running_box_with_data(box):
    """The box running with the demo mall loaded (sales, readings, audit rows)."""
    box.md("demo", "load")
    box.start("meterdesk-web.service", "meterdesk-worker.service")
    assert box.healthz()[0] == 200
    yield box
    box.stop_all()


def _assert_nothing_lost(before: dict[str, int], after: dict[str, int]) -> None:
    """Every row of the pre-upgrade snapshot is there.  The restarted worker's periodic
    tasks may add rows (events...), so other tables may only grow; no gateway answers in this
    site, so readings cannot."""
    for table, count in before.items():
        assert after.get(table, 0) >= count, f"{table}: {after.get(table)} rows, {count} before"
    assert after["reading"] == before["reading"]


def test_an_upgrade_whose_migration_fails_rolls_back_code_and_data(running_box_with_data):
    box = running_box_with_data
    old_release = box.release()
    assert box.counts()["reading"] > 0
    result = box.upgrade(_new_source(box, "broken-source", BROKEN_MIGRATION))
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert 'UPGRADE FAILED at "migrate the database"' in output
    assert "deliberately failing migration" in output and "rolled back" in output
    assert box.release() == old_release
    status, body = box.healthz()  # the old release runs again
    assert status == 200 and body["database"] == "ok"
    box.stop_all()
    _assert_nothing_lost(box.counts(box.pre_upgrade_backup()), box.counts())
    assert "OK" in box.md("ledger", "verify").stdout
    # The damaged database is kept for inspection, and it is damaged indeed.
    (kept,) = box.state.glob("meterdesk.db.*.pre-restore")
    assert box.counts(kept)["reading"] == 0


def test_an_upgrade_migrates_restarts_and_keeps_every_row(running_box_with_data):
    box = running_box_with_data
    old_release = box.release()
    result = box.upgrade(_new_source(box, "good-source", GOOD_MIGRATION))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "meterdesk upgraded" in output
    assert box.release() != old_release
    status, body = box.healthz()
    assert status == 200 and body["database"] == "ok"
    box.stop_all()
    before, after = box.counts(box.pre_upgrade_backup()), box.counts()
    assert after.pop("upgrade_probe") == 0
    assert after.pop("schema_migration") == before.pop("schema_migration") + 1
    _assert_nothing_lost(before, after)
    assert "OK" in box.md("ledger", "verify").stdout
    # The previous release stays for a manual rollback.
    assert (box.prefix / old_release).is_dir()
