"""Run locks (which meterdesk processes run) and the worker command."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from app.ops import runlock
from app.ops.worker import WorkerError, run_worker


def test_a_held_lock_is_seen_with_its_pid_and_refuses_a_second_holder(tmp_path):
    assert runlock.running(tmp_path) == {}
    lock = runlock.acquire(tmp_path, "worker")
    assert runlock.running(tmp_path) == {"worker": os.getpid()}
    with pytest.raises(runlock.AlreadyRunning, match=f"pid {os.getpid()}"):
        runlock.acquire(tmp_path, "worker")
    lock.release()
    assert runlock.running(tmp_path) == {}
    assert (tmp_path / "run").stat().st_mode & 0o777 == 0o750


def test_a_lock_goes_away_with_a_killed_process(tmp_path):
    code = (
        "import sys, time; from app.ops import runlock; "
        f"runlock.acquire({str(tmp_path)!r}, 'web'); print('held', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        assert runlock.running(tmp_path) == {"web": proc.pid}
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert runlock.running(tmp_path) == {}


def test_the_worker_refuses_immediate_mode_and_a_second_periodic_consumer(tmp_path, monkeypatch):
    from workers import huey

    assert huey.immediate  # the test suite's queue
    with pytest.raises(WorkerError, match="immediate mode"):
        run_worker({"STATE_DIR": str(tmp_path)})
    monkeypatch.setattr(huey, "immediate", False)
    lock = runlock.acquire(tmp_path, "worker")
    try:
        with pytest.raises(WorkerError, match="only one consumer per box runs the periodic tasks"):
            run_worker({"STATE_DIR": str(tmp_path)})
    finally:
        lock.release()
