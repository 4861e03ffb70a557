"""Simulated CJ/T 188-2004 water meters on a ``VirtualBus`` (protocols.md section 5).

Public API
----------
``framer(buf) -> int``
    The ``VirtualBus`` framer for CJ/T 188 requests: up to four ``FE`` bytes are part of the
    frame; returns the length of the first complete, checksum-valid frame, 0 while more bytes
    are needed, -1 when the first byte cannot start one (garbage, a fifth ``FE``, L < 3, a bad
    checksum or end byte).
``VirtualCjt188Meter(model, address, response_delay=0.05, di_order="standard", *,
meter_type=MeterType.COLD_WATER, unit="m3", reply_preamble=0, battery_low=False)``
    One water meter (a ``VirtualDevice``) answering from a ``MeterModel`` of kind "water".

What it answers (requests for another address or meter type, and everything while
``model.offline`` is set, get silence; ``AA`` wildcards in the address and T = ``AA`` match):

* read ``01`` DI ``901F`` -> ``81``: cumulative flow (``model.total`` litres, sent in m3 with
  0.01 m3 = 10 L resolution - floored - or, with ``unit="L"``, in 0.01 L), the settlement-day
  flow (``settlement_litres``, the register when the meter was created), the meter time
  (``model.clock()``) and ST: valve open (00) / closed (01) from ``model.supply_on``, battery
  bit from ``battery_low``.
* write ``04`` DI ``A017`` with ``55`` (open) / ``99`` (close) -> ``model.set_supply`` and
  ``84`` with ST ST.
* read address ``03`` DI ``810A`` -> ``83`` (the address is in the header).
* anything else -> abnormal reply (control | ``C0``) with ``SER ST ST`` (the error frame of
  the KingDa firmware cited in protocols.md 5.1).

The meter only understands its own DI byte order (``di_order``, protocols.md 5.1): a request
in the other order is an unknown DI and gets the abnormal reply.  Its replies use its order.
"""

from __future__ import annotations

import datetime as dt

from app.devices.cjt188 import (
    DI,
    DiOrder,
    Frame,
    FrameDecoder,
    Function,
    MeterType,
    Unit,
    ValveState,
    encode_frame,
)
from app.devices.framing import (
    END,
    MAX_PREAMBLE,
    PREAMBLE,
    START,
    WILDCARD_BYTE,
    ProtocolError,
    address_matches,
    address_to_wire,
    checksum,
    to_bcd,
)
from app.sim.meters import MeterModel

__all__ = ["VirtualCjt188Meter", "framer"]

_HEADER = 11  # 68 T A0..A6 C L
_OVERHEAD = 13  # header + CS + 16
_MIN_DATA = 3  # DI DI SER
_REPLY = 0x80
_ABNORMAL_REPLY = 0xC0
_VALVE_OPEN = 0x55
_VALVE_CLOSE = 0x99
_VOLUME_MODULUS = 100_000_000  # XXXXXX.XX: 8 BCD digits


def framer(buf: bytes) -> int:
    """Length of the CJ/T 188 request frame at the start of ``buf`` including up to four
    ``FE`` bytes; 0 while incomplete; -1 when the first byte cannot start a frame."""
    i = 0
    while i < len(buf) and buf[i] == PREAMBLE:
        i += 1
    if i > MAX_PREAMBLE:
        return -1
    if i == len(buf):
        return 0
    if buf[i] != START:
        return -1
    if len(buf) - i < _HEADER:
        return 0
    length = buf[i + 10]
    if length < _MIN_DATA:
        return -1
    n = i + _OVERHEAD + length
    if len(buf) < n:
        return 0
    if buf[n - 1] != END or checksum(buf[i : n - 2]) != buf[n - 2]:
        return -1
    return n


