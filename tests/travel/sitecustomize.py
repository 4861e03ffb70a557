"""Moves the wall clock of every Python process of a test run (pytest and each subprocess it
starts: workers, CLI, servers) to the instant named by ``MD_TEST_NOW``, e.g.
``2027-01-01T00:30:00+08:00``; time then runs on from there.

Loaded through ``PYTHONPATH=tests/travel`` (see ``make test-at``).  The first process fixes
the offset from the real clock in ``MD_TEST_CLOCK_OFFSET`` so that the processes it starts
share one moved clock instead of each starting again at ``MD_TEST_NOW``.
"""

import datetime as _dt
import os as _os

_target = _os.environ.get("MD_TEST_NOW")
if _target:
    import time_machine as _time_machine

    _offset = _os.environ.get("MD_TEST_CLOCK_OFFSET")
    if _offset is None:
        _when = _dt.datetime.fromisoformat(_target)
        if _when.tzinfo is None:
            raise SystemExit("MD_TEST_NOW needs an offset, e.g. 2027-01-01T00:30:00+08:00")
        _offset = str((_when - _dt.datetime.now(_dt.UTC)).total_seconds())
        _os.environ["MD_TEST_CLOCK_OFFSET"] = _offset
    _start = _dt.datetime.now(_dt.UTC) + _dt.timedelta(seconds=float(_offset))
    _time_machine.travel(_start, tick=True).start()
