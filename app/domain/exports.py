"""Lists as Excel workbooks: meters, accounts, sales, readings.

Every function takes a peewee query (or its filters) and returns the .xlsx bytes, written
with openpyxl's write-only workbook so that a long list streams row by row.  Money is exact
``Decimal`` yuan made from integer fen and shown with two decimals; energy is kWh (0.01) or
m3 (0.001) with the unit in the heading; times are local to the property.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from peewee import JOIN

from app import clock
from app.i18n import label, tr
from app.models import (
    Account,
    Building,
    Floor,
    Gateway,
    Meter,
    Property,
    Reading,
    Room,
    Sale,
    Tenant,
)

MONEY = "0.00"
KWH = "0.00"
M3 = "0.000"
WHEN = "yyyy-mm-dd hh:mm"
READINGS_LIMIT = 200_000
UTC = dt.UTC


def yuan(fen: int | None) -> Decimal | None:
    """Integer fen -> exact Decimal yuan (12345 -> Decimal('123.45'))."""
    return None if fen is None else Decimal(int(fen)).scaleb(-2)


def kwh(cwh: int | None) -> Decimal | None:
    return None if cwh is None else Decimal(int(cwh)).scaleb(-2)


def m3(litres: int | None) -> Decimal | None:
    return None if litres is None else Decimal(int(litres)).scaleb(-3)


def local(when: dt.datetime | None, where: Any) -> dt.datetime | None:
    """A stored UTC datetime as the naive local time of ``where`` (Excel has no time zones)."""
    return None if when is None else clock.local_naive(when, where)


class _Zones:
    """Each row's property zone (rows of several properties can share one workbook)."""

    def __init__(self) -> None:
        self.by_id: dict[int, ZoneInfo] = {}

    def __call__(self, property_id: int) -> ZoneInfo:
        if property_id not in self.by_id:
            prop = Property.get_or_none(Property.id == property_id)
            self.by_id[property_id] = clock.zone(prop)
        return self.by_id[property_id]


class _Sheet:
    """A write-only sheet with a bold heading row and per-column number formats."""

    def __init__(
        self,
        wb: Workbook,
        title: str,
        headings: Sequence[str],
        formats: dict[int, str],
        widths: dict[int, int] | None = None,
    ):
        self.ws = wb.create_sheet(title[:31])
        self.formats = formats
        for i, text in enumerate(headings):
            self.ws.column_dimensions[get_column_letter(i + 1)].width = (widths or {}).get(
                i, max(12, len(text) + 4)
            )
        self.ws.freeze_panes = "A2"
        bold = Font(bold=True)
        row = []
        for text in headings:
            cell = WriteOnlyCell(self.ws, value=text)
            cell.font = bold
            row.append(cell)
        self.ws.append(row)

    def append(self, values: Sequence[Any]) -> None:
        row = []
        for i, value in enumerate(values):
            fmt = self.formats.get(i)
            if fmt is None and not isinstance(value, dt.datetime):
                row.append(value)
                continue
            cell = WriteOnlyCell(self.ws, value=value)
            cell.number_format = fmt or WHEN
            row.append(cell)
        self.ws.append(row)


def _workbook() -> Workbook:
    return Workbook(write_only=True)


def _save(wb: Workbook) -> bytes:
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def meters_workbook(query: Iterable[Meter]) -> bytes:
    """Meters with their place, account and last reading.  ``query`` must select Meter with
    Account, Tenant, Room, Floor, Building and Gateway joined (``meters_query``)."""
    zones = _Zones()
    wb = _workbook()
    sheet = _Sheet(
        wb,
        tr("Meters"),
        [
            tr("Serial"),
            tr("Kind"),
            tr("Protocol"),
            tr("Address"),
            tr("Gateway"),
            tr("Building"),
            tr("Floor"),
            tr("Room"),
            tr("Account"),
            tr("Tenant"),
            tr("Status"),
            tr("Supply"),
            tr("Online"),
            tr("Last reading (kWh)"),
            tr("Last reading (m³)"),
            tr("Last read at"),
            tr("Multiplier"),
        ],
        {13: KWH, 14: M3, 15: WHEN},
    )
    for m in query:
        room = m.room if m.room_id else None
        acct = m.account if m.account_id else None
        reading = m.last_total
        sheet.append(
            [
                m.serial,
                label(m.kind),
                m.protocol,
                m.address,
                m.gateway.name if m.gateway_id else "",
                room.floor.building.name if room else "",
                room.floor.name if room else "",
                room.number if room else "",
                acct.number if acct else "",
                acct.tenant.name if acct else "",
                label(acct.status if acct and m.status == "active" else m.status),
                label(m.relay_desired),
                tr("Yes") if m.online else tr("No"),
                kwh(reading) if m.kind == "electricity" else None,
                m3(reading) if m.kind == "water" else None,
                local(m.last_read_at, zones(m.property_id)),
                m.multiplier,
            ]
        )
    return _save(wb)


