"""Rent and property fee deducted from the wallet on a schedule (房租/物业费代扣).

A ``RecurringCharge`` divides time into periods and charges each period in advance, on its
first day (local calendar of the property):

- ``monthly``: periods start on ``day_of_month`` each month (31 means the month's last day
  in shorter months);
- ``days``: periods of ``interval_days`` days from ``start_date``.

Proration (``prorate``): when ``start_date`` is not a period start (monthly), the first period
runs from ``start_date`` to the next period start and is charged ``amount x days / days of the
full period`` rounded half up to the fen; likewise a last period cut short by ``end_date``.
Without proration a partial period is charged in full.

Each period posts one entry (kind ``rent`` or ``property_fee``: wallet debit, ``revenue:rent``
credit) with idempotency key ``rent:{charge id}:{period start}``, so running a day twice posts
nothing new, and a missed day is caught up by the next run.  A charge is posted even when the
balance cannot cover it: the tenant owes it, ``refresh_accounts`` puts the account in arrears
and the supply is cut through the command queue.  Each posting writes an Event
``rent.charged`` (the SMS part tells the tenant) besides the balance-tier events.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass

from app import clock
from app.db import write_tx
from app.domain.actors import Actor
from app.domain.audit import audit
from app.domain.errors import ValidationError
from app.domain.ledger import post_entry, system_account
from app.domain.money import MAX_SALE_FEN
from app.domain.status import refresh_accounts
from app.i18n import tr
from app.models import Account, Entry, Event, LedgerAccount, Property
from app.models.operations import RecurringCharge

KINDS = ("rent", "property_fee")
SCHEDULES = ("monthly", "days")
MAX_PERIODS_PER_RUN = 36  # a charge started long ago catches up over several runs
MAX_BACKDATE_DAYS = 366


@dataclass(frozen=True)
class Period:
    """One charging period ``[start, end)`` and what it costs."""

    start: dt.date
    end: dt.date
    amount_fen: int
    full_days: int

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    @property
    def last_day(self) -> dt.date:
        return self.end - dt.timedelta(days=1)

    @property
    def partial(self) -> bool:
        return self.days != self.full_days


def prorate(amount_fen: int, days: int, full_days: int) -> int:
    """``amount x days / full_days`` rounded half up to the fen (integers only)."""
    return (2 * amount_fen * days + full_days) // (2 * full_days)


def _due(year: int, month: int, day: int) -> dt.date:
    return dt.date(year, month, min(day, calendar.monthrange(year, month)[1]))


def _next_month(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def _prev_month(year: int, month: int) -> tuple[int, int]:
    return (year - 1, 12) if month == 1 else (year, month - 1)


def _raw_periods(
    schedule: str, start: dt.date, day_of_month: int | None, interval_days: int | None
) -> Iterator[tuple[dt.date, dt.date, int]]:
    """(period start, next period start, days of a full period), endlessly."""
    if schedule == "days":
        step = dt.timedelta(days=interval_days or 1)
        cur = start
        while True:
            yield cur, cur + step, step.days
            cur += step
    day = day_of_month or 1
    first = _due(start.year, start.month, day)
    if first < start:
        first = _due(*_next_month(start.year, start.month), day)
    if first > start:
        prev = _due(*_prev_month(first.year, first.month), day)
        yield start, first, (first - prev).days
    cur = first
    while True:
        nxt = _due(*_next_month(cur.year, cur.month), day)
        yield cur, nxt, (nxt - cur).days
        cur = nxt


def schedule_periods(
    *,
    schedule: str,
    amount_fen: int,
    start: dt.date,
    until: dt.date,
    end: dt.date | None = None,
    day_of_month: int | None = None,
    interval_days: int | None = None,
    prorate_partial: bool = True,
    after: dt.date | None = None,
    limit: int = MAX_PERIODS_PER_RUN,
) -> list[Period]:
    """The periods starting after ``after`` and on or before ``until`` (a pure function).

    ``end`` is the last day charged, inclusive.
    """
    stop = end + dt.timedelta(days=1) if end is not None else None
    out: list[Period] = []
    for p_start, p_end, full in _raw_periods(schedule, start, day_of_month, interval_days):
        if p_start > until or (stop is not None and p_start >= stop) or len(out) >= limit:
            break
        if after is not None and p_start <= after:
            continue
        if stop is not None and p_end > stop:
            p_end = stop
        days = (p_end - p_start).days
        amount = (
            amount_fen if days == full or not prorate_partial else prorate(amount_fen, days, full)
        )
        out.append(Period(start=p_start, end=p_end, amount_fen=amount, full_days=full))
    return out


def periods_due(charge: RecurringCharge, today: dt.date) -> list[Period]:
    """The periods of ``charge`` due by ``today`` and not charged yet."""
    return schedule_periods(
        schedule=charge.schedule,
        amount_fen=charge.amount_fen,
        start=charge.start_date,
        until=today,
        end=charge.end_date,
        day_of_month=charge.day_of_month,
        interval_days=charge.interval_days,
        prorate_partial=charge.prorate,
        after=charge.last_period,
    )


def entry_key(charge_id: int, period_start: dt.date) -> str:
    return f"rent:{charge_id}:{period_start.isoformat()}"


def create_recurring_charge(
    account: Account,
    *,
    kind: str,
    amount_fen: int,
    schedule: str,
    start_date: dt.date,
    actor: Actor,
    now: dt.datetime,
    day_of_month: int | None = None,
    interval_days: int | None = None,
    end_date: dt.date | None = None,
    prorate_partial: bool = True,
    name: str = "",
) -> RecurringCharge:
    """Set up rent or a property fee for an open account."""
    actor.require("charges.edit")
    if kind not in KINDS:
        raise ValidationError(
            tr("unknown charge kind '%(kind)s' (rent, property_fee)", kind=kind), "kind"
        )
    if not isinstance(amount_fen, int) or isinstance(amount_fen, bool) or amount_fen <= 0:
        raise ValidationError(tr("the amount must be greater than zero"), "amount")
    if amount_fen > MAX_SALE_FEN:
        raise ValidationError(tr("the amount is not plausible for a recurring charge"), "amount")
    if schedule not in SCHEDULES:
        raise ValidationError(
            tr("unknown schedule '%(schedule)s' (monthly, days)", schedule=schedule), "schedule"
        )
    if schedule == "monthly":
        if not isinstance(day_of_month, int) or not 1 <= day_of_month <= 31:
            raise ValidationError(
                tr("a monthly charge needs a day of the month, 1-31"), "day_of_month"
            )
        interval_days = None
    else:
        if not isinstance(interval_days, int) or not 1 <= interval_days <= 366:
            raise ValidationError(
                tr("give the number of days between charges, 1-366"), "interval_days"
            )
        day_of_month = None
    if not isinstance(start_date, dt.date):
        raise ValidationError(tr("give a start date"), "start_date")
    if (clock.site_today(account.property, now) - start_date).days > MAX_BACKDATE_DAYS:
        raise ValidationError(tr("the start date is more than a year ago"), "start_date")
    if end_date is not None and end_date < start_date:
        raise ValidationError(tr("the end date is before the start date"), "end_date")
    with write_tx():
        acct = Account.get_by_id(account.id)
        if acct.status in ("closed", "not_opened"):
            raise ValidationError(
                tr("account %(number)s is not open", number=acct.number), "account"
            )
        charge = RecurringCharge.create(
            property=acct.property_id,
            account=acct,
            kind=kind,
            name=(name or "").strip()[:80],
            amount_fen=amount_fen,
            schedule=schedule,
            day_of_month=day_of_month,
            interval_days=interval_days,
            start_date=start_date,
            end_date=end_date,
            prorate=prorate_partial,
            created_by=actor.name,
            created_at=now,
        )
        audit(
            actor,
            "charge.create",
            charge,
            now=now,
            account=acct.number,
            kind=kind,
            amount_fen=amount_fen,
            schedule=schedule,
            day_of_month=day_of_month,
            interval_days=interval_days,
            start_date=start_date.isoformat(),
            end_date=end_date.isoformat() if end_date else None,
            prorate=prorate_partial,
        )
    return charge


def end_recurring_charge(
    charge: RecurringCharge, *, end_date: dt.date, actor: Actor, now: dt.datetime
) -> RecurringCharge:
    """Stop a charge after ``end_date`` (the last day charged).  Periods already charged stay
    charged; correct them with a reversing entry."""
    actor.require("charges.edit")
    with write_tx():
        charge = RecurringCharge.get_by_id(charge.id)
        floor = charge.last_period or (charge.start_date - dt.timedelta(days=1))
        if end_date < floor:
            raise ValidationError(
                tr(
                    "the period from %(day)s is charged already; the end date cannot be earlier",
                    day=floor.isoformat(),
                ),
                "end_date",
            )
        RecurringCharge.update(end_date=end_date).where(RecurringCharge.id == charge.id).execute()
        audit(actor, "charge.end", charge, now=now, end_date=end_date.isoformat())
    return RecurringCharge.get_by_id(charge.id)


@dataclass
class RentRun:
    """What ``charge_due`` did."""

    periods: int = 0
    amount_fen: int = 0
    accounts: int = 0
    short: int = 0  # accounts whose balance could not cover what was charged
    skipped: int = 0  # charges of closed accounts

    def counts(self) -> dict[str, int]:
        return dict(self.__dict__)


def _label(charge: RecurringCharge) -> str:
    return charge.name or ("rent" if charge.kind == "rent" else "property fee")


def charge_due(prop: Property, *, today: dt.date, actor: Actor, now: dt.datetime) -> RentRun:
    """Post every period due by ``today`` (local) for the property's active charges.

    One transaction per recurring charge; idempotent per period.
    """
    actor.require("operations.run")
    run = RentRun()
    charged_accounts: set[int] = set()
    charges = list(
        RecurringCharge.select()
        .where((RecurringCharge.property == prop.id) & (RecurringCharge.active == True))
        .order_by(RecurringCharge.id)
    )
    for charge in charges:
        with write_tx():
            charge = RecurringCharge.get_by_id(charge.id)
            acct = Account.get_by_id(charge.account_id)
            due = periods_due(charge, today)
            if not due:
                continue
            if acct.status in ("closed", "not_opened"):
                run.skipped += 1
                continue
            revenue = system_account(prop.id, "revenue:rent")
            posted = 0
            for period in due:
                key = entry_key(charge.id, period.start)
                if (
                    period.amount_fen > 0
                    and not Entry.select().where(Entry.idempotency_key == key).exists()
                ):
                    memo = f"{_label(charge)} {period.start.isoformat()} - {period.last_day.isoformat()}"
                    entry = post_entry(
                        charge.kind,
                        [(acct.wallet_id, period.amount_fen), (revenue, -period.amount_fen)],
                        actor=actor.name,
                        now=now,
                        memo=memo,
                        idempotency_key=key,
                    )
                    balance = LedgerAccount.get_by_id(acct.wallet_id).balance_fen
                    Event.create(
                        kind="rent.charged",
                        property=prop.id,
                        account=acct.id,
                        created_at=now,
                        data=json.dumps(
                            {
                                "charge": charge.id,
                                "kind": charge.kind,
                                "name": charge.name,
                                "entry": entry.id,
                                "period_start": period.start.isoformat(),
                                "period_end": period.last_day.isoformat(),
                                "amount_fen": period.amount_fen,
                                "balance_fen": balance,
                                "short": balance < 0,
                            },
                            ensure_ascii=False,
                        ),
                    )
                    audit(
                        actor,
                        "charge.post",
                        charge,
                        now=now,
                        account=acct.number,
                        period_start=period.start.isoformat(),
                        amount_fen=period.amount_fen,
                    )
                    run.periods += 1
                    run.amount_fen += period.amount_fen
                    posted += 1
                RecurringCharge.update(last_period=period.start).where(
                    RecurringCharge.id == charge.id
                ).execute()
            if posted:
                charged_accounts.add(acct.id)
                refresh_accounts([acct.id], now=now)
    run.accounts = len(charged_accounts)
    if charged_accounts:
        run.short = (
            Account.select()
            .join(LedgerAccount, on=(Account.wallet == LedgerAccount.id))
            .where(Account.id.in_(sorted(charged_accounts)) & (LedgerAccount.balance_fen < 0))
            .count()
        )
    return run
