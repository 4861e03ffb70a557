"""Which meterdesk processes are running on this box.

Each long-running process (the gunicorn master, the task consumer) holds an exclusive
``flock`` on ``<STATE_DIR>/run/<name>.lock`` for as long as it lives and writes its pid into
the file.  The kernel drops the lock when the process ends, however it ends, so a crash never
leaves a stale "running" mark behind.  Commands that need a stopped box (``backup restore``,
``db copy``) ask :func:`running`, and the consumer that runs the periodic tasks takes the
``worker`` lock so that a second one refuses to start.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

RUN_DIR = "run"


class AlreadyRunning(RuntimeError):
    """Another process holds the lock."""

    def __init__(self, name: str, pid: int | None) -> None:
        self.name = name
        self.pid = pid
        who = f"pid {pid}" if pid else "another process"
        super().__init__(f"meterdesk {name} is already running ({who})")


@dataclass
class RunLock:
    """A held lock; keep the object alive as long as the process should count as running."""

    name: str
    path: Path
    fd: int

    def release(self) -> None:
        """Drop the lock (the file stays; an unlocked file means "not running")."""
        if self.fd >= 0:
            try:
                os.ftruncate(self.fd, 0)
            except OSError:
                pass
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = -1


def lock_path(state_dir: str | os.PathLike[str], name: str) -> Path:
    return Path(state_dir) / RUN_DIR / f"{name}.lock"


def acquire(state_dir: str | os.PathLike[str], name: str) -> RunLock:
    """Take the ``name`` lock for this process; raise :class:`AlreadyRunning` if it is held."""
    path = lock_path(state_dir, name)
    path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _read_pid(fd)
        os.close(fd)
        raise AlreadyRunning(name, pid) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return RunLock(name=name, path=path, fd=fd)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def running(state_dir: str | os.PathLike[str]) -> dict[str, int | None]:
    """The meterdesk processes holding a lock under ``state_dir``: name -> pid (None when the
    pid could not be read)."""
    run_dir = Path(state_dir) / RUN_DIR
    found: dict[str, int | None] = {}
    if not run_dir.is_dir():
        return found
    for path in sorted(run_dir.glob("*.lock")):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                found[path.stem] = _read_pid(fd)
            else:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
    return found


def describe(processes: dict[str, int | None]) -> str:
    """``web (pid 12), worker (pid 34)``."""
    return ", ".join(f"{name} (pid {pid})" if pid else name for name, pid in processes.items())
