"""Small helpers for the scheduled-operations tests: local (Asia/Shanghai) times as naive UTC,
wallet balances, and reading a meter."""

from __future__ import annotations

import datetime as dt

from app.domain.actors import SYSTEM
from app.domain.readings import apply_reading
from app.models import LedgerAccount

CST = dt.timedelta(hours=8)


def local(text: str) -> dt.datetime:
    """'2026-11-02 13:00' Asia/Shanghai -> naive UTC."""
    return dt.datetime.fromisoformat(text) - CST


def balance(account) -> int:
    return LedgerAccount.get_by_id(account.wallet_id).balance_fen


def system_balance(prop, code: str) -> int:
    return LedgerAccount.get(
        (LedgerAccount.property == prop) & (LedgerAccount.code == code)
    ).balance_fen


def read(meter, at: dt.datetime, total: int, **kw):
    return apply_reading(meter, read_at=at, total=total, actor=SYSTEM, now=at, **kw)
