"""The tariff editor's form: what the rows hold, turning them into a domain spec with a message
per field, the 24-hour bar of a time-of-use day, and the effective date as a UTC instant.

Prices are typed in yuan per kWh / m3 with up to four decimals and become integers in 1/10000
yuan (``money.parse_price``, Decimal only).  Field keys are the domain's (``price``,
``prices.peak``, ``segments.2.start``, ``blocks.1.upto`` ...) so that a ``ValidationError`` from
``validate_spec`` lands next to the same input as the form's own checks.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from flask_babel import gettext as _
from werkzeug.datastructures import MultiDict

from app import clock
from app.domain.errors import ValidationError
from app.domain.money import format_price, parse_price
from app.domain.tariffs import KINDS, RATES, validate_spec

DAY = 24 * 60
MAX_ROWS = 24


def _text(value: Any) -> str:
    return str(value if value is not None else "").strip()


# ---------------------------------------------------------------- editor state


def default_state(kind: str) -> dict[str, Any]:
    return {
        "kind": kind if kind in KINDS else "flat",
        "price": "",
        "prices": {rate: "" for rate in RATES},
        "segments": [{"start": "00:00", "rate": "valley"}, {"start": "08:00", "rate": "flat"}],
        "blocks": [{"upto": "", "price": ""}, {"upto": "", "price": ""}],
    }


def state_from_form(form: MultiDict) -> dict[str, Any]:
    """The editor's rows exactly as typed (for re-rendering with messages)."""
    state = default_state(_text(form.get("kind")))
    state["price"] = _text(form.get("price"))
    state["prices"] = {rate: _text(form.get(f"price_{rate}")) for rate in RATES}
    starts, rates = form.getlist("seg_start"), form.getlist("seg_rate")
    if starts or rates:
        state["segments"] = [
            {"start": _text(s), "rate": _text(r)}
            for s, r in zip(starts, rates + [""] * (len(starts) - len(rates)), strict=False)
        ][:MAX_ROWS]
    uptos, prices = form.getlist("block_upto"), form.getlist("block_price")
    if uptos or prices:
        state["blocks"] = [
            {"upto": _text(u), "price": _text(p)}
            for u, p in zip(uptos, prices + [""] * (len(uptos) - len(prices)), strict=False)
        ][:MAX_ROWS]
    return state


