"""Start and stop services the way their systemd unit files say, without systemd.

For tests (and as ``upgrade.sh --service-ctl``): reads ``Environment=``,
``WorkingDirectory=``, ``ExecStartPre=``, ``ExecStart=``, ``KillSignal=`` and
``TimeoutStopSec=`` from the unit and runs the very command lines, with the environment
systemd would give them (nothing inherited but PATH).  Pids live in ``RUN_DIR/<unit>.pid``,
output in ``RUN_DIR/<unit>.log``.

    python unitrun.py --unit-dir DIR --run-dir DIR start|stop|status UNIT...
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class Unit:
    name: str
    environment: dict[str, str] = field(default_factory=dict)
    working_directory: str = "/"
    exec_start_pre: list[list[str]] = field(default_factory=list)
    exec_start: list[str] = field(default_factory=list)
    kill_signal: int = signal.SIGTERM
    kill_mode: str = "control-group"
    timeout_stop: float = 90.0
    settings: dict[str, list[str]] = field(default_factory=dict)


def parse_unit(path: Path) -> Unit:
    """The [Service] settings of a unit file that matter for running it."""
    unit = Unit(name=path.name)
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, _, value = line.partition("=")
        key, value = key.strip(), value.strip()
        unit.settings.setdefault(f"{section}.{key}", []).append(value)
        if section != "Service":
            continue
        if key == "Environment":
            for item in shlex.split(value):
                name, _, val = item.partition("=")
                unit.environment[name] = val
        elif key == "WorkingDirectory":
            unit.working_directory = value.lstrip("-")
        elif key == "ExecStartPre":
            unit.exec_start_pre.append(shlex.split(value))
        elif key == "ExecStart":
            unit.exec_start = shlex.split(value)
        elif key == "KillSignal":
            unit.kill_signal = getattr(signal, value)
        elif key == "KillMode":
            unit.kill_mode = value
        elif key == "TimeoutStopSec":
            unit.timeout_stop = float(value.rstrip("s"))
    return unit


def _env(unit: Unit) -> dict[str, str]:
    # systemd gives a service with User= that user's home: the state directory here.
    return {
        "PATH": BASE_PATH,
        "LANG": "C.UTF-8",
        "HOME": unit.working_directory,
        **unit.environment,
    }


def _pid_file(run_dir: Path, name: str) -> Path:
    return run_dir / f"{name}.pid"


def _alive(pid: int) -> bool:
    """Running (a zombie counts as gone: PID 1 in a container may never reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    if stat.rpartition(")")[2].split()[0] == "Z":
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        return False
    return True


def _as_user(unit: Unit, argv: list[str], as_user: bool) -> list[str]:
    """With ``as_user`` (and root), run as the unit's User= like systemd does."""
    user = unit.settings.get("Service.User", [""])[-1]
    if as_user and user and os.geteuid() == 0:
        return ["runuser", "-u", user, "--", *argv]
    return argv


def start(unit: Unit, run_dir: Path, timeout_pre: float = 60.0, as_user: bool = False) -> int:
    """Run the ExecStartPre commands (each must succeed unless prefixed '-'), then start
    ExecStart in its own session; return its pid."""
    run_dir.mkdir(parents=True, exist_ok=True)
    log = open(run_dir / f"{unit.name}.log", "ab")
    for argv in unit.exec_start_pre:
        optional = argv[0].startswith("-")
        cmd = _as_user(unit, [argv[0].lstrip("-"), *argv[1:]], as_user)
        result = subprocess.run(
            cmd,
            env=_env(unit),
            cwd=unit.working_directory,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=timeout_pre,
        )
        if result.returncode != 0 and not optional:
            log.close()
            raise RuntimeError(
                f"{unit.name}: ExecStartPre {' '.join(cmd)} exited {result.returncode}"
            )
    proc = subprocess.Popen(
        _as_user(unit, unit.exec_start, as_user),
        env=_env(unit),
        cwd=unit.working_directory,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    _pid_file(run_dir, unit.name).write_text(f"{proc.pid}\n")
    return proc.pid


def stop(unit: Unit, run_dir: Path, timeout: float | None = None) -> bool:
    """Send the unit's KillSignal to its process group, wait up to TimeoutStopSec (or
    ``timeout``), then SIGKILL.  True when it stopped within the time."""
    pid_file = _pid_file(run_dir, unit.name)
    if not pid_file.exists():
        return True
    pid = int(pid_file.read_text())
    graceful = True
    try:
        # KillMode=mixed: the signal to the main process only (gunicorn's master stops its
        # workers); otherwise to every process of the unit.
        if unit.kill_mode == "mixed":
            os.kill(pid, unit.kill_signal)
        else:
            os.killpg(pid, unit.kill_signal)
    except ProcessLookupError:
        pid_file.unlink(missing_ok=True)
        return True
    deadline = time.monotonic() + (unit.timeout_stop if timeout is None else timeout)
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        graceful = False
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    pid_file.unlink(missing_ok=True)
    return graceful


def running_pid(unit_name: str, run_dir: Path) -> int | None:
    pid_file = _pid_file(run_dir, unit_name)
    if not pid_file.exists():
        return None
    pid = int(pid_file.read_text())
    return pid if _alive(pid) else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unit-dir", required=True, type=Path)
    parser.add_argument("--run-dir", required=True, type=Path)
    parser.add_argument("--as-user", action="store_true", help="as root: run as the unit's User=")
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("units", nargs="+")
    args = parser.parse_args(argv)
    status = 0
    for name in args.units:
        unit = parse_unit(args.unit_dir / name)
        if args.action == "start":
            try:
                pid = start(unit, args.run_dir, as_user=args.as_user)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                print(exc, file=sys.stderr)
                return 1
            time.sleep(0.5)
            if running_pid(name, args.run_dir) is None:
                print(
                    f"{name} exited at once (see {args.run_dir / (name + '.log')})", file=sys.stderr
                )
                return 1
            print(f"started {name} (pid {pid})")
        elif args.action == "stop":
            print(f"stopped {name}" if stop(unit, args.run_dir) else f"killed {name}")
        else:
            pid = running_pid(name, args.run_dir)
            print(f"{name}: running (pid {pid})" if pid else f"{name}: stopped")
            status |= 0 if pid else 3
    return status


if __name__ == "__main__":
    sys.exit(main())
