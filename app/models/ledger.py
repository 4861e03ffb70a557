"""The append-only double-entry ledger.

A leg's ``amount_fen`` is signed: positive debits, negative credits; an entry's legs sum to
zero.  ``LedgerAccount.balance_fen`` is the cached balance in the account's natural sign
(``normal`` * sum of legs): a tenant wallet (a liability) shows the tenant's money as a
positive number.  It changes only in the transaction that writes its legs.
"""

from __future__ import annotations

from peewee import (
    BigIntegerField,
    CharField,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    TextField,
)

from app.models.base import BaseModel, utcnow
from app.models.property import Property


class LedgerAccount(BaseModel):
    property = ForeignKeyField(Property, backref="ledger_accounts", on_delete="RESTRICT")
    code = CharField(max_length=64)
    name = CharField(max_length=120, default="")
    # asset | liability | revenue | expense
    kind = CharField(max_length=10)
    # +1 debit-normal (asset, expense), -1 credit-normal (liability, revenue)
    normal = IntegerField()
    balance_fen = BigIntegerField(default=0)

    class Meta:
        indexes = ((("property", "code"), True),)


class Entry(BaseModel):
    # sale | reversal | charge | refund | adjustment | fee | apportionment
    kind = CharField(max_length=16, index=True)
    created_at = DateTimeField(default=utcnow, index=True)
    actor = CharField(max_length=60)
    memo = TextField(default="")
    idempotency_key = CharField(max_length=100, null=True, unique=True)
    reverses = ForeignKeyField("self", null=True, backref="reversals", on_delete="RESTRICT")


class Leg(BaseModel):
    entry = ForeignKeyField(Entry, backref="legs", on_delete="RESTRICT")
    ledger_account = ForeignKeyField(LedgerAccount, backref="legs", on_delete="RESTRICT")
    amount_fen = BigIntegerField()
