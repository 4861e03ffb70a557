"""What every meter driver offers the collector, whatever the protocol.

Values are integers in fixed units (never floats):
  total, t1..t4   raw cumulative registers: 0.01 kWh (electricity) or litres (water)
  power_w         active power, W            voltage_dv   0.1 V        current_ma   mA
  balance_fen     meter-held remaining amount, fen                     purchase_count
  supply          "on" (relay closed / valve open) or "off"
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Protocol


class NoAnswer(Exception):
    """The meter did not answer in time (or answered garbage only)."""


class Refused(Exception):
    """The meter answered with an error (abnormal reply / Modbus exception)."""


@dataclass
class MeterRef:
    """The driver's view of one meter.  ``capabilities`` is the driver's memory of what this
    meter supports (e.g. ``{"block_read": False}``); the collector persists it."""

    address: str
    protocol: str
    kind: str = "electricity"
    profile: str = ""
    capabilities: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)  # e.g. {"di_order": "swapped"}


@dataclass
class MeterReading:
    total: int
    t1: int | None = None
    t2: int | None = None
    t3: int | None = None
    t4: int | None = None
    power_w: int | None = None
    voltage_dv: int | None = None
    current_ma: int | None = None
    balance_fen: int | None = None
    purchase_count: int | None = None
    supply: str | None = None
    keep_power: bool | None = None
    meter_time: dt.datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class MeterDriver(Protocol):
    async def read(self, meter: MeterRef) -> MeterReading:
        """Everything the meter offers in one poll.  Raises NoAnswer / Refused /
        ConnectionError."""

    async def read_supply(self, meter: MeterRef) -> str:
        """'on' or 'off' as the meter reports it now."""

    async def set_supply(self, meter: MeterRef, on: bool, *, valid_until: dt.datetime) -> None:
        """Close (on) or open (off) the relay / valve.  Raises Refused when the meter says no."""

    async def keep_power(self, meter: MeterRef, on: bool, *, valid_until: dt.datetime) -> None:
        """Keep power (保电) on or release it."""

    async def push_purchase(self, meter: MeterRef, amount_fen: int, count: int) -> None:
        """Meter-held balance: add ``amount_fen`` as purchase number ``count`` (last + 1)."""

    async def broadcast_time(self, when: dt.datetime) -> None:
        """Set every meter's clock on the bus (local time)."""
