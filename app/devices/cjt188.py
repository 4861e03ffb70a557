"""CJ/T 188-2004 codec for water meters (protocols.md section 5).

Pure and stdlib-only: bytes in, bytes or values out.  No I/O, no floats -
volumes are ints (litres, plus the raw count and unit code for audit).

Public API
----------
Frames and streams
    ``Frame``                       one checksum-valid frame
    ``FrameDecoder``                ``feed(data) -> list[Frame]``; ``errors``,
                                    ``discarded``, ``pending``, ``reset()``; never raises
    ``encode_frame(meter_type, address, control, data, *, preamble=0) -> bytes``
Requests
    ``encode_read_meter_data(address, *, meter_type=MeterType.COLD_WATER, ser=0,
    di_order=DiOrder.STANDARD, preamble=0) -> bytes``          control 01, DI 901F
    ``encode_valve_control(address, open_valve, *, meter_type=MeterType.COLD_WATER,
    ser=0, di_order=DiOrder.STANDARD, preamble=0) -> bytes``   control 04, DI A017
    ``encode_read_address(*, ser=0, di_order=DiOrder.STANDARD, preamble=0) -> bytes``
                                                               control 03, DI 810A
Replies
    ``is_reply_to(frame, address, function) -> bool``
    ``parse_reply(frame) -> Reply | ErrorReply``
    ``Reply(meter_type, address, function, di, di_order, ser, payload)``,
    ``ErrorReply(meter_type, address, function, data)``
    ``decode_meter_data(payload) -> MeterData``     901F reply payload
    ``decode_status(payload) -> MeterStatus``       A017 reply payload (ST ST)
    ``MeterData(cumulative, settlement, meter_time, status)``,
    ``Volume(raw, unit).litres``, ``MeterStatus(raw, valve, battery_low)``
Constants
    ``DI``, ``DiOrder``, ``Function``, ``MeterType``, ``Unit``, ``ValveState``,
    ``Volume``, ``WILDCARD_ADDRESS``, ``ProtocolError``

Addresses are 14-character strings in human order (A6 first, e.g.
``"20250601000001"``); ``AA`` bytes are wildcards.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from app.devices.framing import (
    END,
    START,
    Probe,
    ProtocolError,
    StreamDecoder,
    address_from_wire,
    address_matches,
    address_to_wire,
    checksum,
    from_bcd,
    preamble_bytes,
)

__all__ = [
    "DI",
    "WILDCARD_ADDRESS",
    "DiOrder",
    "ErrorReply",
    "Frame",
    "FrameDecoder",
    "Function",
    "MeterData",
    "MeterStatus",
    "MeterType",
    "ProtocolError",
    "Reply",
    "Unit",
    "ValveState",
    "Volume",
    "decode_meter_data",
    "decode_status",
    "encode_frame",
    "encode_read_address",
    "encode_read_meter_data",
    "encode_valve_control",
    "is_reply_to",
    "parse_reply",
]

ADDRESS_LENGTH = 7
WILDCARD_ADDRESS = "AA" * ADDRESS_LENGTH
"""Wildcard address (section 5.1): the single meter on the bus answers."""

_HEADER_LENGTH = 11  # 68 T A0..A6 C L
_OVERHEAD = 13  # header + CS + 16
_MIN_DATA = 3  # DI0 DI1 SER

_DIRECTION_REPLY = 0x80
_ABNORMAL = 0x40
_FUNCTION_MASK = 0x3F

_VALVE_OPEN = 0x55
_VALVE_CLOSE = 0x99


class MeterType(enum.IntEnum):
    """Meter type byte T (section 5.1)."""

    COLD_WATER = 0x10
    HOT_WATER = 0x11
    DRINKING_WATER = 0x12
    RECLAIMED_WATER = 0x13
    HEAT = 0x20
    COOLING = 0x21
    GAS = 0x30
    ELECTRICITY = 0x40
    WILDCARD = 0xAA


class Function(enum.IntEnum):
    """Control code function bits D5..D0; replies set D7, errors D7 and D6 (5.1)."""

    READ_DATA = 0x01
    READ_ADDRESS = 0x03
    WRITE_DATA = 0x04
    READ_KEY_VERSION = 0x09
    WRITE_ADDRESS = 0x15
    WRITE_SYNC = 0x16


class DI(enum.IntEnum):
    """Data identifiers, written DI0 DI1 as in the standard's table (section 5.1)."""

    METER_DATA = 0x901F
    PRICE_TABLE = 0x8102
    SETTLEMENT_DAY = 0x8103
    READING_DAY = 0x8104
    PURCHASED_AMOUNT = 0x8105
    KEY_VERSION = 0x8106
    ADDRESS = 0x810A
    WRITE_PRICE_TABLE = 0xA010
    WRITE_SETTLEMENT_DAY = 0xA011
    WRITE_READING_DAY = 0xA012
    WRITE_PURCHASE_AMOUNT = 0xA013
    WRITE_KEY = 0xA014
    WRITE_TIME = 0xA015
    WRITE_SYNC_DATA = 0xA016
    VALVE_CONTROL = 0xA017
    WRITE_ADDRESS = 0xA018
    FACTORY_ENABLE = 0xA019


