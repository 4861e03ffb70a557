"""Monthly bills as Excel workbooks (openpyxl).

Money is written as exact ``Decimal`` yuan made from integer fen (never float arithmetic) and
formatted ``0.00``; energy as kWh (``0.00``) or m3 (``0.000``).  Headings go through gettext, so
the workbook follows the console language.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from decimal import Decimal

from flask_babel import gettext as _
from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.worksheet.worksheet import Worksheet

from app.domain.bills import Bill
from app.operations.labels import op_label as label

MONEY = "0.00"
KWH = "0.00"
M3 = "0.000"


def yuan(fen: int) -> Decimal:
    """Integer fen -> exact Decimal yuan (12345 -> Decimal('123.45'))."""
    return Decimal(int(fen)).scaleb(-2)


def energy(units: int, kind: str) -> tuple[Decimal, str]:
    """Meter units (0.01 kWh or litres) -> (Decimal kWh or m3, number format)."""
    if kind == "water":
        return Decimal(int(units)).scaleb(-3), M3
    return Decimal(int(units)).scaleb(-2), KWH


def _row(
    ws: Worksheet, values: Sequence, formats: dict[int, str] | None = None, bold: bool = False
) -> None:
    ws.append(list(values))
    row = ws.max_row
    for col, fmt in (formats or {}).items():
        ws.cell(row=row, column=col).number_format = fmt
    if bold:
        for cell in ws[row]:
            cell.font = Font(bold=True)


def _summary_headings() -> list[str]:
    return [
        _("Account"),
        _("Tenant"),
        _("Room"),
        _("Opening balance"),
        _("Sales"),
        _("Electricity"),
        _("Water"),
        _("Apportionment"),
        _("Rent and fees"),
        _("Reversals"),
        _("Other"),
        _("Closing balance"),
    ]


def _summary_values(bill: Bill) -> list:
    return [
        bill.number,
        bill.tenant,
        bill.room,
        yuan(bill.opening_fen),
        yuan(bill.sales_fen),
        yuan(bill.electricity_fen),
        yuan(bill.water_fen),
        yuan(bill.apportionment_fen),
        yuan(bill.fees_fen),
        yuan(bill.reversals_fen),
        yuan(bill.other_fen),
        yuan(bill.closing_fen),
    ]


SUMMARY_MONEY = {i: MONEY for i in range(4, 13)}


def _write_bill(ws: Worksheet, bill: Bill) -> None:
    ws.title = bill.number[:31]
    _row(ws, [_("Monthly bill"), bill.month_label], bold=True)
    _row(ws, [_("Property"), bill.property_name])
    _row(ws, [_("Account"), bill.number])
    _row(ws, [_("Tenant"), bill.tenant])
    _row(ws, [_("Room"), bill.room])
    _row(ws, [_("Period"), f"{bill.period_start} – {bill.period_end}"])
    ws.append([])
    _row(ws, [_("Summary"), _("Amount (yuan)")], bold=True)
    for text, fen in (
        (_("Opening balance"), bill.opening_fen),
        (_("Sales"), bill.sales_fen),
        (_("Electricity"), -bill.electricity_fen),
        (_("Water"), -bill.water_fen),
        (_("Apportionment"), -bill.apportionment_fen),
        (_("Rent and fees"), -bill.fees_fen),
        (_("Reversals"), bill.reversals_fen),
        (_("Other"), bill.other_fen),
        (_("Closing balance"), bill.closing_fen),
    ):
        _row(ws, [text, yuan(fen)], {2: MONEY})
    ws.append([])
    _row(ws, [_("Usage"), _("Type"), _("Rate"), _("Quantity"), _("Rated charge (yuan)")], bold=True)
    for m in bill.meters:
        qty, fmt = energy(m.consumption, m.kind)
        _row(ws, [m.serial, label(m.kind), _("Total"), qty, yuan(m.rated_fen)], {4: fmt, 5: MONEY})
        for rate, units in m.rate_units.items():
            qty, fmt = energy(units, m.kind)
            _row(ws, [m.serial, label(m.kind), label(rate), qty], {4: fmt})
    if bill.shared:
        ws.append([])
        _row(
            ws,
            [
                _("Apportionment"),
                _("Month"),
                _("Rule"),
                _("Share"),
                _("Quantity"),
                _("Amount (yuan)"),
            ],
            bold=True,
        )
        for s in bill.shared:
            qty, fmt = energy(s.units, s.utility)
            share = f"{s.weight} / {s.weight_total}"
            _row(
                ws,
                [s.group, s.month, label(s.rule), share, qty, yuan(s.amount_fen)],
                {5: fmt, 6: MONEY},
            )
    ws.append([])
    _row(ws, [_("Time"), _("Kind"), _("Memo"), _("Amount (yuan)")], bold=True)
    for line in bill.lines:
        _row(ws, [line.at, label(line.kind), line.memo, yuan(line.amount_fen)], {4: MONEY})
    ws.column_dimensions["A"].width = 22
    ws.column_dimensions["C"].width = 34


def _save(wb: Workbook) -> bytes:
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def bill_workbook(bill: Bill) -> bytes:
    """One account's bill."""
    wb = Workbook()
    _write_bill(wb.active, bill)
    return _save(wb)


def bills_workbook(bills: Sequence[Bill], title: str) -> bytes:
    """All accounts of a month: a summary row per account, usage per meter and rate, and every
    ledger line."""
    wb = Workbook()
    ws = wb.active
    ws.title = _("Summary")[:31]
    _row(ws, [title], bold=True)
    _row(ws, _summary_headings(), bold=True)
    for bill in bills:
        _row(ws, _summary_values(bill), SUMMARY_MONEY)
    totals = [_("Total"), "", ""] + [
        yuan(sum(getattr(b, f) for b in bills))
        for f in (
            "opening_fen",
            "sales_fen",
            "electricity_fen",
            "water_fen",
            "apportionment_fen",
            "fees_fen",
            "reversals_fen",
            "other_fen",
            "closing_fen",
        )
    ]
    _row(ws, totals, SUMMARY_MONEY, bold=True)
    usage = wb.create_sheet(_("Usage")[:31])
    _row(
        usage,
        [_("Account"), _("Meter"), _("Type"), _("Rate"), _("Quantity"), _("Rated charge (yuan)")],
        bold=True,
    )
    for bill in bills:
        for m in bill.meters:
            qty, fmt = energy(m.consumption, m.kind)
            _row(
                usage,
                [bill.number, m.serial, label(m.kind), _("Total"), qty, yuan(m.rated_fen)],
                {5: fmt, 6: MONEY},
            )
            for rate, units in m.rate_units.items():
                qty, fmt = energy(units, m.kind)
                _row(usage, [bill.number, m.serial, label(m.kind), label(rate), qty], {5: fmt})
    lines = wb.create_sheet(_("Ledger lines")[:31])
    _row(lines, [_("Account"), _("Time"), _("Kind"), _("Memo"), _("Amount (yuan)")], bold=True)
    for bill in bills:
        for line in bill.lines:
            _row(
                lines,
                [bill.number, line.at, label(line.kind), line.memo, yuan(line.amount_fen)],
                {5: MONEY},
            )
    return _save(wb)