def state_from_spec(kind: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """A saved version's spec as editor rows (to start a new version from the current one)."""
    state = default_state(kind)
    if kind == "flat":
        state["price"] = format_price(spec["price"])
    elif kind == "tou":
        state["prices"] = {
            r: format_price(spec["prices"][r]) if r in spec["prices"] else "" for r in RATES
        }
        state["segments"] = [{"start": s["start"], "rate": s["rate"]} for s in spec["segments"]]
    else:
        state["blocks"] = [
            {"upto": "" if b["upto"] is None else str(b["upto"]), "price": format_price(b["price"])}
            for b in spec["blocks"]
        ]
    return state


def edit_rows(state: dict[str, Any], op: str) -> None:
    """Add or remove a segment / block row (``add_segment``, ``remove_segment-2`` ...)."""
    action, _sep, index = op.partition("-")
    segments, blocks = state["segments"], state["blocks"]
    if action == "add_segment" and len(segments) < MAX_ROWS:
        starts = [m for m in (_minutes(s["start"]) for s in segments) if m is not None]
        nxt = min(max(starts) + 60, DAY - 60) if starts else 0
        segments.append({"start": f"{nxt // 60:02d}:{nxt % 60:02d}", "rate": "flat"})
    elif (
        action == "remove_segment"
        and index.isdigit()
        and len(segments) > 1
        and int(index) < len(segments)
    ):
        del segments[int(index)]
    elif action == "add_block" and len(blocks) < MAX_ROWS:
        # A new bounded block goes before the open-ended last one.
        at = len(blocks) - 1 if blocks and not blocks[-1]["upto"] else len(blocks)
        blocks.insert(at, {"upto": "", "price": ""})
    elif (
        action == "remove_block"
        and index.isdigit()
        and len(blocks) > 1
        and int(index) < len(blocks)
    ):
        del blocks[int(index)]


# ---------------------------------------------------------------- parsing


def _minutes(text: str) -> int | None:
    hh, sep, mm = text.partition(":")
    if not sep or not (hh.isdigit() and mm.isdigit()) or len(mm) != 2 or len(hh) > 2:
        return None
    h, m = int(hh), int(mm)
    if h > 23 or m > 59:
        return None
    return h * 60 + m


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _price(text: str, field: str, errors: dict[str, str]) -> int | None:
    if not text:
        errors[field] = _("Enter a price.")
        return None
    try:
        return parse_price(text, field)
    except ValidationError as exc:
        errors[field] = exc.message
        return None


def parse_spec(state: Mapping[str, Any]) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """(normalised spec, {}) or (None, {field: message}) for the editor rows."""
    kind = state["kind"]
    errors: dict[str, str] = {}
    spec: dict[str, Any]
    if kind == "flat":
        spec = {"price": _price(state["price"], "price", errors)}
    elif kind == "tou":
        spec = _parse_tou(state, errors)
    else:
        spec = _parse_tiered(state, errors)
    if errors:
        return None, errors
    try:
        return validate_spec(kind, spec), {}
    except ValidationError as exc:
        return None, {exc.field or "spec": exc.message}


def _parse_tou(state: Mapping[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    segments = []
    previous: int | None = None
    for i, row in enumerate(state["segments"]):
        start = _minutes(row["start"])
        if start is None:
            errors[f"segments.{i}.start"] = _("Enter a time of day as HH:MM, from 00:00 to 23:59.")
        elif i == 0 and start != 0:
            errors[f"segments.{i}.start"] = _(
                "The day is not covered from 00:00 to %(time)s: the first segment starts at 00:00.",
                time=_hhmm(start),
            )
        elif previous is not None and start == previous:
            errors[f"segments.{i}.start"] = _(
                "This segment starts at the same time as the one above."
            )
        elif previous is not None and start < previous:
            errors[f"segments.{i}.start"] = _(
                "This segment overlaps the one above, which starts at %(time)s; list the segments in "
                "order through the day.",
                time=_hhmm(previous),
            )
        if start is not None:
            previous = start if previous is None else max(previous, start)
        if row["rate"] not in RATES:
            errors[f"segments.{i}.rate"] = _("Choose a period.")
        segments.append({"start": row["start"], "rate": row["rate"]})
    if not segments:
        errors["segments"] = _("Add at least one segment.")
    used = {row["rate"] for row in state["segments"]}
    prices = {}
    for rate in RATES:
        text = state["prices"].get(rate, "")
        if rate in used or text:
            value = _price(text, f"prices.{rate}", errors)
            if value is not None:
                prices[rate] = value
    return {"prices": prices, "segments": segments}


def _parse_tiered(state: Mapping[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    blocks = []
    last = 0
    rows = state["blocks"]
    for i, row in enumerate(rows):
        upto: int | None = None
        final = i == len(rows) - 1
        if row["upto"]:
            if not row["upto"].isdigit() or int(row["upto"]) <= 0:
                errors[f"blocks.{i}.upto"] = _("Enter a whole number of units per month.")
            elif int(row["upto"]) <= last:
                errors[f"blocks.{i}.upto"] = _(
                    "Each block's bound must be above the one before (%(last)s).", last=last
                )
            elif final:
                errors[f"blocks.{i}.upto"] = _(
                    "Leave the last block's bound empty: it covers everything above."
                )
            else:
                upto = last = int(row["upto"])
        elif not final:
            errors[f"blocks.{i}.upto"] = _(
                "Only the last block is open-ended: enter its upper bound."
            )
        blocks.append({"upto": upto, "price": _price(row["price"], f"blocks.{i}.price", errors)})
    if not blocks:
        errors["blocks"] = _("Add at least one block.")
    return {"blocks": blocks}


def parse_effective(text: str, tz_name: str) -> dt.datetime:
    """'2026-12-01' -> local midnight of that day as naive UTC."""
    try:
        day = dt.date.fromisoformat(_text(text))
    except ValueError:
        raise ValidationError(_("Enter a date as YYYY-MM-DD."), "effective_from") from None
    return clock.local_midnight(tz_name, day)


# ---------------------------------------------------------------- the day bar


def day_bar(spec: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """A TOU day as bar pieces: rate, start and end (HH:MM), left and width in % of 24 h."""
    if not spec or "segments" not in spec:
        return []
    starts = [(_minutes(s["start"]) or 0, s["rate"]) for s in spec["segments"]]
    pieces = []
    for i, (start, rate) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else DAY
        pieces.append(
            {
                "rate": rate,
                "start": _hhmm(start),
                "end": "24:00" if end == DAY else _hhmm(end),
                "left": round(start * 100 / DAY, 3),
                "width": round((end - start) * 100 / DAY, 3),
                "minutes": end - start,
            }
        )
    return pieces


def segment_ends(state: Mapping[str, Any]) -> list[str]:
    """Where each typed segment row ends (the next row's start; the last at 24:00)."""
    rows = state["segments"]
    return [rows[i + 1]["start"] if i + 1 < len(rows) else "24:00" for i in range(len(rows))]