_KNOWN_DIS = frozenset(DI) | frozenset(range(0xD120, 0xD12C))  # + history months 1-12


class DiOrder(enum.Enum):
    """Byte order of the DI on the wire - it varies between meter models (5.1).

    ``STANDARD`` sends DI0 then DI1 as the standard's table lists them
    (``90 1F``; KingDa firmware).  ``SWAPPED`` sends ``1F 90`` (the "SC" water
    meter and ``python_cjt188``).  Decoding accepts both.
    """

    STANDARD = "standard"
    SWAPPED = "swapped"


class Unit(enum.IntEnum):
    """Unit codes (section 5.1)."""

    J = 0x01
    WH = 0x02
    KWH = 0x05
    MWH = 0x08
    MWH_X100 = 0x0A
    KJ = 0x0B
    MJ = 0x0E
    GJ = 0x11
    GJ_X100 = 0x13
    W = 0x14
    KW = 0x17
    MW = 0x1A
    LITRE = 0x29
    CUBIC_METRE = 0x2C
    LITRE_PER_HOUR = 0x32
    CUBIC_METRE_PER_HOUR = 0x35


class ValveState(enum.IntEnum):
    """ST byte 1, bits D0-D1 (section 5.1)."""

    OPEN = 0b00
    CLOSED = 0b01
    UNDEFINED = 0b10
    ABNORMAL = 0b11


# -- frames ---------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """One checksum-valid CJ/T 188 frame (section 5.1)."""

    meter_type: int
    """Meter type byte T (see ``MeterType``)."""
    address: str
    """14 characters, human order (A6 first)."""
    control: int
    data: bytes
    """The L data bytes: DI DI SER and the payload (no +33 transform in 188)."""
    raw: bytes
    """The frame as received, from 68 to 16 (no preamble)."""

    @property
    def function(self) -> int:
        """Function code, control bits D5..D0."""
        return self.control & _FUNCTION_MASK

    @property
    def is_reply(self) -> bool:
        """Direction bit D7: sent by a meter."""
        return bool(self.control & _DIRECTION_REPLY)

    @property
    def is_abnormal(self) -> bool:
        """Bit D6: abnormal (error) reply."""
        return bool(self.control & _ABNORMAL)


class FrameDecoder(StreamDecoder[Frame]):
    """Streaming CJ/T 188 frame decoder (section 5.1).

    ``feed(data) -> list[Frame]`` never raises.  It skips ``FE`` preambles and
    garbage, returns several frames from one read and reassembles a frame
    split across reads.  A header is ``68 T A0..A6 C L`` with L >= 3 (DI DI
    SER).  Candidates with a wrong checksum or end byte, or abandoned as
    truncated, are dropped and counted in ``errors``.  See ``StreamDecoder``.
    """

    def _probe(self, buf: bytes) -> int | Probe:
        if len(buf) < _HEADER_LENGTH:
            return Probe.NEED_MORE
        if buf[10] < _MIN_DATA:
            return Probe.NOT_A_FRAME
        return _OVERHEAD + buf[10]

    def _build(self, raw: bytes) -> Frame:
        return Frame(
            meter_type=raw[1],
            address=address_from_wire(raw[2:9]),
            control=raw[9],
            data=raw[11:-2],
            raw=raw,
        )


