"""Backups: online copies of the database, retention, and a verified restore.

SQLite (the default) is copied with the SQLite backup API (``sqlite3.Connection.backup``)
while the box keeps running: the copy is one consistent snapshot, WAL lets the web and the
worker go on writing meanwhile.  Each copy is checked (``PRAGMA quick_check``) before it gets
its final name, so a file called ``meterdesk-*.db`` in the backup directory is complete.

MariaDB/MySQL sites are backed up with ``mysqldump --single-transaction`` (gzip-compressed)
when the ``mysqldump`` client is installed; without it :func:`backup_now` says so and names
the tool.  Both kinds are restored by :func:`restore`, which refuses to run while meterdesk
is running, verifies the copy with the ledger check before it replaces anything, swaps it in
atomically and keeps the replaced database (``*.pre-restore``).

Configuration: ``BACKUP_DIR`` (default ``<STATE_DIR>/backups``), ``BACKUP_KEEP`` (default 14
newest files kept; older ``meterdesk-*`` backups are deleted after each new one).
"""

from __future__ import annotations

import datetime as dt
import gzip
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from peewee import PeeweeException

from app import clock
from app.ops import runlock

DEFAULT_KEEP = 14
PREFIX = "meterdesk-"
SQLITE_SUFFIX = ".db"
MYSQL_SUFFIX = ".sql.gz"
SQLITE_MAGIC = b"SQLite format 3\x00"


class BackupError(Exception):
    """A backup or restore that could not be done; the message says why and what to do."""


@dataclass
class BackupResult:
    path: Path
    kind: str  # "sqlite" | "mysqldump"
    size: int
    seconds: float
    removed: list[Path] = field(default_factory=list)


@dataclass
class RestoreResult:
    database: str  # the live database (path or name) that now holds the restored data
    previous: str  # where the replaced database was kept ('' when there was none)
    migrated: list[str]
    ledger_accounts: int
    ledger_entries: int
    rows: dict[str, int]


def close_database(database: Any) -> None:
    """Close a peewee database: every pooled connection (MySQL) or the connection (SQLite)."""
    closer = getattr(database, "close_all", None)
    if closer is not None:
        closer()
    elif not database.is_closed():
        database.close()


# -- configuration --------------------------------------------------------------------------


def backup_dir(config: Mapping[str, Any]) -> Path:
    """``BACKUP_DIR``, or ``<STATE_DIR>/backups``."""
    configured = str(config.get("BACKUP_DIR") or "").strip()
    return Path(configured) if configured else Path(config["STATE_DIR"]) / "backups"


def backup_keep(config: Mapping[str, Any]) -> int:
    """``BACKUP_KEEP`` as a positive integer (environment values arrive as strings)."""
    raw = config.get("BACKUP_KEEP")
    if raw in (None, ""):
        return DEFAULT_KEEP
    try:
        keep = int(raw)
    except (TypeError, ValueError):
        raise BackupError(f"BACKUP_KEEP must be a whole number, not {raw!r}") from None
    if keep < 1:
        raise BackupError("BACKUP_KEEP must be at least 1")
    return keep


def sqlite_path(url: str) -> Path | None:
    """The file behind a ``sqlite:///`` URL (None for MySQL URLs), as ``app.db`` reads it."""
    if not url.lower().startswith("sqlite:"):
        return None
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///") :])
    return Path(unquote(urlparse(url).path))


@dataclass
class MysqlTarget:
    """The parts of a ``mysql://user:pass@host:port/name`` URL the client tools need."""

    user: str
    password: str
    host: str
    port: int
    name: str

    @classmethod
    def from_url(cls, url: str) -> MysqlTarget:
        parsed = urlparse(url)
        return cls(
            user=unquote(parsed.username or "root"),
            password=unquote(parsed.password or ""),
            host=parsed.hostname or "127.0.0.1",
            port=parsed.port or 3306,
            name=parsed.path.lstrip("/"),
        )

    @contextmanager
    def defaults_file(self) -> Iterator[str]:
        """A private option file for mysql/mysqldump, so that the password never appears on a
        command line (visible in ``ps``)."""

        def quote(value: str) -> str:
            return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

        fd, path = tempfile.mkstemp(prefix="meterdesk-my-", suffix=".cnf")
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(
                    f"[client]\nuser={quote(self.user)}\npassword={quote(self.password)}\n"
                    f"host={quote(self.host)}\nport={self.port}\n"
                )
            yield path
        finally:
            os.unlink(path)


