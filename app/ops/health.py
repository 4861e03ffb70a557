"""The ``/healthz`` report, and waiting for a restarted box to report healthy.

``/healthz`` needs no login, so it says nothing but status words and ages:

    {"status": "ok", "database": "ok", "queue": "ok", "poll": "ok", "last_poll_age_seconds": 41}

- ``database``: ``ok`` | ``unreachable`` | ``migrations pending`` | ``newer schema``
- ``queue``: ``ok`` | ``unreachable`` | ``missing`` (the huey storage: the SQLite file or Redis)
- ``poll``: ``ok`` | ``stale`` | ``never`` (active meters, none read yet) | ``none`` (no active
  meters); the age is that of the newest successful meter read or gateway answer
- ``status``: ``error`` (HTTP 503) when the database or the queue fails, ``degraded`` when
  polling is stale or has never succeeded, otherwise ``ok`` (both HTTP 200).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

# Polling counts as stale when nothing answered for this many times the shortest poll
# interval in use, plus a margin for one slow collection cycle.
STALE_FACTOR = 3
STALE_MARGIN_S = 120


def queue_status(queue: Any) -> str:
    """Can the huey storage be reached?  A status word."""
    from huey.storage import RedisStorage, SqliteStorage

    storage = queue.storage
    try:
        if isinstance(storage, RedisStorage):
            storage.conn.ping()
        elif isinstance(storage, SqliteStorage):
            filename = storage.filename
            if not os.path.exists(filename):
                return "missing"
            if not os.access(filename, os.R_OK | os.W_OK):
                return "unreachable"
            queue.pending_count()
        else:  # in-memory storage (immediate mode, tests)
            queue.pending_count()
    except Exception:  # noqa: BLE001 - any storage error means unreachable
        return "unreachable"
    return "ok"


def database_status() -> str:
    """Is the bound database reachable and migrated to this version's schema?"""
    from app.schema import runner

    try:
        rows = runner().status()
    except Exception:  # noqa: BLE001 - any driver error means unreachable
        return "unreachable"
    if any(m.applied and m.path is None for m in rows):
        return "newer schema"
    if not rows or any(not m.applied for m in rows):
        return "migrations pending"
    return "ok"


def _as_datetime(value: Any) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value))


def poll_status(config: Mapping[str, Any], now: dt.datetime) -> tuple[str, int | None]:
    """(word, age in seconds of the newest successful read or gateway answer)."""
    from peewee import fn

    from app.models import Gateway, Meter
    from workers.collector import DEFAULT_INTERVALS

    active = Meter.select().where(Meter.status == "active")
    classes = {row[0] for row in active.select(Meter.poll_class).distinct().tuples()}  # type: ignore[index]
    last_meter = _as_datetime(active.select(fn.MAX(Meter.last_seen_at)).scalar())
    enabled = Gateway.enabled == True  # a SQL expression
    last_gateway = _as_datetime(Gateway.select(fn.MAX(Gateway.last_ok_at)).where(enabled).scalar())
    newest = max((t for t in (last_meter, last_gateway) if t is not None), default=None)
    age = max(0, int((now - newest).total_seconds())) if newest is not None else None
    if not classes:
        return "none", age
    if age is None:
        return "never", None
    raw = config.get("POLL_INTERVALS") or {}
    intervals = {
        **DEFAULT_INTERVALS,
        **({str(k): int(v) for k, v in raw.items()} if isinstance(raw, dict) else {}),
    }
    shortest = min(intervals.get(c, intervals["tenant"]) for c in classes)
    return ("stale" if age > STALE_FACTOR * shortest + STALE_MARGIN_S else "ok"), age


def health_report(
    config: Mapping[str, Any], now: dt.datetime | None = None
) -> tuple[dict[str, Any], int]:
    """The /healthz body and HTTP status.  The database must be bound (``app.db.db``)."""
    from app.db import db
    from app.models import utcnow
    from workers.queue import huey

    now = now or utcnow()
    body: dict[str, Any] = {"status": "ok"}
    try:
        db.connect(reuse_if_open=True)
    except Exception:  # noqa: BLE001
        body["database"] = "unreachable"
    else:
        body["database"] = database_status()
    body["queue"] = queue_status(huey)
    if body["database"] == "ok":
        try:
            body["poll"], body["last_poll_age_seconds"] = poll_status(config, now)
        except Exception:  # noqa: BLE001 - a report, never a crash
            body["poll"], body["last_poll_age_seconds"] = "unknown", None
    if body["database"] != "ok" or body["queue"] != "ok":
        body["status"] = "error"
        return body, 503
    if body.get("poll") in ("stale", "never", "unknown"):
        body["status"] = "degraded"
    return body, 200


def health_url(config: Mapping[str, Any]) -> str:
    """Where this box's own /healthz answers, from ``LISTEN`` (a wildcard becomes loopback)."""
    listen = str(config.get("LISTEN") or "127.0.0.1:8000")
    if listen.startswith("unix:"):
        raise ValueError(f"listen = {listen!r}: give --url to reach a unix-socket console")
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::", "*"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/healthz"


def fetch(url: str, timeout: float = 5.0) -> tuple[int | None, dict[str, Any] | str]:
    """GET ``url``: (HTTP status, JSON body) or (None, why it failed)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read().decode() or "{}")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read().decode() or "{}")
        except ValueError:
            return exc.code, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return None, str(reason)


def wait_healthy(
    url: str, timeout: float, interval: float = 1.0
) -> tuple[bool, dict[str, Any] | str]:
    """Poll ``url`` until it answers 200 or ``timeout`` seconds pass; (healthy, last answer)."""
    deadline = time.monotonic() + timeout
    while True:
        status, body = fetch(url, timeout=5.0)
        if status == 200:
            return True, body
        if time.monotonic() >= deadline:
            return False, body
        time.sleep(interval)
