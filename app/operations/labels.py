"""People-facing names of the codes the scheduled operations store (job kinds and statuses,
charge kinds, apportionment modes and rules).  Unknown codes fall back to ``app.i18n.label``."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l

from app.i18n import label

OPS_LABELS: dict[str, Any] = {
    # job kinds and statuses
    "water.daily": _l("Water daily deduction"),
    "rent": _l("Rent"),
    "bills": _l("Monthly bills"),
    "running": _l("Running"),
    "ok": _l("Done"),
    "failed": _l("Failed"),
    # recurring charge kinds (also ledger entry kinds)
    "property_fee": _l("Property fee"),
    # apportionment modes and rules
    "master": _l("Master meter use"),
    "loss": _l("Line loss"),
    "area": _l("By area"),
    "consumption": _l("By consumption"),
    "fixed": _l("Fixed ratios"),
    # bill sections
    "sales": _l("Sales"),
    "fees": _l("Rent and fees"),
    "reversals": _l("Reversals"),
    "other": _l("Other"),
    # rates
    "tiered": _l("Tiered"),
    "sharp": _l("Sharp"),
    "peak": _l("Peak"),
    "flat": _l("Flat"),
    "valley": _l("Valley"),
}


def op_label(code: object) -> str:
    """The translated name of an operations code, else the core label."""
    text = OPS_LABELS.get(str(code)) if code is not None else None
    return str(text) if text is not None else label(code)