def encode_frame(
    meter_type: int, address: str, control: int, data: bytes, *, preamble: int = 0
) -> bytes:
    """Build a CJ/T 188 frame (section 5.1).

    ``data`` is everything counted by L (DI DI SER payload); there is no +33
    transform.  ``preamble`` is the number of ``FE`` bytes (0-4); M-Bus and
    RS-485 water meters usually expect at least 2.
    """
    if not (0 <= meter_type <= 0xFF and 0 <= control <= 0xFF):
        raise ProtocolError("meter type and control code must be single bytes")
    if not _MIN_DATA <= len(data) <= 0xFF:
        raise ProtocolError(f"data must be 3-255 bytes (DI DI SER ...), got {len(data)}")
    body = (
        bytes([START, meter_type])
        + address_to_wire(address, ADDRESS_LENGTH)
        + bytes([control, len(data)])
        + data
    )
    return preamble_bytes(preamble) + body + bytes([checksum(body), END])


def _di_wire(di: int, order: DiOrder) -> bytes:
    wire = di.to_bytes(2, "big")
    return wire if order is DiOrder.STANDARD else wire[::-1]


def _di_read(wire: bytes) -> tuple[int, DiOrder]:
    """Normalise a wire DI, accepting both byte orders (section 5.1)."""
    standard = int.from_bytes(wire, "big")
    swapped = int.from_bytes(wire, "little")
    if standard not in _KNOWN_DIS and swapped in _KNOWN_DIS:
        return swapped, DiOrder.SWAPPED
    return standard, DiOrder.STANDARD


def _ser(ser: int) -> bytes:
    if not 0 <= ser <= 0xFF:
        raise ProtocolError(f"SER out of range: {ser}")
    return bytes([ser])


def encode_read_meter_data(
    address: str,
    *,
    meter_type: int = MeterType.COLD_WATER,
    ser: int = 0,
    di_order: DiOrder = DiOrder.STANDARD,
    preamble: int = 0,
) -> bytes:
    """Read current metering data: control 01, DI 901F, SER (section 5.1).

    ``di_order`` must match the meter model (``DiOrder``).
    """
    data = _di_wire(DI.METER_DATA, di_order) + _ser(ser)
    return encode_frame(meter_type, address, Function.READ_DATA, data, preamble=preamble)


def encode_valve_control(
    address: str,
    open_valve: bool,
    *,
    meter_type: int = MeterType.COLD_WATER,
    ser: int = 0,
    di_order: DiOrder = DiOrder.STANDARD,
    preamble: int = 0,
) -> bytes:
    """Valve control: control 04, DI A017, SER, then 55 (open) or 99 (close) (5.1)."""
    data = (
        _di_wire(DI.VALVE_CONTROL, di_order)
        + _ser(ser)
        + bytes([_VALVE_OPEN if open_valve else _VALVE_CLOSE])
    )
    return encode_frame(meter_type, address, Function.WRITE_DATA, data, preamble=preamble)


def encode_read_address(
    *, ser: int = 0, di_order: DiOrder = DiOrder.STANDARD, preamble: int = 0
) -> bytes:
    """Read the address of the only meter on the bus: T=AA, address AA x 7,
    control 03, DI 810A, SER (section 5.2)."""
    data = _di_wire(DI.ADDRESS, di_order) + _ser(ser)
    return encode_frame(
        MeterType.WILDCARD, WILDCARD_ADDRESS, Function.READ_ADDRESS, data, preamble=preamble
    )


# -- replies --------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """Normal reply: DI, SER and the payload that follows them."""

    meter_type: int
    address: str
    function: int
    di: int
    """Normalised DI, e.g. ``0x901F`` whichever byte order the meter used."""
    di_order: DiOrder
    """The byte order the meter used on the wire."""
    ser: int
    payload: bytes
    """Bytes after SER."""


@dataclass(frozen=True)
class ErrorReply:
    """Abnormal reply (control bit D6 set, e.g. C1 / C4).

    protocols.md does not give the layout of its data, so it is kept raw.
    """

    meter_type: int
    address: str
    function: int
    data: bytes