class VirtualCjt188Meter:
    """One simulated CJ/T 188 water meter (see the module docstring)."""

    def __init__(
        self,
        model: MeterModel,
        address: str,
        response_delay: float = 0.05,
        di_order: str = "standard",
        *,
        meter_type: int = MeterType.COLD_WATER,
        unit: str = "m3",
        reply_preamble: int = 0,
        battery_low: bool = False,
    ) -> None:
        if unit not in ("m3", "L"):
            raise ValueError(f"unit must be 'm3' or 'L', not {unit!r}")
        self.model = model
        self.address = address
        self._wire = address_to_wire(address, 7)
        self.response_delay = response_delay
        self.di_order = DiOrder(di_order)
        self.meter_type = meter_type
        self.unit = unit
        self.reply_preamble = reply_preamble
        self.battery_low = battery_low
        self.settlement_litres = model.total
        """Cumulative flow on the last settlement day (litres)."""

    # ------------------------------------------------------------------ encoding
    def _di_wire(self, di: int) -> bytes:
        wire = di.to_bytes(2, "big")
        return wire if self.di_order is DiOrder.STANDARD else wire[::-1]

    def _di_read(self, wire: bytes) -> int:
        return int.from_bytes(wire, "big" if self.di_order is DiOrder.STANDARD else "little")

    def _volume(self, litres: int) -> bytes:
        if self.unit == "m3":
            return to_bcd(litres // 10 % _VOLUME_MODULUS, 4) + bytes([Unit.CUBIC_METRE])
        return to_bcd(litres * 100 % _VOLUME_MODULUS, 4) + bytes([Unit.LITRE])

    def status(self) -> bytes:
        """ST ST: valve bits D0-D1 (00 open, 01 closed), battery low bit D2; ST2 = 0."""
        st1 = int(ValveState.OPEN if self.model.supply_on else ValveState.CLOSED)
        if self.battery_low:
            st1 |= 0b100
        return bytes([st1, 0x00])

    def _meter_data(self) -> bytes:
        model = self.model
        model.advance()
        now = model.clock()
        clock = (
            now.second,
            now.minute,
            now.hour,
            now.day,
            now.month,
            now.year % 100,
            now.year // 100,
        )
        return (
            self._volume(model.total)
            + self._volume(self.settlement_litres)
            + b"".join(to_bcd(f, 1) for f in clock)
            + self.status()
        )

    def _reply(self, function: int, di: int, ser: int, payload: bytes = b"") -> bytes:
        return encode_frame(
            self.meter_type,
            self.address,
            _REPLY | function,
            self._di_wire(di) + bytes([ser]) + payload,
            preamble=self.reply_preamble,
        )

    def _abnormal(self, function: int, ser: int) -> bytes:
        return encode_frame(
            self.meter_type,
            self.address,
            _ABNORMAL_REPLY | function,
            bytes([ser]) + self.status(),
            preamble=self.reply_preamble,
        )

    # ------------------------------------------------------------------ bus side
    def handle(self, request: bytes) -> bytes | None:
        """The reply to one request frame, or None (silence)."""
        frames = FrameDecoder().feed(request)
        if not frames:
            return None
        frame = frames[0]
        if frame.is_reply or self.model.offline or not self._addressed(frame):
            return None
        function = frame.function
        di = self._di_read(frame.data[:2])
        ser = frame.data[2]
        payload = frame.data[3:]
        if function == Function.READ_DATA and di == DI.METER_DATA:
            return self._reply(function, di, ser, self._meter_data())
        if function == Function.READ_ADDRESS and di == DI.ADDRESS:
            return self._reply(function, di, ser)
        if (
            function == Function.WRITE_DATA
            and di == DI.VALVE_CONTROL
            and len(payload) == 1
            and payload[0] in (_VALVE_OPEN, _VALVE_CLOSE)
        ):
            self.model.set_supply(payload[0] == _VALVE_OPEN, commanded=payload[0] != _VALVE_OPEN)
            return self._reply(function, di, ser, self.status())
        return self._abnormal(function, ser)

    def _addressed(self, frame: Frame) -> bool:
        if frame.meter_type not in (self.meter_type, WILDCARD_BYTE):
            return False
        try:
            return address_matches(frame.address, self._wire)
        except ProtocolError:
            return False

    def meter_time(self) -> dt.datetime:
        """The meter's clock (the model clock: CJ/T 188 time setting is not simulated)."""
        return self.model.clock()
