"""Sales (售电/售水) and their reversal."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from peewee import IntegrityError

from app import clock
from app.db import db, write_tx
from app.domain.actors import Actor
from app.domain.audit import audit
from app.domain.control import queue_purchase
from app.domain.errors import Conflict, NotFound, ValidationError
from app.domain.ledger import PAYMENT_METHODS, post_entry, reverse_entry, system_account
from app.domain.money import MAX_SALE_FEN, fee_split, format_fen
from app.domain.sms import request_dispatch
from app.domain.status import AWAITING, end_awaiting, refresh_accounts
from app.i18n import tr
from app.models import Account, LedgerAccount, Meter, Property, Sale

UTILITIES = ("electricity", "water")


@dataclass(frozen=True)
class SaleResult:
    sale: Sale
    created: bool  # False: the idempotency key was seen before; nothing moved


def _existing(key: str) -> Sale | None:
    return Sale.get_or_none(Sale.idempotency_key == key)


def _check_same_request(sale: Sale, account_id: int, amount_fen: int) -> None:
    if sale.account_id != account_id or sale.amount_fen != amount_fen:
        raise Conflict(
            tr(
                "this request id was already used for a different sale "
                "(account %(number)s, %(amount)s yuan)",
                number=sale.account.number,
                amount=format_fen(sale.amount_fen),
            ),
            "idempotency_key",
        )


def sell(
    account: Account,
    *,
    amount_fen: int,
    method: str,
    idempotency_key: str,
    actor: Actor,
    now: dt.datetime,
    utility: str = "electricity",
) -> SaleResult:
    """Take a payment into the account's wallet, net of the property's service fee.

    Idempotent on ``idempotency_key``: a repeat returns the first sale and moves no money (a
    repeat that differs in account or amount is refused).
    """
    actor.require("sale.create")
    key = (idempotency_key or "").strip()
    if not key or len(key) > 100:
        raise ValidationError(tr("a sale needs a request id (1-100 characters)"), "idempotency_key")
    if not isinstance(amount_fen, int) or isinstance(amount_fen, bool) or amount_fen <= 0:
        raise ValidationError(tr("the amount must be greater than zero"), "amount")
    if amount_fen > MAX_SALE_FEN:
        raise ValidationError(tr("the amount is larger than one sale may be"), "amount")
    if method not in PAYMENT_METHODS:
        raise ValidationError(tr("unknown payment method '%(method)s'", method=method), "method")
    if utility not in UTILITIES:
        raise ValidationError(tr("unknown utility '%(utility)s'", utility=utility), "utility")
    first = _existing(key)
    if first is not None:
        _check_same_request(first, account.id, amount_fen)
        return SaleResult(first, False)
    try:
        with write_tx():
            first = _existing(key)
            if first is not None:
                _check_same_request(first, account.id, amount_fen)
                return SaleResult(first, False)
            acct = Account.get_or_none(Account.id == account.id)
            if acct is None:
                raise NotFound(tr("no such account"), "account")
            if acct.status in ("closed", "not_opened"):
                raise ValidationError(
                    tr("account %(number)s is not open", number=acct.number), "account"
                )
            prop = Property.get_by_id(acct.property_id)
            fee, net = fee_split(amount_fen, prop.service_fee_bp)
            legs = [
                (system_account(prop.id, f"cash:{method}"), amount_fen),
                (acct.wallet_id, -net),
            ]
            if fee:
                legs.append((system_account(prop.id, "revenue:service_fee"), -fee))
            entry = post_entry(
                "sale",
                legs,
                actor=actor.name,
                now=now,
                memo=f"sale {acct.number} {method}",
                idempotency_key=f"sale:{key}",
            )
            balance = LedgerAccount.get_by_id(acct.wallet_id).balance_fen
            sale = Sale.create(
                property=prop,
                account=acct,
                utility=utility,
                method=method,
                amount_fen=amount_fen,
                fee_fen=fee,
                net_fen=net,
                fee_bp=prop.service_fee_bp,
                idempotency_key=key,
                entry=entry,
                operator=actor.name,
                created_at=now,
                balance_after_fen=balance,
            )
            sale.receipt_no = f"{clock.local(now, prop):%Y%m%d}{sale.id:07d}"
            Sale.update(receipt_no=sale.receipt_no).where(Sale.id == sale.id).execute()
            if acct.status == AWAITING:
                end_awaiting([acct.id], now=now)  # the first payment
            else:
                refresh_accounts([acct.id], now=now)
            _push_to_meter_held_balance(acct, sale, actor=actor, now=now)
            audit(
                actor,
                "sale.create",
                sale,
                now=now,
                account=acct.number,
                amount_fen=amount_fen,
                fee_fen=fee,
                net_fen=net,
                method=method,
                key=key,
            )
            request_dispatch()  # the receipt SMS goes out right after commit
        return SaleResult(sale, True)
    except IntegrityError:
        # A concurrent request with the same key committed first: return its sale.
        if db.transaction_depth():
            raise
        first = _existing(key)
        if first is None:
            raise
        _check_same_request(first, account.id, amount_fen)
        return SaleResult(first, False)


def _push_to_meter_held_balance(
    acct: Account, sale: Sale, *, actor: Actor, now: dt.datetime
) -> None:
    """Meter-held balance (内控): the net credit goes to the account's first active meter-mode
    meter as a purchase with the next purchase count (electricity first)."""
    meter = (
        Meter.select()
        .where(
            (Meter.account == acct) & (Meter.status == "active") & (Meter.prepaid_mode == "meter")
        )
        .order_by(Meter.kind, Meter.id)
        .first()
    )
    if meter is not None:
        queue_purchase(meter, amount_fen=sale.net_fen, actor=actor, now=now, key=f"sale:{sale.id}")


def reverse_sale(sale: Sale, *, reason: str, actor: Actor, now: dt.datetime) -> SaleResult:
    """Reverse a sale (refund / correction) with a reversing entry.  Permitted roles only,
    with a reason.  Reversing a reversed sale returns it unchanged."""
    actor.require("sale.reverse")
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError(tr("say why the sale is reversed"), "reason")
    with write_tx():
        sale = Sale.get_by_id(sale.id)
        if sale.reversal_entry_id is not None:
            return SaleResult(sale, False)
        entry = reverse_entry(
            sale.entry,
            actor=actor.name,
            now=now,
            memo=f"reversal of receipt {sale.receipt_no}: {reason}",
        )
        Sale.update(
            reversal_entry=entry, reversed_at=now, reversed_by=actor.name, reverse_reason=reason
        ).where(Sale.id == sale.id).execute()
        refresh_accounts([sale.account_id], now=now)
        audit(
            actor,
            "sale.reverse",
            sale,
            now=now,
            receipt=sale.receipt_no,
            reason=reason,
            amount_fen=sale.amount_fen,
        )
    return SaleResult(Sale.get_by_id(sale.id), True)