def meters_query(*, q: str = "", kind: str = "", status: str = ""):
    query = (
        Meter.select(Meter, Account, Tenant, Room, Floor, Building, Gateway)
        .join(Account, JOIN.LEFT_OUTER)
        .join(Tenant, JOIN.LEFT_OUTER)
        .switch(Meter)
        .join(Room, JOIN.LEFT_OUTER)
        .join(Floor, JOIN.LEFT_OUTER)
        .join(Building, JOIN.LEFT_OUTER)
        .switch(Meter)
        .join(Gateway, JOIN.LEFT_OUTER)
    )
    q = q.strip()
    if q:
        query = query.where(
            Meter.serial.contains(q)
            | Room.number.contains(q)
            | Account.number.contains(q)
            | Tenant.name.contains(q)
        )
    if kind in ("electricity", "water"):
        query = query.where(Meter.kind == kind)
    if status in ("stock", "active", "removed"):
        query = query.where(Meter.status == status)
    return query.order_by(Meter.serial)


def accounts_workbook(query: Iterable[Account]) -> bytes:
    """Accounts with tenant, room and balance.  ``query`` selects Account with Tenant,
    LedgerAccount and Room joined (the accounts list's query)."""
    zones = _Zones()
    wb = _workbook()
    sheet = _Sheet(
        wb,
        tr("Accounts"),
        [
            tr("Account"),
            tr("Tenant"),
            tr("Phones"),
            tr("Room"),
            tr("Status"),
            tr("Balance (yuan)"),
            tr("Alarm 1 (yuan)"),
            tr("Alarm 2 (yuan)"),
            tr("Opened at"),
            tr("Closed at"),
        ],
        {5: MONEY, 6: MONEY, 7: MONEY, 8: WHEN, 9: WHEN},
    )
    for a in query:
        sheet.append(
            [
                a.number,
                a.tenant.name,
                a.tenant.phones,
                a.room.number if a.room_id else "",
                label(a.status),
                yuan(a.wallet.balance_fen),
                yuan(a.alarm1_fen),
                yuan(a.alarm2_fen),
                local(a.opened_at, zones(a.property_id)),
                local(a.closed_at, zones(a.property_id)),
            ]
        )
    return _save(wb)


def sales_query(*, start: dt.datetime, end: dt.datetime):
    """Sales with ``start <= created_at < end`` (UTC)."""
    return (
        Sale.select(Sale, Account, Tenant)
        .join(Account)
        .join(Tenant)
        .where((Sale.created_at >= start) & (Sale.created_at < end))
        .order_by(Sale.created_at, Sale.id)
    )


def sales_workbook(query: Iterable[Sale]) -> bytes:
    zones = _Zones()
    wb = _workbook()
    sheet = _Sheet(
        wb,
        tr("Sales"),
        [
            tr("Receipt"),
            tr("Time"),
            tr("Account"),
            tr("Tenant"),
            tr("Utility"),
            tr("Payment method"),
            tr("Amount (yuan)"),
            tr("Service fee (yuan)"),
            tr("Net credit (yuan)"),
            tr("Balance after (yuan)"),
            tr("Operator"),
            tr("Reversed at"),
            tr("Reversed by"),
            tr("Reason"),
        ],
        {1: WHEN, 6: MONEY, 7: MONEY, 8: MONEY, 9: MONEY, 11: WHEN},
    )
    for s in query:
        sheet.append(
            [
                s.receipt_no or "",
                local(s.created_at, zones(s.property_id)),
                s.account.number,
                s.account.tenant.name,
                label(s.utility),
                label(s.method),
                yuan(s.amount_fen),
                yuan(s.fee_fen),
                yuan(s.net_fen),
                yuan(s.balance_after_fen),
                s.operator,
                local(s.reversed_at, zones(s.property_id)),
                s.reversed_by,
                s.reverse_reason,
            ]
        )
    return _save(wb)


def readings_query(*, start: dt.datetime, end: dt.datetime, meter: Meter | None = None):
    query = (
        Reading.select(Reading, Meter)
        .join(Meter)
        .where((Reading.read_at >= start) & (Reading.read_at < end))
    )
    if meter is not None:
        query = query.where(Reading.meter == meter)
    return query.order_by(Meter.serial, Reading.read_at).limit(READINGS_LIMIT + 1)


def readings_workbook(query: Iterable[Reading], *, with_money: bool = True) -> bytes:
    """Readings (raw registers, consumption after the multiplier), at most READINGS_LIMIT rows;
    a last row says so when the list was cut."""
    zones = _Zones()
    wb = _workbook()
    headings = [
        tr("Meter"),
        tr("Kind"),
        tr("Read at"),
        tr("Total (kWh)"),
        tr("Total (m³)"),
        tr("Consumption (kWh)"),
        tr("Consumption (m³)"),
        tr("Status"),
        tr("Source"),
    ]
    formats = {2: WHEN, 3: KWH, 4: M3, 5: KWH, 6: M3}
    if with_money:
        headings.append(tr("Charge (yuan)"))
        formats[9] = MONEY
    sheet = _Sheet(wb, tr("Readings"), headings, formats)
    n = 0
    for r in query.iterator() if hasattr(query, "iterator") else query:
        n += 1
        if n > READINGS_LIMIT:
            sheet.append(
                [
                    tr(
                        "Only the first %(n)s readings are listed; choose a shorter period or one meter.",
                        n=READINGS_LIMIT,
                    )
                ]
            )
            break
        water = r.meter.kind == "water"
        row = [
            r.meter.serial,
            label(r.meter.kind),
            local(r.read_at, zones(r.meter.property_id)),
            None if water else kwh(r.total),
            m3(r.total) if water else None,
            None if water else kwh(r.consumption),
            m3(r.consumption) if water else None,
            label(r.status),
            r.source,
        ]
        if with_money:
            row.append(yuan(r.charge_fen))
        sheet.append(row)
    return _save(wb)
