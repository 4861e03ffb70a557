"""Who is working on what: owners and leases of work in progress.

A worker that takes a unit of work (a batch run, a scheduled job) writes its ``owner`` id and a
``lease_until`` on the row, and renews the lease as it makes progress.  The work counts as
abandoned when the lease has run out, or at once when the owner ran on this box and its process
is gone (a consumer killed by a power cut or the OOM killer leaves no one to say so).  The sweep
(``app.domain.sweep``) finds abandoned work and queues it again.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
import uuid

LEASE = dt.timedelta(seconds=60)


def _host() -> str:
    return socket.gethostname()[:40]


def new_owner() -> str:
    """A fresh owner id for one attempt at a unit of work: ``host:pid:nonce``."""
    return f"{_host()}:{os.getpid()}:{threading.get_ident() % 10000:04d}{uuid.uuid4().hex[:8]}"


def owner_alive(owner: str) -> bool:
    """False only when the owner ran on this box and its process no longer exists."""
    host, _, rest = (owner or "").partition(":")
    pid_text = rest.partition(":")[0]
    if not owner or host != _host() or not pid_text.isdigit():
        return True  # another box (or no owner): only its lease can tell
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def abandoned(owner: str, lease_until: dt.datetime | None, now: dt.datetime) -> bool:
    """Work whose claim no longer holds: its lease ran out or its owner's process is gone."""
    if lease_until is None or lease_until <= now:
        return True
    return bool(owner) and not owner_alive(owner)
