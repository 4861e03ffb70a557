"""The audit trail: one row per money, relay or settings action, written in the same
transaction as the action."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from app.db import insert_chunked
from app.domain.actors import Actor
from app.models import AuditLog


def audit_row(
    actor: Actor, action: str, object_type: str, object_id: Any, *, now: dt.datetime, **detail: Any
) -> dict[str, Any]:
    """The fields of one audit row; ``audit`` writes one, ``audit_many`` many at once."""
    return {
        "at": now,
        "actor": actor.name,
        "action": action,
        "object_type": object_type,
        "object_id": str(object_id or ""),
        "detail": json.dumps(detail, ensure_ascii=False, default=str, sort_keys=True),
    }


def audit(actor: Actor, action: str, obj: Any, *, now: dt.datetime, **detail: Any) -> None:
    AuditLog.create(
        **audit_row(
            actor,
            action,
            type(obj).__name__.lower() if obj is not None else "",
            getattr(obj, "id", ""),
            now=now,
            **detail,
        )
    )


def audit_many(rows: list[dict[str, Any]]) -> None:
    """Write audit rows built with ``audit_row`` in a few statements (bulk operations)."""
    insert_chunked(AuditLog, rows)


def field_changes(current: Any, values: dict[str, Any]) -> dict[str, list[Any]]:
    """``{field: [before, after]}`` for the values that differ from ``current``'s: the detail
    of an ``*.update`` audit row (empty: nothing to write)."""
    return {
        name: [getattr(current, name), value]
        for name, value in values.items()
        if getattr(current, name) != value
    }
