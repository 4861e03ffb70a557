"""Who is acting, and what each role may do."""

from __future__ import annotations

from dataclasses import dataclass

from app.domain.errors import PermissionDenied
from app.i18n import tr

ROLES = ("admin", "manager", "cashier", "electrician", "viewer")

# permission -> roles holding it.  "system" (workers, CLI) holds every permission.
PERMISSIONS: dict[str, frozenset[str]] = {
    "account.view": frozenset(ROLES),
    "money.view": frozenset({"admin", "manager", "cashier", "viewer"}),
    "account.open": frozenset({"admin", "manager", "cashier"}),
    "account.close": frozenset({"admin", "manager"}),
    "meter.swap": frozenset({"admin", "manager", "electrician"}),
    "meter.control": frozenset({"admin", "manager", "electrician"}),
    "meter.keep_power": frozenset({"admin", "manager", "electrician"}),
    "sale.create": frozenset({"admin", "manager", "cashier"}),
    "sale.reverse": frozenset({"admin", "manager"}),
    "reading.write": frozenset({"admin", "manager", "electrician"}),
    "reading.review": frozenset({"admin", "manager", "electrician"}),
    "tariff.edit": frozenset({"admin", "manager"}),
    "tariff.override": frozenset({"admin"}),
    "site.edit": frozenset({"admin", "manager"}),
    "user.manage": frozenset({"admin"}),
    "ledger.view": frozenset({"admin", "manager", "viewer"}),
    # SMS: the outbox, templates and settings (managers); staff alerts (who looks after devices).
    "sms.view": frozenset({"admin", "manager"}),
    "sms.manage": frozenset({"admin", "manager"}),
    "alert.view": frozenset({"admin", "manager", "electrician", "viewer"}),
    # Scheduled operations: job history, recurring charges, apportionment, monthly bills.
    "operations.view": frozenset({"admin", "manager", "viewer"}),
    "operations.run": frozenset({"admin", "manager"}),
    "charges.edit": frozenset({"admin", "manager"}),
    "apportionment.post": frozenset({"admin", "manager"}),
    "bill.view": frozenset({"admin", "manager", "cashier", "viewer"}),
    # People and settings: the audit log.
    "audit.view": frozenset({"admin", "manager"}),
    # Meters grid and batch actions: starting a batch (each action also needs its own
    # permission: meter.control, meter.keep_power, meter.settings); pushing price/thresholds.
    "batch.run": frozenset({"admin", "manager", "electrician"}),
    "meter.settings": frozenset({"admin", "manager"}),
    # Overview (项目总览): the console home; takings on it need money.view as well.
    "overview.view": frozenset({"admin", "manager", "electrician", "viewer"}),
}


@dataclass(frozen=True)
class Actor:
    name: str
    role: str

    def can(self, permission: str) -> bool:
        if self.role == "system":
            return True
        return self.role in PERMISSIONS[permission]

    def require(self, permission: str) -> None:
        if not self.can(permission):
            raise PermissionDenied(
                tr(
                    "role '%(role)s' may not do '%(permission)s'",
                    role=self.role,
                    permission=permission,
                )
            )


SYSTEM = Actor("system", "system")
