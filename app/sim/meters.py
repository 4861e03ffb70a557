"""The physics and bookkeeping of a simulated meter, shared by every protocol front end.

A ``MeterModel`` advances its registers with simulated time: ``clock()`` gives the simulated
local time (a real-time clock by default; tests pass their own).  Load follows a profile
(shops draw their load from ``open_hour`` to ``close_hour``, ``night_w`` otherwise), the
per-rate registers T1..T4 (sharp, peak, flat, valley) follow the TOU day segments, a tripped
relay / closed valve stops consumption, and a meter-held balance (meter mode) is deducted at
``price`` and trips the relay at zero unless keep-power is set.

Everything is integer: energy in 0.01 kWh (water: litres), power in W, money in fen,
price in 1/10000 yuan per kWh (per m3).  Sub-unit remainders are carried, not rounded away.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from app.clock import local_naive, utcnow

DEFAULT_SEGMENTS = (  # (start minute, rate index 0..3 = T1 sharp, T2 peak, T3 flat, T4 valley)
    (0, 3),
    (8 * 60, 2),
    (10 * 60, 1),
    (19 * 60, 0),
    (21 * 60, 2),
    (23 * 60, 3),
)


def wall_clock() -> dt.datetime:
    """A simulated meter's own clock: the local wall-clock time of the box's zone."""
    return local_naive(utcnow())


@dataclass
class MeterModel:
    address: str
    kind: str = "electricity"  # or "water"
    total: int = 0  # 0.01 kWh or litres
    rates: list[int] = field(default_factory=lambda: [0, 0, 0, 0])  # T1..T4
    modulus: int = 100_000_000  # register wraps here (999999.99 kWh)
    load_w: int = 2000  # electricity: W while open; water: litres per hour while open
    night_w: int = 0
    open_hour: int = 9
    close_hour: int = 22
    segments: tuple[tuple[int, int], ...] = DEFAULT_SEGMENTS
    supply_on: bool = True  # relay closed / valve open
    keep_power: bool = False
    keep_power_until: dt.datetime | None = None
    power_limit_w: int = 0  # 0: none; above it the meter trips itself (overload)
    overload: bool = False  # when True the load jumps to 3x (a fault to inject)
    tripped_by_overload: bool = False
    tripped_by_command: bool = False  # a remote/staff trip: a purchase does not undo it
    # meter mode (内控): the meter holds the balance and trips itself at zero
    meter_mode: bool = False
    balance_fen: int = 0
    purchase_count: int = 0
    price: int = 7000  # 1/10000 yuan per kWh (or per m3)
    offline: bool = False  # a fault: the meter stays silent
    clock: Callable[[], dt.datetime] = wall_clock
    voltage_dv: int = 2200
    _last: dt.datetime | None = None
    _carry_energy_mws: int = 0  # milliwatt-seconds (or millilitre-seconds/3600) not yet a unit
    _carry_money: int = 0

    # ---------------------------------------------------------------- time
    def power_now(self, at: dt.datetime) -> int:
        if not self.supply_on:
            return 0
        base = self.load_w if self.open_hour <= at.hour < self.close_hour else self.night_w
        return base * 3 if self.overload else base

    def rate_index(self, at: dt.datetime) -> int:
        minute = at.hour * 60 + at.minute
        idx = self.segments[0][1]
        for start, rate in self.segments:
            if start <= minute:
                idx = rate
        return idx

    def advance(self) -> None:
        """Bring the registers up to the simulated now, one minute-step at a time."""
        now = self.clock()
        if self._last is None:
            self._last = now
            return
        while self._last < now:
            step_end = min(now, self._last.replace(second=0) + dt.timedelta(minutes=1))
            seconds = int((step_end - self._last).total_seconds())
            if seconds <= 0:
                break
            self._accumulate(self._last, seconds)
            self._last = step_end

    def _accumulate(self, at: dt.datetime, seconds: int) -> None:
        power = self.power_now(at)
        if self.kind == "electricity" and self.power_limit_w and power > self.power_limit_w:
            self.supply_on = False
            self.tripped_by_overload = True
            return
        # electricity: W*s -> 0.01 kWh is 36000 W*s; water: (L/h)*s -> L is 3600
        per_unit = 36_000 if self.kind == "electricity" else 3_600
        self._carry_energy_mws += power * seconds
        units, self._carry_energy_mws = divmod(self._carry_energy_mws, per_unit)
        if not units:
            return
        self.total = (self.total + units) % self.modulus
        self.rates[self.rate_index(at)] = (self.rates[self.rate_index(at)] + units) % self.modulus
        if self.meter_mode:
            # units x price / (100 units per kWh x 100) fen
            den = 10_000 if self.kind == "electricity" else 100_000
            self._carry_money += units * self.price
            fen, self._carry_money = divmod(self._carry_money, den)
            self.balance_fen -= fen
            if self.balance_fen <= 0 and not self.keep_power_active(at):
                self.supply_on = False

    def keep_power_active(self, at: dt.datetime | None = None) -> bool:
        at = at or self.clock()
        return self.keep_power and (self.keep_power_until is None or self.keep_power_until > at)

    # ---------------------------------------------------------------- commands
    def set_supply(self, on: bool, *, commanded: bool = False) -> None:
        """Close/open the relay (valve).  ``commanded``: a remote or staff trip, which a later
        purchase does not undo (only a close command does)."""
        self.advance()
        self.supply_on = on
        self.tripped_by_command = commanded and not on
        if on:
            self.tripped_by_overload = False

    def set_keep_power(self, on: bool, until: dt.datetime | None = None) -> None:
        self.advance()
        self.keep_power = on
        self.keep_power_until = until if on else None

    def purchase(self, amount_fen: int, count: int) -> bool:
        """Accept a purchase only as the next count (anti-replay); True when accepted."""
        self.advance()
        if count != self.purchase_count + 1 or amount_fen <= 0:
            return False
        self.purchase_count = count
        self.balance_fen += amount_fen
        if self.balance_fen > 0 and not (self.tripped_by_overload or self.tripped_by_command):
            self.supply_on = True
        return True

    # ---------------------------------------------------------------- faults
    def reset_to_zero(self) -> None:
        self.advance()
        self.total = 0
        self.rates = [0, 0, 0, 0]

    def snapshot(self) -> dict[str, int | bool]:
        self.advance()
        return {
            "total": self.total,
            "t1": self.rates[0],
            "t2": self.rates[1],
            "t3": self.rates[2],
            "t4": self.rates[3],
            "power_w": self.power_now(self.clock()),
            "supply_on": self.supply_on,
            "balance_fen": self.balance_fen,
            "purchase_count": self.purchase_count,
        }


def monotonic_clock(start: dt.datetime, speed: float = 1.0) -> Callable[[], dt.datetime]:
    """A simulated clock running ``speed`` times faster than real time from ``start``."""
    t0 = time.monotonic()

    def clock() -> dt.datetime:
        return (start + dt.timedelta(seconds=(time.monotonic() - t0) * speed)).replace(
            microsecond=0
        )

    return clock