# -- taking backups ---------------------------------------------------------------------------


def _stamp(now: dt.datetime | None) -> str:
    now = now or clock.utcnow()
    if now.tzinfo is not None:
        now = now.astimezone(dt.UTC)
    return now.strftime("%Y%m%dT%H%M%SZ")


def _clean_label(label: str) -> str:
    cleaned = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
    return f"-{cleaned[:40]}" if cleaned else ""


def _new_file(directory: Path, stem: str, suffix: str) -> Path:
    """Create ``directory/stem+suffix`` (or ``stem-2+suffix``...) empty, mode 0600."""
    for n in range(1, 1000):
        path = directory / f"{stem}{'' if n == 1 else f'-{n}'}{suffix}"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        os.close(fd)
        return path
    raise BackupError(f"could not find a free backup file name in {directory}")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def backup_now(
    config: Mapping[str, Any],
    *,
    label: str = "",
    now: dt.datetime | None = None,
    keep: int | None = None,
) -> BackupResult:
    """Back up the configured database into the backup directory and apply the retention.

    Raises :class:`BackupError` with an explanation when it cannot (no space, no mysqldump,
    unreadable database).
    """
    started = time.monotonic()
    directory = backup_dir(config)
    keep = backup_keep(config) if keep is None else keep
    try:
        directory.mkdir(mode=0o750, parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(
            f"cannot create the backup directory {directory}: {exc.strerror}"
        ) from None
    stem = PREFIX + _stamp(now) + _clean_label(label)
    url = str(config["DATABASE_URL"])
    source = sqlite_path(url)
    if source is not None:
        path = _backup_sqlite(source, directory, stem)
        kind = "sqlite"
    else:
        path = _backup_mysql(MysqlTarget.from_url(url), directory, stem)
        kind = "mysqldump"
    removed = prune(directory, keep)
    return BackupResult(
        path=path,
        kind=kind,
        size=path.stat().st_size,
        seconds=time.monotonic() - started,
        removed=removed,
    )


def _backup_sqlite(source: Path, directory: Path, stem: str) -> Path:
    if not source.is_file():
        raise BackupError(f"the database {source} does not exist")
    partial = _new_file(directory, "." + stem, SQLITE_SUFFIX + ".partial")
    try:
        src = sqlite3.connect(source, timeout=30)
        try:
            dst = sqlite3.connect(partial)
            try:
                # One step (pages=-1): a single consistent snapshot.  Under WAL, writers carry
                # on; a stepped copy would restart whenever another connection writes.
                src.backup(dst, pages=-1)
                dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
                result = dst.execute("PRAGMA quick_check").fetchone()[0]
                if result != "ok":
                    raise BackupError(f"the copy of {source} failed its check: {result}")
            finally:
                dst.close()
        finally:
            src.close()
        _fsync_file(partial)
        final = _new_file(directory, stem, SQLITE_SUFFIX)
        os.replace(partial, final)
        _fsync_dir(directory)
        return final
    except sqlite3.Error as exc:
        raise BackupError(f"SQLite backup of {source} failed: {exc}") from None
    except OSError as exc:
        raise BackupError(
            f"writing the backup into {directory} failed: {exc.strerror or exc}"
        ) from None
    finally:
        for leftover in (partial, Path(str(partial) + "-journal")):
            leftover.unlink(missing_ok=True)


def _backup_mysql(target: MysqlTarget, directory: Path, stem: str) -> Path:
    tool = shutil.which("mysqldump") or shutil.which("mariadb-dump")
    if tool is None:
        raise BackupError(
            "this site keeps its data in MariaDB/MySQL and the mysqldump client is not installed. "
            "`meterdesk backup` copies SQLite itself and MariaDB through mysqldump: install it "
            "(apt-get install mariadb-client) or back up with your database's own tools, e.g. "
            f"mysqldump --single-transaction {target.name} | gzip > {target.name}.sql.gz"
        )
    path = _new_file(directory, stem, MYSQL_SUFFIX)
    try:
        with target.defaults_file() as cnf, gzip.open(path, "wb") as out:
            proc = subprocess.Popen(
                [
                    tool,
                    f"--defaults-extra-file={cnf}",
                    "--single-transaction",
                    "--quick",
                    "--routines",
                    "--triggers",
                    "--hex-blob",
                    "--no-tablespaces",
                    "--default-character-set=utf8mb4",
                    target.name,
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            assert proc.stdout is not None and proc.stderr is not None
            shutil.copyfileobj(proc.stdout, out, 1 << 20)
            err = proc.stderr.read().decode(errors="replace").strip()
            if proc.wait() != 0:
                raise BackupError(
                    f"mysqldump of {target.name} failed: {err or 'exit ' + str(proc.returncode)}"
                )
        _fsync_file(path)
        _fsync_dir(directory)
        return path
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def list_backups(directory: Path) -> list[Path]:
    """The complete backups in ``directory``, newest first."""
    if not directory.is_dir():
        return []
    found = [
        p
        for p in directory.iterdir()
        if p.is_file()
        and p.name.startswith(PREFIX)
        and (p.name.endswith(SQLITE_SUFFIX) or p.name.endswith(MYSQL_SUFFIX))
    ]
    # By the UTC time stamp in the name (copying a file changes its mtime, not its name).
    stamp = len(PREFIX) + len("20260101T000000Z")
    return sorted(found, key=lambda p: (p.name[:stamp], p.stat().st_mtime), reverse=True)


def prune(directory: Path, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest backups; return what was deleted."""
    removed = []
    for old in list_backups(directory)[keep:]:
        old.unlink(missing_ok=True)
        removed.append(old)
    return removed


# -- restoring --------------------------------------------------------------------------------


def _refuse_if_running(config: Mapping[str, Any], force: bool) -> None:
    if force:
        return
    busy = runlock.running(config["STATE_DIR"])
    if busy:
        raise BackupError(
            f"meterdesk is running ({runlock.describe(busy)}). Stop it first "
            "(systemctl stop meterdesk-web meterdesk-worker), or pass --force if you are sure "
            "nothing uses the database."
        )


def restore(
    config: Mapping[str, Any],
    source: Path,
    *,
    force: bool = False,
    echo: Callable[[str], None] = print,
) -> RestoreResult:
    """Restore ``source`` (a backup made by :func:`backup_now`) into the configured database.

    The box must be stopped (``force`` skips that check).  The copy is checked, brought to this
    version's schema if it is older, and verified with the ledger check before it replaces the
    live database; the replaced database is kept next to it as ``*.pre-restore``.
    """
    source = Path(source)
    if not source.is_file():
        raise BackupError(f"{source}: no such file")
    _refuse_if_running(config, force)
    with open(source, "rb") as fh:
        head = fh.read(16)
    url = str(config["DATABASE_URL"])
    live = sqlite_path(url)
    if live is not None:
        if head != SQLITE_MAGIC:
            kind = (
                "a gzip file (a MariaDB dump?)"
                if head[:2] == b"\x1f\x8b"
                else "not a SQLite database"
            )
            raise BackupError(f"{source} is {kind}; this site uses SQLite ({live})")
        return _restore_sqlite(source, live, echo)
    if head[:2] != b"\x1f\x8b":
        raise BackupError(
            f"{source} is not a gzip-compressed mysqldump (meterdesk-*.sql.gz); "
            "this site uses MariaDB/MySQL"
        )
    return _restore_mysql(source, MysqlTarget.from_url(url), echo)


def _check_history(database: Any, echo: Callable[[str], None]) -> list[str]:
    """Refuse a backup from a newer version; migrate one from an older version."""
    from playhouse.migrations import Runner

    from app.schema import MIGRATIONS_DIR

    runner = Runner(database, directory=str(MIGRATIONS_DIR), table_name="schema_migration")
    rows = runner.status()
    unknown = [m.name for m in rows if m.applied and m.path is None]
    if unknown:
        raise BackupError(
            f"the backup was made by a newer meterdesk (migration {', '.join(unknown)} is unknown "
            "to this version); install that version first, then restore"
        )
    if not any(m.applied for m in rows):
        raise BackupError("the backup holds no meterdesk schema (no applied migrations)")
    pending = [m.name for m in rows if not m.applied]
    if pending:
        echo(f"the backup is older than this version: applying {', '.join(pending)} to the copy")
        with database.connection_context():
            runner.up()
    return pending


def _verify(database: Any) -> tuple[Any, dict[str, int]]:
    from app.domain.ledger import verify_ledger
    from app.models import MODELS

    with database.connection_context(), database.bind_ctx(MODELS):
        report = verify_ledger()
        rows = {m._meta.table_name: m.select().count() for m in MODELS}
    return report, rows


def _restore_sqlite(source: Path, live: Path, echo: Callable[[str], None]) -> RestoreResult:
    from app.db import make_database

    live = live.resolve() if live.exists() else live.absolute()
    live.parent.mkdir(parents=True, exist_ok=True)
    staging = live.with_name(live.name + ".restoring")
    sidecars = ("-wal", "-shm", "-journal")
    for leftover in [staging] + [Path(str(staging) + s) for s in sidecars]:
        leftover.unlink(missing_ok=True)
    try:
        src = sqlite3.connect(source.resolve().as_uri() + "?mode=ro", uri=True)
        dst = sqlite3.connect(staging)
        try:
            src.backup(dst, pages=-1)
            dst.execute("PRAGMA journal_mode=DELETE")
            result = dst.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            dst.close()
            src.close()
        if result != "ok":
            raise BackupError(
                f"{source} is damaged (integrity check: {result}); nothing was changed"
            )
        database = make_database(f"sqlite:///{staging}")
        migrated = _check_history(database, echo)
        report, rows = _verify(database)
        database.close()
        if not report.ok:
            for problem in report.problems[:20]:
                echo(problem)
            raise BackupError(
                f"the ledger in {source} does not verify ({len(report.problems)} "
                "problems, listed above); nothing was changed"
            )
        with closing(sqlite3.connect(staging)) as conn:  # peewee left it in WAL mode
            conn.execute("PRAGMA journal_mode=DELETE")
        previous = ""
        if live.exists():
            _quiesce(live)
            st = live.stat()
            os.chmod(staging, st.st_mode & 0o777)
            if os.geteuid() == 0:
                os.chown(staging, st.st_uid, st.st_gid)
            kept = live.with_name(f"{live.name}.{_stamp(None)}.pre-restore")
            try:
                os.link(live, kept)
            except OSError:
                shutil.copy2(live, kept)
            previous = str(kept)
        else:
            os.chmod(staging, 0o640)
        _fsync_file(staging)
        for s in sidecars:
            Path(str(live) + s).unlink(missing_ok=True)
        os.replace(staging, live)
        _fsync_dir(live.parent)
    except (sqlite3.Error, PeeweeException) as exc:
        raise BackupError(
            f"restoring {source} failed: {type(exc).__name__}: {exc}; the live database was not changed"
        ) from None
    finally:
        for leftover in [staging] + [Path(str(staging) + s) for s in sidecars]:
            leftover.unlink(missing_ok=True)
    return RestoreResult(
        database=str(live),
        previous=previous,
        migrated=migrated,
        ledger_accounts=report.accounts,
        ledger_entries=report.entries,
        rows=rows,
    )


def _holders(path: Path) -> str:
    """The processes that have ``path`` (or its -wal/-shm) open, as "pid 12 (gunicorn)"."""
    targets = {str(path), str(path) + "-wal", str(path) + "-shm"}
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if any(os.readlink(fd) in targets for fd in (proc / "fd").iterdir()):
                name = (proc / "comm").read_text().strip()
                found.append(f"pid {proc.name} ({name})")
        except OSError:
            continue
    return ", ".join(found)


def _quiesce(live: Path) -> None:
    """Fold the live database's WAL into the file and leave it in rollback-journal mode, so
    that the file alone is the whole database (and no stale WAL outlives the swap)."""
    conn = sqlite3.connect(live, timeout=5)
    try:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            raise sqlite3.OperationalError("database is busy")
        conn.execute("PRAGMA journal_mode=DELETE")
    except sqlite3.OperationalError as exc:
        holders = _holders(live)
        raise BackupError(
            f"{live} is in use ({exc}{'; open in ' + holders if holders else ''}): "
            "stop meterdesk first"
        ) from None
    finally:
        conn.close()


def _mysql_tool(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise BackupError(
        f"restoring a MariaDB/MySQL site needs the {names[0]} client "
        "(apt-get install mariadb-client)"
    )


def _restore_mysql(source: Path, target: MysqlTarget, echo: Callable[[str], None]) -> RestoreResult:
    """Load the dump into ``<name>_restore``, verify it there, then move its tables in with one
    ``RENAME TABLE`` (atomic) while the current ones move to ``<name>_pre_restore``."""
    from app.db import make_database

    client = _mysql_tool("mysql", "mariadb")
    scratch = f"{target.name}_restore"[:64]
    kept = f"{target.name}_pre_restore"[:64]
    admin = make_database(
        f"mysql://{target.user}:{target.password}@{target.host}:{target.port}/{target.name}"
    )

    def q(name: str) -> str:
        return "`" + name.replace("`", "``") + "`"

    try:
        with admin.connection_context():
            admin.execute_sql(f"DROP DATABASE IF EXISTS {q(scratch)}")
            admin.execute_sql(
                f"CREATE DATABASE {q(scratch)} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
        echo(f"loading {source} into {scratch}")
        with target.defaults_file() as cnf, gzip.open(source, "rb") as dump:
            proc = subprocess.Popen(
                [client, f"--defaults-extra-file={cnf}", scratch],
                stdin=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            assert proc.stdin is not None and proc.stderr is not None
            try:
                shutil.copyfileobj(dump, proc.stdin, 1 << 20)
            except (BrokenPipeError, OSError, EOFError) as exc:
                proc.kill()
                raise BackupError(f"{source} could not be read or loaded: {exc}") from None
            finally:
                try:
                    proc.stdin.close()
                except BrokenPipeError:
                    pass
            err = proc.stderr.read().decode(errors="replace").strip()
            if proc.wait() != 0:
                raise BackupError(
                    f"loading {source} failed: {err}; the live database was not changed"
                )
        database = make_database(
            f"mysql://{target.user}:{target.password}@{target.host}:{target.port}/{scratch}"
        )
        migrated = _check_history(database, echo)
        report, rows = _verify(database)
        close_database(database)
        if not report.ok:
            for problem in report.problems[:20]:
                echo(problem)
            raise BackupError(
                f"the ledger in {source} does not verify ({len(report.problems)} "
                "problems, listed above); the live database was not changed"
            )
        with admin.connection_context():
            current = [
                r[0]
                for r in admin.execute_sql(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                    (target.name,),
                )
            ]
            restored = [
                r[0]
                for r in admin.execute_sql(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                    (scratch,),
                )
            ]
            admin.execute_sql(f"DROP DATABASE IF EXISTS {q(kept)}")
            admin.execute_sql(
                f"CREATE DATABASE {q(kept)} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
            moves = [f"{q(target.name)}.{q(t)} TO {q(kept)}.{q(t)}" for t in current]
            moves += [f"{q(scratch)}.{q(t)} TO {q(target.name)}.{q(t)}" for t in restored]
            admin.execute_sql("RENAME TABLE " + ", ".join(moves))
            admin.execute_sql(f"DROP DATABASE {q(scratch)}")
    except BackupError:
        raise
    except Exception as exc:  # noqa: BLE001 - driver errors become one clear message
        raise BackupError(f"restoring {source} into {target.name} failed: {exc}") from None
    finally:
        close_database(admin)
    return RestoreResult(
        database=target.name,
        previous=kept,
        migrated=migrated,
        ledger_accounts=report.accounts,
        ledger_entries=report.entries,
        rows=rows,
    )
