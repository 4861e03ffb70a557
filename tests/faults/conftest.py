"""Fault tests: the real task consumer (``meterdesk worker``) in its own process, killed with
SIGKILL at seeded random points while it works, then started again.

The queue is the consumer's own (huey on SQLite under the test's state directory, or the Redis
named by MD_TEST_REDIS_URL); the database is the test's (SQLite file or MD_TEST_DATABASE_URL).
MD_FAULT_SEED chooses the kill points (printed with each test's measurements) so that a failure
can be replayed.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from workers.queue import make_huey

REDIS_URL = os.environ.get("MD_TEST_REDIS_URL", "")
SEED = int(os.environ.get("MD_FAULT_SEED", "15"))


class Consumer:
    """``meterdesk worker`` over the test's database, started and killed as a box would."""

    def __init__(self, database_url: str, state_dir: Path, log: Path):
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MD_")}
        self.env.update(
            MD_CONFIG_FILE="/nonexistent/meterdesk-test.toml",
            MD_DATABASE_URL=database_url,
            MD_STATE_DIR=str(state_dir),
            MD_SECRET_KEY="fault-test",
        )
        if REDIS_URL:
            self.env["MD_REDIS_URL"] = REDIS_URL
        self.state_dir = state_dir
        self.log = log
        self.proc: subprocess.Popen | None = None
        self.kills = 0

    def queue(self):
        """A producer for the consumer's queue (what the web app uses)."""
        return make_huey(
            {"STATE_DIR": str(self.state_dir), "REDIS_URL": REDIS_URL, "HUEY_IMMEDIATE": False}
        )

    def enqueue(self, task) -> None:
        """Put a task (``some_task.s(args)``) on the consumer's queue, as the web app does."""
        from workers import huey

        self.queue().storage.enqueue(huey.serialize_task(task), task.priority)

    def start(self) -> None:
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "from app.cli import main; main()", "worker", "-w", "2"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=Path(__file__).resolve().parents[2],
            )

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed (a power cut, the OOM killer)."""
        assert self.proc is not None and self.proc.poll() is None, self.tail()
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.kills += 1

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def tail(self) -> str:
        try:
            return self.log.read_text()[-3000:]
        except OSError:
            return ""


@pytest.fixture
def consumer(database_url, tmp_path):
    state = tmp_path / "worker-state"
    state.mkdir()
    c = Consumer(database_url, state, tmp_path / "worker.log")
    if REDIS_URL:
        c.queue().flush()
    yield c
    c.stop()
    if REDIS_URL:
        c.queue().flush()


@pytest.fixture
def rng(request) -> random.Random:
    return random.Random(f"{SEED}:{request.node.name}")


def wait_for(cond: Callable[[], bool], *, timeout: float, what: str, consumer=None) -> float:
    """Poll ``cond`` until true; returns the seconds it took (fails after ``timeout``)."""
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            tail = consumer.tail() if consumer is not None else ""
            pytest.fail(f"{what}: not reached within {timeout:.0f} s\n{tail}")
        time.sleep(0.005)
    return time.monotonic() - start
