"""peewee models only.  ``MODELS`` is in dependency order (create order).

The SMS and scheduled-operations models are imported from their own modules
(``app.models.sms``, ``app.models.operations``); they are listed here for migrations.
"""

from app.models.activity import (
    ApiToken,
    AuditLog,
    Command,
    Event,
    Reading,
    Sale,
    User,
    UserProperty,
)
from app.models.base import BaseModel, utcnow
from app.models.batch import BatchRun
from app.models.ledger import Entry, LedgerAccount, Leg
from app.models.operations import OPERATIONS_MODELS
from app.models.property import Property
from app.models.site import Account, Building, Floor, Gateway, Meter, Room, Tenant
from app.models.sms import SMS_MODELS
from app.models.tariffs import Tariff, TariffVersion
from app.models.usage import DailyUsage, MonthlyUsage, SiteDailyUsage

MODELS = [
    Property,
    LedgerAccount,
    Entry,
    Leg,
    Tariff,
    TariffVersion,
    Building,
    Floor,
    Room,
    Tenant,
    Account,
    Gateway,
    Meter,
    Sale,
    Reading,
    Command,
    Event,
    User,
    UserProperty,
    ApiToken,
    AuditLog,
    *SMS_MODELS,
    *OPERATIONS_MODELS,
    BatchRun,
    DailyUsage,
    MonthlyUsage,
    SiteDailyUsage,
]

__all__ = [m.__name__ for m in MODELS] + ["BaseModel", "MODELS", "utcnow"]
