"""The audit trail: one row per money, relay or settings action, written in the same
transaction as the action."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from app.domain.actors import Actor
from app.models import AuditLog


def audit(actor: Actor, action: str, obj: Any, *, now: dt.datetime, **detail: Any) -> None:
    AuditLog.create(
        at=now,
        actor=actor.name,
        action=action,
        object_type=type(obj).__name__.lower() if obj is not None else "",
        object_id=str(getattr(obj, "id", "") or ""),
        detail=json.dumps(detail, ensure_ascii=False, default=str, sort_keys=True),
    )
