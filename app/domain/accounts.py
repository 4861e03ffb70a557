"""Accounts (户): opening, closing with settlement, meter swap, keep-power."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass

from app.db import write_tx
from app.domain.actors import SYSTEM, Actor
from app.domain.audit import audit
from app.domain.control import plan_supply_commands, queue_keep_power
from app.domain.errors import ValidationError
from app.domain.ledger import PAYMENT_METHODS, create_wallet, post_entry, system_account
from app.domain.money import format_fen
from app.domain.site import create_tenant
from app.domain.status import AWAITING, refresh_relays, start_awaiting
from app.domain.water import settle_account_water
from app.i18n import tr
from app.models import (
    Account,
    AuditLog,
    Building,
    Event,
    Floor,
    LedgerAccount,
    Meter,
    Property,
    Reading,
    Room,
    Tariff,
    Tenant,
)


@dataclass(frozen=True)
class MeterStart:
    """A meter to attach and its register at installation (None: the first reading is the
    baseline)."""

    meter: Meter
    initial_total: int | None = None


@dataclass(frozen=True)
class NewTenant:
    """A tenant to create together with the account (rolled back with it on any error)."""

    name: str
    phones: str = ""
    contact: str = ""


def _opened_by_request(request_id: str | None) -> Account | None:
    """The account an earlier open with this request id created (the audit row names it)."""
    if not request_id:
        return None
    needle = json.dumps({"request_id": request_id}, ensure_ascii=False)[1:-1]
    rows = (
        AuditLog.select(AuditLog.object_id, AuditLog.detail)
        .where((AuditLog.action == "account.open") & AuditLog.detail.contains(needle))
        .order_by(AuditLog.id)
    )
    for row in rows:  # LIKE may also match wildcards; compare the stored value itself
        if json.loads(row.detail).get("request_id") == request_id:
            return Account.get_or_none(Account.id == int(row.object_id))
    return None


def _check_tariff(tariff: Tariff | None, prop: Property, utility: str, field: str) -> None:
    if tariff is None:
        return
    if tariff.property_id != prop.id or tariff.utility != utility:
        if utility == "electricity":
            raise ValidationError(
                tr("that tariff is not an electricity tariff of this property"), field
            )
        raise ValidationError(tr("that tariff is not a water tariff of this property"), field)


def _attach(
    meter: Meter, account: Account, room: Room | None, initial_total: int | None, now
) -> None:
    meter.account = account
    meter.room = room or meter.room
    meter.status = "active"
    meter.installed_at = now
    meter.relay_desired = "on"
    meter.relay_reason = ""
    meter.carry = 0
    meter.month_key = 0
    meter.month_units = 0
    if initial_total is not None:
        if initial_total < 0:
            raise ValidationError(
                tr("an initial register reading cannot be negative"), "initial_total"
            )
        meter.last_read_at = now
        meter.last_total = initial_total
        meter.last_t1 = meter.last_t2 = meter.last_t3 = meter.last_t4 = None
        Reading.create(
            meter=meter,
            read_at=now,
            total=initial_total,
            status="baseline",
            source="install",
            created_at=now,
        )
    else:
        meter.last_read_at = meter.last_total = None
    meter.save()


def _next_number(prop: Property) -> str:
    n = Account.select().where(Account.property == prop).count() + 1
    while True:
        number = f"{prop.code}-{n:05d}"
        if not Account.select().where(Account.number == number).exists():
            return number
        n += 1


def open_account(
    prop: Property,
    *,
    tenant: Tenant | NewTenant,
    meters: Sequence[MeterStart],
    actor: Actor,
    now: dt.datetime,
    room: Room | None = None,
    number: str | None = None,
    tariff_electricity: Tariff | None = None,
    tariff_water: Tariff | None = None,
    alarm1_fen: int | None = None,
    alarm2_fen: int | None = None,
    credit_limit_fen: int = 0,
    request_id: str | None = None,
) -> Account:
    """Open an account (开户) for ``tenant`` (an existing one, or a ``NewTenant`` created in
    the same transaction) and attach meters in stock to it.

    Idempotent on ``request_id``: a repeat returns the account the first call opened.
    An initial purchase is a separate ``sell`` (so it carries its own idempotency key).
    """
    actor.require("account.open")
    request_id = (request_id or "").strip() or None
    if request_id is not None and len(request_id) > 100:
        raise ValidationError(tr("a request id is 1-100 characters"), "request_id")
    earlier = _opened_by_request(request_id)
    if earlier is not None:
        return earlier
    if (
        room is not None
        and Room.select()
        .join(Floor)
        .join(Building)
        .where((Room.id == room.id) & (Building.property == prop.id))
        .count()
        == 0
    ):
        raise ValidationError(tr("that room is not in this property"), "room")
    if isinstance(tenant, Tenant) and tenant.property_id != prop.id:
        raise ValidationError(tr("the tenant belongs to another property"), "tenant")
    if not meters:
        raise ValidationError(tr("an account needs at least one meter"), "meters")
    alarm1 = prop.default_alarm1_fen if alarm1_fen is None else alarm1_fen
    alarm2 = prop.default_alarm2_fen if alarm2_fen is None else alarm2_fen
    if not (alarm1 >= alarm2 >= 0):
        raise ValidationError(
            tr("alarm 1 must be at or above alarm 2, and both at or above zero"), "alarm1_fen"
        )
    if credit_limit_fen < 0:
        raise ValidationError(tr("the credit limit cannot be negative"), "credit_limit_fen")
    _check_tariff(tariff_electricity, prop, "electricity", "tariff_electricity")
    _check_tariff(tariff_water, prop, "water", "tariff_water")
    kinds = {ms.meter.kind for ms in meters}
    if (
        "electricity" in kinds
        and tariff_electricity is None
        and not all(ms.meter.tariff_id for ms in meters if ms.meter.kind == "electricity")
    ):
        raise ValidationError(tr("choose an electricity tariff"), "tariff_electricity")
    if (
        "water" in kinds
        and tariff_water is None
        and not all(ms.meter.tariff_id for ms in meters if ms.meter.kind == "water")
    ):
        raise ValidationError(tr("choose a water tariff"), "tariff_water")
    with write_tx():
        earlier = _opened_by_request(request_id)
        if earlier is not None:
            return earlier
        if isinstance(tenant, NewTenant):
            tenant = create_tenant(
                prop,
                name=tenant.name,
                phones=tenant.phones,
                contact=tenant.contact,
                actor=actor,
                now=now,
            )
        for ms in meters:
            fresh = Meter.get_by_id(ms.meter.id)
            if fresh.property_id != prop.id:
                raise ValidationError(
                    tr("meter %(serial)s belongs to another property", serial=fresh.serial),
                    "meters",
                )
            if fresh.status != "stock" or fresh.account_id is not None:
                raise ValidationError(
                    tr("meter %(serial)s is already in use", serial=fresh.serial), "meters"
                )
        number = (number or "").strip() or _next_number(prop)
        if Account.select().where(Account.number == number).exists():
            raise ValidationError(tr("account number %(number)s is taken", number=number), "number")
        wallet = create_wallet(prop, number)
        account = Account.create(
            property=prop,
            tenant=tenant,
            room=room,
            number=number,
            status=AWAITING,
            alarm1_fen=alarm1,
            alarm2_fen=alarm2,
            credit_limit_fen=credit_limit_fen,
            tariff_electricity=tariff_electricity,
            tariff_water=tariff_water,
            wallet=wallet,
            opened_at=now,
            status_changed_at=now,
        )
        for ms in meters:
            _attach(Meter.get_by_id(ms.meter.id), account, room, ms.initial_total, now)
        start_awaiting(account, prop, now=now)  # until the first payment (or the grace ends)
        audit(
            actor,
            "account.open",
            account,
            now=now,
            number=number,
            tenant=tenant.id,
            meters=[ms.meter.serial for ms in meters],
            request_id=request_id,
        )
    return Account.get_by_id(account.id)


def close_account(
    account: Account,
    *,
    actor: Actor,
    now: dt.datetime,
    refund_method: str | None = None,
    reason: str = "",
) -> Account:
    """Close an account (销户): refund the remaining balance and release its meters.

    With ``refund_method`` the money is paid out now (wallet -> cash/clearing); without it
    the balance moves to refunds payable for finance to pay later.  An account that owes
    money cannot be closed until it is settled by a sale.
    """
    actor.require("account.close")
    with write_tx():
        account = Account.get_by_id(account.id)
        if account.status == "closed":
            raise ValidationError(tr("the account is closed already"), "account")
        settle_account_water(account, actor=actor, now=now)  # water rated but not yet deducted
        balance = LedgerAccount.get_by_id(account.wallet_id).balance_fen
        if balance < 0:
            raise ValidationError(
                tr(
                    "the account owes %(amount)s yuan; settle it with a sale first",
                    amount=format_fen(-balance),
                ),
                "account",
            )
        if refund_method is not None and refund_method not in PAYMENT_METHODS:
            raise ValidationError(
                tr("unknown payment method '%(method)s'", method=refund_method), "refund_method"
            )
        if balance > 0:
            target = f"cash:{refund_method}" if refund_method else "liability:refunds_payable"
            post_entry(
                "refund",
                [
                    (account.wallet_id, balance),
                    (system_account(account.property_id, target), -balance),
                ],
                actor=actor.name,
                now=now,
                memo=f"closing refund {account.number} {reason}".strip(),
            )
        meters = list(Meter.select().where((Meter.account == account) & (Meter.status == "active")))
        for m in meters:
            Meter.update(
                status="stock",
                account=None,
                relay_desired="off",
                relay_reason="closed",
                relay_changed_at=now,
                keep_power=False,
            ).where(Meter.id == m.id).execute()
            Event.create(
                kind="relay.off",
                property=account.property_id,
                account=account.id,
                meter=m.id,
                created_at=now,
                data=json.dumps({"reason": "closed", "kind": m.kind}),
            )
        Account.update(status="closed", closed_at=now, status_changed_at=now).where(
            Account.id == account.id
        ).execute()
        audit(
            actor,
            "account.close",
            account,
            now=now,
            refund_fen=balance,
            refund_method=refund_method or "payable",
            reason=reason,
        )
    return Account.get_by_id(account.id)


def swap_meter(
    old: Meter,
    new: Meter,
    *,
    old_final_total: int,
    new_initial_total: int,
    actor: Actor,
    now: dt.datetime,
    reason: str = "",
) -> Meter:
    """Meter swap (换表): charge the old meter up to its final reading, then put the new meter
    in its place from its initial reading.  The balance stays with the account."""
    from app.domain.readings import ReadingIn, apply_readings

    actor.require("meter.swap")
    with write_tx():
        old = Meter.get_by_id(old.id)
        new = Meter.get_by_id(new.id)
        if old.status != "active" or old.account_id is None:
            raise ValidationError(
                tr("meter %(serial)s is not in service", serial=old.serial), "old"
            )
        if new.status != "stock" or new.account_id is not None:
            raise ValidationError(tr("meter %(serial)s is not in stock", serial=new.serial), "new")
        if new.kind != old.kind or new.property_id != old.property_id:
            raise ValidationError(tr("the new meter must be of the same kind and property"), "new")
        if old.last_read_at is not None and old.last_read_at >= now:
            raise ValidationError(
                tr("the old meter has a reading at or after the swap time"), "old"
            )
        results = apply_readings(
            [ReadingIn(meter_id=old.id, read_at=now, total=old_final_total, source="swap")],
            actor=actor,
            now=now,
        )
        final = results[0]
        if final.status not in ("accepted", "baseline"):
            raise ValidationError(
                tr(
                    "the old meter's final reading was not accepted (%(status)s): %(note)s",
                    status=final.status,
                    note=final.note,
                ),
                "old_final_total",
            )
        account = Account.get_by_id(old.account_id)
        Meter.update(
            status="removed", removed_at=now, relay_reason="removed", keep_power=False
        ).where(Meter.id == old.id).execute()
        new.tariff = old.tariff
        new.multiplier = new.multiplier or old.multiplier
        _attach(new, account, old.room, new_initial_total, now)
        # Carry the month's usage so tiered blocks continue where the old meter stopped.
        old = Meter.get_by_id(old.id)
        Meter.update(month_key=old.month_key, month_units=old.month_units, carry=old.carry).where(
            Meter.id == new.id
        ).execute()
        refresh_relays([account.id], now=now)
        audit(
            actor,
            "meter.swap",
            account,
            now=now,
            old=old.serial,
            new=new.serial,
            old_final_total=old_final_total,
            new_initial_total=new_initial_total,
            reason=reason,
        )
    return Meter.get_by_id(new.id)


def set_keep_power(
    meter: Meter,
    *,
    on: bool,
    actor: Actor,
    now: dt.datetime,
    reason: str = "",
    until: dt.datetime | None = None,
) -> Meter:
    """Keep power (保电): the supply stays on whatever the balance, until released or
    ``until`` passes.  Who, why and until are recorded."""
    actor.require("meter.keep_power")
    reason = (reason or "").strip()
    if on and not reason:
        raise ValidationError(tr("say why power is kept on"), "reason")
    if on and until is not None and until <= now:
        raise ValidationError(tr("the end of keep-power must be in the future"), "until")
    with write_tx():
        meter = Meter.get_by_id(meter.id)
        Meter.update(
            keep_power=on,
            keep_power_by=actor.name if on else "",
            keep_power_reason=reason if on else "",
            keep_power_until=until if on else None,
        ).where(Meter.id == meter.id).execute()
        if on and meter.relay_desired == "off" and meter.relay_reason == "arrears":
            Meter.update(relay_desired="on", relay_reason="keep_power", relay_changed_at=now).where(
                Meter.id == meter.id
            ).execute()
            Event.create(
                kind="relay.on",
                property=meter.property_id,
                account=meter.account_id,
                meter=meter.id,
                created_at=now,
                data=json.dumps({"reason": "keep_power", "kind": meter.kind}),
            )
        if not on and meter.relay_reason == "keep_power":
            Meter.update(relay_reason="").where(Meter.id == meter.id).execute()
        if meter.account_id:
            events = refresh_relays([meter.account_id], now=now)
            Event.bulk_create(events)
        queue_keep_power(meter, on=on, actor=actor, now=now, reason=reason)
        plan_supply_commands([meter.id], now=now)
        audit(
            actor,
            "meter.keep_power",
            meter,
            now=now,
            on=on,
            reason=reason,
            until=until.isoformat() if until else None,
        )
    return Meter.get_by_id(meter.id)


def expire_keep_power(*, now: dt.datetime) -> int:
    """Release keep-power whose time is up and let arrears take effect.  Returns how many."""
    with write_tx():
        expired = list(
            Meter.select().where(
                (Meter.keep_power == True)
                & Meter.keep_power_until.is_null(False)
                & (Meter.keep_power_until <= now)
            )
        )
        if not expired:
            return 0
        Meter.update(keep_power=False, relay_reason="").where(
            Meter.id.in_([m.id for m in expired]) & (Meter.relay_reason == "keep_power")
        ).execute()
        Meter.update(keep_power=False).where(Meter.id.in_([m.id for m in expired])).execute()
        for m in expired:
            audit(SYSTEM, "meter.keep_power_expired", m, now=now, until=m.keep_power_until)
        accounts = {m.account_id for m in expired if m.account_id}
        Event.bulk_create(refresh_relays(accounts, now=now))
    return len(expired)