class Volume(NamedTuple):
    """A BCD volume XXXXXX.XX as sent by the meter (section 5.1)."""

    raw: int
    """The value in hundredths of ``unit``."""
    unit: int
    """Unit code: ``Unit.CUBIC_METRE`` or ``Unit.LITRE``."""

    @property
    def litres(self) -> int:
        """Whole litres: exact for m3 (0.01 m3 = 10 L); floored for L."""
        if self.unit == Unit.CUBIC_METRE:
            return self.raw * 10
        return self.raw // 100


@dataclass(frozen=True)
class MeterStatus:
    """Status ST, 2 bytes (section 5.1)."""

    raw: int
    """ST1 in the low byte, ST2 (vendor-defined) in the high byte."""
    valve: ValveState
    """ST1 bits D0-D1."""
    battery_low: bool
    """ST1 bit D2."""


@dataclass(frozen=True)
class MeterData:
    """Payload of a water meter's 901F reply (section 5.1)."""

    cumulative: Volume
    """Current cumulative flow."""
    settlement: Volume
    """Cumulative flow on the settlement day."""
    meter_time: datetime | None
    """Meter clock (local time); None if all zero or not a valid date-time."""
    status: MeterStatus


def is_reply_to(frame: Frame, address: str, function: int) -> bool:
    """Tell whether ``frame`` answers a request with ``function`` sent to ``address``.

    True when the direction bit marks a meter reply, the function code
    matches (normal or abnormal reply) and the address matches; ``AA`` bytes
    in the requested ``address`` match any byte.
    """
    return (
        address_matches(address, frame.raw[2:9]) and frame.is_reply and frame.function == function
    )


def parse_reply(frame: Frame) -> Reply | ErrorReply:
    """Split a reply frame into DI, SER and payload (section 5.1).

    Abnormal replies become ``ErrorReply``.  Raises ``ProtocolError`` for a
    request frame.  Check ``is_reply_to`` first to reject other meters.
    """
    if not frame.is_reply:
        raise ProtocolError(f"not a reply (control {frame.control:#04x})")
    if frame.is_abnormal:
        return ErrorReply(frame.meter_type, frame.address, frame.function, frame.data)
    if len(frame.data) < _MIN_DATA:
        raise ProtocolError("reply shorter than DI DI SER")
    di, order = _di_read(frame.data[:2])
    return Reply(
        frame.meter_type, frame.address, frame.function, di, order, frame.data[2], frame.data[3:]
    )


def _volume(value: bytes) -> Volume:
    unit = value[4]
    if unit not in (Unit.CUBIC_METRE, Unit.LITRE):
        raise ProtocolError(f"unit {unit:#04x} is not a water volume unit")
    return Volume(from_bcd(value[:4]), Unit(unit))


def _meter_time(value: bytes) -> datetime | None:
    """``ss mm hh DD MM YY(lo) YY(hi)`` BCD, or None if zero or invalid."""
    if not any(value):
        return None
    try:
        second, minute, hour, day, month, year_lo, year_hi = (
            from_bcd(value[i : i + 1]) for i in range(7)
        )
        return datetime(year_hi * 100 + year_lo, month, day, hour, minute, second)
    except (ProtocolError, ValueError):
        return None


def decode_status(payload: bytes) -> MeterStatus:
    """Decode ST ST (2 bytes): the A017 reply payload or the 901F tail (5.1)."""
    if len(payload) != 2:
        raise ProtocolError(f"status needs 2 bytes, got {len(payload)}")
    st1 = payload[0]
    return MeterStatus(
        raw=int.from_bytes(payload, "little"),
        valve=ValveState(st1 & 0b11),
        battery_low=bool(st1 & 0b100),
    )


def decode_meter_data(payload: bytes) -> MeterData:
    """Decode a water meter's 901F reply payload, the 19 bytes after SER (5.1).

    ``flow(4) unit | settlement flow(4) unit | ss mm hh DD MM YYlo YYhi | ST ST``.
    Raises ``ProtocolError`` for another length (heat meters send a longer
    record), non-BCD flow or a unit that is not L or m3.
    """
    if len(payload) != 19:
        raise ProtocolError(f"water meter data needs 19 bytes, got {len(payload)}")
    return MeterData(
        cumulative=_volume(payload[0:5]),
        settlement=_volume(payload[5:10]),
        meter_time=_meter_time(payload[10:17]),
        status=decode_status(payload[17:19]),
    )
