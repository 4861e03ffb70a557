"""What the meters grid shows: one display status per meter, and the filtered, ordered query
behind the grid, its export and "select all matching the filter".

Display status, first match wins:
  not_opened (未开户)  not in service, or no live account
  offline (失联)       the collector marked it offline (missed ``offline_after`` polls in a row)
  kept_on (保电)       keep-power active
  opened / alarm1 / alarm2 / arrears   the account's balance tier
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from peewee import JOIN, Expression

from app.domain.status import AWAITING, LIVE, keep_power_active
from app.models import Account, Building, Floor, Meter, Room, Tenant

GRID_STATUSES = (
    "opened",
    "alarm1",
    "alarm2",
    "arrears",
    "awaiting",
    "not_opened",
    "offline",
    "kept_on",
)
# Accounts whose meters are in service: the balance tiers, and opened awaiting a first payment.
SERVING = frozenset(LIVE | {AWAITING})
KINDS = ("electricity", "water")


def display_status(meter: Meter, account_status: str | None, now: dt.datetime) -> str:
    if meter.status != "active" or account_status not in SERVING:
        return "not_opened"
    if not meter.online:
        return "offline"
    if keep_power_active(meter, now):
        return "kept_on"
    return str(account_status)


def _live() -> Expression:
    return (Meter.status == "active") & Account.status.in_(sorted(SERVING))


def _kept(now: dt.datetime) -> Expression:
    return (Meter.keep_power == True) & (
        Meter.keep_power_until.is_null() | (Meter.keep_power_until > now)
    )


def _status_clause(status: str, now: dt.datetime) -> Expression:
    if status == "not_opened":
        return (
            (Meter.status != "active")
            | Meter.account.is_null()
            | Account.status.not_in(sorted(SERVING))
        )
    if status == "offline":
        return _live() & (Meter.online == False)
    if status == "kept_on":
        return _live() & (Meter.online == True) & _kept(now)
    return _live() & (Meter.online == True) & ~_kept(now) & (Account.status == status)


@dataclass(frozen=True)
class GridFilter:
    q: str = ""
    building: int | None = None
    status: str = ""
    kind: str = ""

    @classmethod
    def from_args(cls, args) -> GridFilter:
        building = args.get("building", "")
        status = args.get("status", "")
        kind = args.get("kind", "")
        return cls(
            q=(args.get("q", "") or "").strip()[:60],
            building=int(building) if str(building).isdigit() else None,
            status=status if status in GRID_STATUSES else "",
            kind=kind if kind in KINDS else "",
        )

    def as_args(self) -> dict[str, str]:
        return {
            "q": self.q,
            "building": str(self.building or ""),
            "status": self.status,
            "kind": self.kind,
        }


def grid_query(flt: GridFilter, *, now: dt.datetime, property_ids: set[int] | None = None):
    """Meters with their account, tenant and room, filtered, ordered by serial (unique index);
    ``property_ids`` limits them to the properties a user may see (``None``: all)."""
    query = (
        Meter.select(Meter, Account, Tenant, Room, Floor, Building)
        .join(Account, JOIN.LEFT_OUTER)
        .join(Tenant, JOIN.LEFT_OUTER)
        .switch(Meter)
        .join(Room, JOIN.LEFT_OUTER)
        .join(Floor, JOIN.LEFT_OUTER)
        .join(Building, JOIN.LEFT_OUTER)
    )
    if property_ids is not None:
        query = query.where(Meter.property.in_(sorted(property_ids) or [0]))
    if flt.q:
        like = f"%{flt.q}%"
        query = query.where(
            Meter.serial.contains(flt.q)
            | Room.number.contains(flt.q)
            | Account.number.contains(flt.q)
            | (Tenant.name**like)
        )
    if flt.building:
        query = query.where(Floor.building == flt.building)
    if flt.kind:
        query = query.where(Meter.kind == flt.kind)
    if flt.status:
        query = query.where(_status_clause(flt.status, now))
    return query.order_by(Meter.serial)


def matching_ids(
    flt: GridFilter, *, now: dt.datetime, limit: int = 20000, property_ids: set[int] | None = None
) -> list[int]:
    query = grid_query(flt, now=now, property_ids=property_ids)
    return [mid for (mid,) in query.select(Meter.id).limit(limit).tuples()]
