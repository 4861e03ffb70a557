"""Translation helpers for messages people read.

``tr`` is for messages built in the domain layer, which also runs outside requests (the
CLI, workers, tests): while a request is handled it translates with Flask-Babel into the
request's locale (the person's choice, else Accept-Language for the API, else the configured
``LANGUAGE``); otherwise it returns the English template with its parameters filled in, so
the command line, whose own output is English, is not mixed with Chinese fragments.  Message templates use ``%(name)s`` placeholders with
keyword parameters, never f-strings, so that ``pybabel extract -k tr`` finds them.  A literal
percent sign in a template that takes parameters is written ``%%``.

``LABELS`` are the people-facing names of the codes stored in the database (payment methods,
roles, ledger entry kinds, statuses...).  Templates show them with the ``label`` filter.
"""

from __future__ import annotations

from typing import Any

from flask import has_request_context
from flask_babel import gettext
from flask_babel import lazy_gettext as _l


def tr(message: str, **params: Any) -> str:
    """Translate ``message`` and fill in its ``%(name)s`` placeholders."""
    if has_request_context():
        return gettext(message, **params)
    return message % params if params else message


LABELS: dict[str, Any] = {
    # payment methods (ledger.PAYMENT_METHODS)
    "cash": _l("Cash"),
    "card": _l("Bank card"),
    "wechat": _l("WeChat Pay"),
    "alipay": _l("Alipay"),
    "transfer": _l("Bank transfer"),
    # roles (actors.ROLES, plus the workers' and CLI's "system")
    "admin": _l("Administrator"),
    "manager": _l("Manager"),
    "cashier": _l("Cashier"),
    "electrician": _l("Electrician"),
    "viewer": _l("Viewer"),
    "system": _l("System"),
    # ledger entry kinds
    "sale": _l("Sale"),
    "reversal": _l("Reversal"),
    "charge": _l("Energy charge"),
    "refund": _l("Refund"),
    "adjustment": _l("Adjustment"),
    "fee": _l("Service fee"),
    "apportionment": _l("Apportionment"),
    "rent": _l("Rent"),
    "property_fee": _l("Property fee"),
    # account statuses (status.TIERS, not_opened, closed)
    "opened": _l("Normal"),
    "awaiting": _l("Awaiting first payment"),
    "alarm1": _l("Alarm 1"),
    "alarm2": _l("Alarm 2"),
    "arrears": _l("Arrears"),
    "not_opened": _l("Not opened"),
    "closed": _l("Closed"),
    # agreement schedules
    "monthly": _l("Monthly"),
    "days": _l("Every N days"),
    # room types
    "shop": _l("Shop"),
    "office": _l("Office"),
    "dorm": _l("Dormitory"),
    "common": _l("Common area"),
    # meter kinds / utilities
    "electricity": _l("Electricity"),
    "water": _l("Water"),
    # meter statuses
    "stock": _l("In stock"),
    "active": _l("In service"),
    "removed": _l("Removed"),
    # reading statuses
    "baseline": _l("Baseline"),
    "accepted": _l("Accepted"),
    "out_of_order": _l("Out of order"),
    "tamper": _l("Tamper suspected"),
    "held": _l("Held for review"),
    "released": _l("Released"),
    "ignored": _l("Ignored"),
    "rejected": _l("Rejected"),
    "reviewed": _l("Reviewed"),
    # relay (supply) states
    "on": _l("On"),
    "off": _l("Off"),
    # meters grid display statuses (meter_grid.GRID_STATUSES, besides the account tiers)
    "offline": _l("Offline"),
    "kept_on": _l("Kept on"),
    # batch actions (batch.ACTIONS) and batch run statuses
    "read": _l("Read now"),
    "trip": _l("Trip"),
    "restore": _l("Restore prepaid"),
    "keep_power": _l("Keep power"),
    "release": _l("Release keep power"),
    "push_price": _l("Push price"),
    "push_thresholds": _l("Push thresholds"),
    # field-device commands (Command.kind / Command.status) and why a supply state was chosen
    "relay_on": _l("Switch on"),
    "relay_off": _l("Switch off"),
    "valve_open": _l("Open valve"),
    "valve_close": _l("Close valve"),
    "keep_power_release": _l("Release keep power on the meter"),
    "purchase": _l("Purchase push"),
    "time_sync": _l("Time sync"),
    "pending": _l("Pending"),
    "sent": _l("Sent"),
    "confirmed": _l("Confirmed"),
    "superseded": _l("Superseded"),
    "forced": _l("Forced trip"),
    "overload": _l("Overload"),
    "running": _l("Running"),
    "interrupted": _l("Interrupted, resuming"),
    "resuming": _l("Resuming"),
    "queued": _l("Queued"),
    "done": _l("Done"),
    "failed": _l("Failed"),
}


def label(code: object) -> str:
    """The translated label of a code; an unknown code is shown as it is."""
    if code is None:
        return ""
    text = LABELS.get(str(code))
    return str(text) if text is not None else str(code)
