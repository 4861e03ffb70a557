"""Account status from the balance, and the desired supply state of each meter.

Status by balance (after every money movement):
  balance <= -credit_limit  -> arrears (欠费): supply off unless keep-power (保电) is active
  balance <= alarm2         -> alarm2 (报警2)
  balance <= alarm1         -> alarm1 (报警1)
  otherwise                 -> opened (正常)
``not_opened`` and ``closed`` accounts are left alone, and so is an account ``awaiting`` its
first payment (opened without one): no tier, no arrears message for the opening's zero
balance; its supply follows the property's opening policy (kept on for a grace period, or off)
until the first sale or the end of the grace, when it takes its tier by balance.  Each change of tier writes an
Event (``balance.<status>``) that the SMS and control parts consume, so a tier is announced
once per crossing.  A meter's ``relay_desired`` changes only for reason ``arrears``: a forced
trip or an overload trip set by staff is not undone by a payment.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable

from app import clock
from app.db import write_tx
from app.domain.control import plan_supply_commands
from app.models import Account, Event, LedgerAccount, Meter, Property

TIERS = ("opened", "alarm1", "alarm2", "arrears")
LIVE = set(TIERS)
AWAITING = "awaiting"
OPENING_POLICIES = ("grace", "off")


def status_for(balance: int, alarm1: int, alarm2: int, credit_limit: int) -> str:
    if balance <= -credit_limit:
        return "arrears"
    if balance <= alarm2:
        return "alarm2"
    if balance <= alarm1:
        return "alarm1"
    return "opened"


def keep_power_active(meter: Meter, now: dt.datetime) -> bool:
    return bool(meter.keep_power) and (
        meter.keep_power_until is None or meter.keep_power_until > now
    )


def _deferred(
    props: dict[int, Property], prop_id: int, credit: int, balance: int, now: dt.datetime
) -> dict[str, object]:
    """Why an account falling into arrears is not cut at once (for its message): a balance
    still above the property's trip line (``grace_fen``), or the friendly-disconnection window
    (``cut_at``, naive UTC)."""
    if prop_id not in props:
        props[prop_id] = Property.get_by_id(prop_id)
    prop = props[prop_id]
    line = trip_line(prop, credit)
    if balance > line:
        return {"grace_fen": -line}
    cut = cut_time(prop, now)
    return {"cut_at": cut.isoformat()} if cut > now else {}


def refresh_accounts(account_ids: Iterable[int], *, now: dt.datetime) -> list[Event]:
    """Recompute status and desired relay state for these accounts.  Caller holds write_tx()."""
    ids = sorted(set(account_ids))
    events: list[Event] = []
    props: dict[int, Property] = {}
    for i in range(0, len(ids), 400):
        chunk = ids[i : i + 400]
        rows = (
            Account.select(
                Account.id,
                Account.property,
                Account.status,
                Account.alarm1_fen,
                Account.alarm2_fen,
                Account.credit_limit_fen,
                LedgerAccount.balance_fen,
            )
            .join(LedgerAccount)
            .where(Account.id.in_(chunk) & Account.status.in_(list(LIVE)))
            .tuples()
        )
        changed: dict[str, list[int]] = {}
        still_arrears: list[int] = []
        for acct_id, prop_id, status, alarm1, alarm2, credit, balance in rows:
            new = status_for(balance, alarm1, alarm2, credit)
            if new == status:
                if new == "arrears":
                    still_arrears.append(acct_id)  # a deferred trip may be due now
                continue
            changed.setdefault(new, []).append(acct_id)
            data = {"from": status, "to": new, "balance_fen": balance}
            if new == "arrears":
                data.update(_deferred(props, prop_id, credit, balance, now))
            events.append(
                Event(
                    kind=f"balance.{new}",
                    property=prop_id,
                    account=acct_id,
                    created_at=now,
                    data=json.dumps(data),
                )
            )
        if still_arrears:
            events.extend(refresh_relays(still_arrears, now=now))
        for new, acct_ids in changed.items():
            Account.update(status=new, status_changed_at=now).where(
                Account.id.in_(acct_ids)
            ).execute()
        if changed:
            events.extend(refresh_relays(chunk, now=now))
    if events:
        Event.bulk_create([e for e in events if e.id is None], batch_size=200)
    return events


def _day_list(text: str) -> set[dt.date]:
    days = set()
    for word in (text or "").replace(",", " ").split():
        try:
            days.add(dt.date.fromisoformat(word))
        except ValueError:
            continue  # the settings refuse such a word; an old one is ignored
    return days


def _in_window(minute: int, start: int, end: int) -> bool:
    """Is ``minute`` (after local midnight) in [start, end), a window that may span midnight?"""
    if start == end:
        return False
    return start <= minute < end if start < end else minute >= start or minute < end


def cut_time(prop: Property, now: dt.datetime) -> dt.datetime:
    """The first instant at or after ``now`` (naive UTC) when an arrears trip may happen under
    the property's friendly-disconnection policy: ``now`` itself outside the night window and
    the marked days, else the end of the window (the morning after the last marked day)."""
    if not prop.friendly_cut:
        return now
    zone = clock.zone(prop)
    marked = _day_list(prop.no_cut_days)
    start, end = int(prop.no_cut_start_min), int(prop.no_cut_end_min)
    morning = dt.time(end // 60, end % 60)
    t = clock.local_naive(now, zone)
    for _ in range(400):
        day_marked = (prop.no_cut_weekends and t.weekday() >= 5) or t.date() in marked
        if day_marked:
            t = dt.datetime.combine(t.date() + dt.timedelta(days=1), morning)
        elif _in_window(t.hour * 60 + t.minute, start, end):
            until = dt.datetime.combine(t.date(), morning)
            t = until if until > t else until + dt.timedelta(days=1)
        else:
            break
    later = clock.to_utc(t, zone)
    return now if later <= now else later


def trip_line(prop: Property, credit_limit_fen: int) -> int:
    """The balance at or below which an account in arrears is tripped."""
    return -(int(credit_limit_fen) + int(prop.grace_credit_fen or 0))


def refresh_relays(account_ids: Iterable[int], *, now: dt.datetime) -> list[Event]:
    """Set ``relay_desired`` for the active meters of these accounts from their status: an
    account in arrears is tripped unless keep-power holds, its balance is above the property's
    trip line, or the friendly-disconnection window defers the cut."""
    events: list[Event] = []
    meters = (
        Meter.select(Meter, Account.id, Account.status, Account.credit_limit_fen, LedgerAccount)
        .join(Account)
        .join(LedgerAccount)
        .where(Meter.account.in_(list(account_ids)) & (Meter.status == "active"))
    )
    props: dict[int, Property] = {}
    to_off, to_on = [], []
    for m in meters:
        arrears = m.account.status == "arrears"
        if arrears and m.relay_desired == "on" and not keep_power_active(m, now):
            if m.property_id not in props:
                props[m.property_id] = Property.get_by_id(m.property_id)
            prop = props[m.property_id]
            if m.account.wallet.balance_fen <= trip_line(prop, m.account.credit_limit_fen) and (
                cut_time(prop, now) <= now
            ):
                to_off.append(m)
        elif (
            not arrears
            and m.account.status != AWAITING
            and m.relay_desired == "off"
            and m.relay_reason in ("arrears", AWAITING)
        ):
            to_on.append(m)
    for group, state, reason in ((to_off, "off", "arrears"), (to_on, "on", "")):
        if not group:
            continue
        # Meter-held balance (内控) meters trip themselves at zero; the box follows suit so
        # the two agree, and restores them after a purchase push.
        Meter.update(relay_desired=state, relay_reason=reason, relay_changed_at=now).where(
            Meter.id.in_([m.id for m in group])
        ).execute()
        for m in group:
            events.append(
                Event(
                    kind=f"relay.{state}",
                    property=m.property_id,
                    account=m.account_id,
                    meter=m.id,
                    created_at=now,
                    data=json.dumps({"reason": reason or "paid", "kind": m.kind}),
                )
            )
    if to_off or to_on:
        plan_supply_commands([m.id for m in to_off + to_on], now=now)
    return events


def start_awaiting(account: Account, prop: Property, *, now: dt.datetime) -> None:
    """An account opened without a payment waits for it: with the property's ``grace`` policy
    its supply stays on for ``opening_grace_hours``; with ``off`` its meters are switched off
    until the first payment.  Caller holds write_tx()."""
    grace = prop.opening_policy != "off"
    until = now + dt.timedelta(hours=max(int(prop.opening_grace_hours or 0), 0)) if grace else None
    Account.update(status=AWAITING, awaiting_until=until, status_changed_at=now).where(
        Account.id == account.id
    ).execute()
    if grace:
        return
    meters = [
        m.id
        for m in Meter.select(Meter.id).where(
            (Meter.account == account.id) & (Meter.status == "active")
        )
    ]
    Meter.update(relay_desired="off", relay_reason=AWAITING, relay_changed_at=now).where(
        Meter.id.in_(meters or [0])
    ).execute()
    plan_supply_commands(meters, now=now)


def end_awaiting(account_ids: Iterable[int], *, now: dt.datetime) -> list[Event]:
    """The first payment came or the grace ran out: each account awaiting it takes its tier by
    balance (arrears are announced and cut as for any account) and supply kept off for the
    wait comes back.  Caller holds write_tx()."""
    ids = [
        a
        for (a,) in Account.select(Account.id)
        .where(Account.id.in_(sorted(set(account_ids)) or [0]) & (Account.status == AWAITING))
        .tuples()
    ]
    if not ids:
        return []
    Account.update(status="opened", awaiting_until=None, status_changed_at=now).where(
        Account.id.in_(ids)
    ).execute()
    events = refresh_accounts(ids, now=now)
    more = refresh_relays(ids, now=now)
    if more:
        Event.bulk_create(more, batch_size=200)
    return events + more


def expire_awaiting(*, now: dt.datetime) -> int:
    """End the opening grace of every account whose grace is over (the minute task).
    Returns how many accounts it ended."""
    with write_tx():
        ids = [
            a
            for (a,) in Account.select(Account.id)
            .where(
                (Account.status == AWAITING)
                & Account.awaiting_until.is_null(False)
                & (Account.awaiting_until <= now)
            )
            .tuples()
        ]
        if ids:
            end_awaiting(ids, now=now)
    return len(ids)


def cut_deferred(*, now: dt.datetime) -> int:
    """Trip the accounts in arrears whose cut waited for the end of the friendly window (the
    minute task).  Returns how many accounts it looked at."""
    with write_tx():
        ids = [
            a
            for (a,) in Account.select(Account.id)
            .join(Meter, on=(Meter.account == Account.id))
            .where(
                (Account.status == "arrears")
                & (Meter.status == "active")
                & (Meter.relay_desired == "on")
            )
            .distinct()
            .tuples()
        ]
        if ids:
            events = refresh_relays(ids, now=now)
            if events:
                Event.bulk_create(events, batch_size=200)
    return len(ids)


def arrears_cut_due(account: Account, now: dt.datetime) -> bool:
    """May an account in arrears be cut now (its balance at or below the trip line, and
    outside the friendly-disconnection window)?"""
    prop = Property.get_by_id(account.property_id)
    balance = LedgerAccount.get_by_id(account.wallet_id).balance_fen
    return balance <= trip_line(prop, account.credit_limit_fen) and cut_time(prop, now) <= now
