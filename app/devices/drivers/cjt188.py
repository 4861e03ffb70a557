"""CJ/T 188-2004 water meters behind a serial-to-TCP gateway (protocols.md section 5), driven
through a ``GatewayLink``.

Public API
----------
``Cjt188Driver(link, timeout=1.0, retries=1, preamble=2)``
    A ``MeterDriver`` (``app.devices.drivers.base``) for ``protocol = "cjt188"``.

Per-meter options (``MeterRef.options``):

* ``di_order``: ``"standard"`` (``90 1F``, default) or ``"swapped"`` (``1F 90``) - the DI byte
  order of the meter model (protocols.md 5.1; replies are accepted in either order);
* ``meter_type``: the T byte sent (default ``0x10`` cold water).

Reading (``read``): DI ``901F`` - ``total`` is the cumulative flow in whole litres (exact for
m3 registers: 0.01 m3 = 10 L; floored for L registers), ``supply`` is ``"on"`` when the valve
is open, ``"off"`` when closed, ``None`` when the meter reports the valve abnormal;
``meter_time`` is the meter clock; ``extra`` carries ``settlement_litres``, ``valve`` and
``battery_low``.

Commands: ``set_supply`` sends A017 valve open (55) / close (99); ``valid_until`` is not sent
(CJ/T 188 has no command expiry).  ``read_supply`` reads 901F.  ``keep_power`` and
``push_purchase`` raise ``Refused`` - a water meter's balance is held by the box.
``broadcast_time`` does nothing (CJ/T 188-2004 has no broadcast time).

Errors: ``NoAnswer`` when the meter stays silent through ``retries`` repeats of ``timeout``
seconds or answers with content that does not decode; ``Refused`` on an abnormal reply;
``ConnectionError`` propagates from the link.  Replies are matched with
``cjt188.is_reply_to`` (address, function) and the expected DI, so a reply from another meter
is never taken.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from app.devices import cjt188
from app.devices.cjt188 import (
    DI,
    DiOrder,
    ErrorReply,
    Frame,
    FrameDecoder,
    Function,
    MeterData,
    MeterType,
    Reply,
    ValveState,
)
from app.devices.drivers.base import MeterReading, MeterRef, NoAnswer, Refused
from app.devices.framing import ProtocolError
from app.devices.transport import GatewayLink

__all__ = ["Cjt188Driver"]


class Cjt188Driver:
    """A ``MeterDriver`` for CJ/T 188 water meters on one gateway (see the module docstring)."""

    def __init__(
        self, link: GatewayLink[Any], timeout: float = 1.0, retries: int = 1, preamble: int = 2
    ) -> None:
        if retries < 0:
            raise ValueError("retries must not be negative")
        self.link = link
        self.timeout = timeout
        self.retries = retries
        self.preamble = preamble
        self._ser = 0

    # ------------------------------------------------------------------ plumbing
    def _next_ser(self) -> int:
        self._ser = (self._ser + 1) & 0xFF
        return self._ser

    @staticmethod
    def _di_order(meter: MeterRef) -> DiOrder:
        value = meter.options.get("di_order", "standard")
        try:
            return DiOrder(value)
        except ValueError:
            raise ValueError(
                f"meter {meter.address}: di_order must be 'standard' or 'swapped', not {value!r}"
            ) from None

    @staticmethod
    def _meter_type(meter: MeterRef) -> int:
        return int(meter.options.get("meter_type", MeterType.COLD_WATER))

    async def _request(
        self, meter: MeterRef, request: bytes, function: int, di: int, what: str
    ) -> Reply:
        """Send ``request`` until a matching reply comes; raise ``Refused`` for an abnormal
        reply and ``NoAnswer`` for silence."""
        address = meter.address

        def match(frame: Frame) -> bool:
            try:
                if not cjt188.is_reply_to(frame, address, function):
                    return False
                reply = cjt188.parse_reply(frame)
            except ProtocolError:
                return False
            return isinstance(reply, ErrorReply) or reply.di == di

        attempts = 1 + self.retries
        for _ in range(attempts):
            frame = await self.link.transact(request, FrameDecoder(), match, self.timeout)
            if frame is None:
                continue
            reply = cjt188.parse_reply(frame)
            if isinstance(reply, ErrorReply):
                raise Refused(
                    f"water meter {address} refused {what} "
                    f"(abnormal reply, data {reply.data.hex(' ')})"
                )
            return reply
        raise NoAnswer(f"water meter {address}: no answer to {what} ({attempts} attempts)")

    async def _meter_data(self, meter: MeterRef) -> MeterData:
        request = cjt188.encode_read_meter_data(
            meter.address,
            meter_type=self._meter_type(meter),
            ser=self._next_ser(),
            di_order=self._di_order(meter),
            preamble=self.preamble,
        )
        reply = await self._request(meter, request, Function.READ_DATA, DI.METER_DATA, "read 901F")
        try:
            return cjt188.decode_meter_data(reply.payload)
        except ProtocolError as exc:
            raise NoAnswer(f"water meter {meter.address}: undecodable 901F reply: {exc}") from None

    # ------------------------------------------------------------------ MeterDriver
    async def read(self, meter: MeterRef) -> MeterReading:
        """Cumulative flow (litres), valve state and meter time from one 901F read."""
        data = await self._meter_data(meter)
        valve = data.status.valve
        supply = {ValveState.OPEN: "on", ValveState.CLOSED: "off"}.get(valve)
        return MeterReading(
            total=data.cumulative.litres,
            supply=supply,
            meter_time=data.meter_time,
            extra={
                "settlement_litres": data.settlement.litres,
                "valve": valve.name.lower(),
                "battery_low": data.status.battery_low,
            },
        )

    async def read_supply(self, meter: MeterRef) -> str:
        """'on' (valve open) or 'off' (closed); ``Refused`` when the valve reports abnormal."""
        valve = (await self._meter_data(meter)).status.valve
        if valve is ValveState.OPEN:
            return "on"
        if valve is ValveState.CLOSED:
            return "off"
        raise Refused(f"water meter {meter.address} reports its valve {valve.name.lower()}")

    async def set_supply(self, meter: MeterRef, on: bool, *, valid_until: dt.datetime) -> None:
        """Open (on) or close (off) the valve with A017; ``valid_until`` is not sent."""
        request = cjt188.encode_valve_control(
            meter.address,
            on,
            meter_type=self._meter_type(meter),
            ser=self._next_ser(),
            di_order=self._di_order(meter),
            preamble=self.preamble,
        )
        await self._request(
            meter,
            request,
            Function.WRITE_DATA,
            DI.VALVE_CONTROL,
            f"valve {'open' if on else 'close'} (A017)",
        )

    async def keep_power(self, meter: MeterRef, on: bool, *, valid_until: dt.datetime) -> None:
        """Not offered by water meters."""
        raise Refused("not supported by water meters")

    async def push_purchase(self, meter: MeterRef, amount_fen: int, count: int) -> None:
        """Not offered: a water meter's balance is held by the box."""
        raise Refused("not supported by water meters")

    async def broadcast_time(self, when: dt.datetime) -> None:
        """Nothing to do: CJ/T 188-2004 defines no broadcast time."""
