"""DL/T 645-2007 codec, plus DL/T 645-1997 reads (protocols.md sections 1 and 2).

Pure and stdlib-only: bytes in, bytes or values out.  No I/O, no floats -
every quantity is an int in the meter's resolution (see ``SCALARS``).

Public API
----------
Frames and streams
    ``Frame``                       one checksum-valid frame (data with 0x33 removed)
    ``FrameDecoder``                ``feed(data) -> list[Frame]``; ``errors``,
                                    ``discarded``, ``pending``, ``reset()``; never raises
    ``encode_frame(address, control, data=b"", *, preamble=0) -> bytes``
Requests (DL/T 645-2007)
    ``encode_read(address, di, *, preamble=0) -> bytes``                      0x11
    ``encode_read_follow_up(address, di, seq, *, preamble=0) -> bytes``       0x12
    ``encode_write(address, di, value, *, password_level=2, password="000000",
    operator="00000000", preamble=0) -> bytes``                               0x14
    ``encode_relay_control(address, command, valid_until, *, password_level=2,
    password="000000", operator="00000000", preamble=0) -> bytes``            0x1C
    ``encode_broadcast_time(when, *, preamble=0) -> bytes``                   0x08
Requests (DL/T 645-1997)
    ``encode_read_1997(address, di, *, preamble=0) -> bytes``                 0x01
Replies
    ``is_reply_to(frame, address, function) -> bool``
    ``parse_reply(frame) -> ReadReply | Ack | ErrorReply``          (2007)
    ``parse_reply_1997(frame) -> ReadReply | Ack | ErrorReply``     (1997)
    ``ReadReply(address, di, value, more, seq)``, ``Ack(address, function, data)``,
    ``ErrorReply(address, function, error, flags)``
Values
    ``decode_int(di, value) -> int``      scalar DIs listed in ``SCALARS``
    ``decode_energy_block(value) -> EnergyBlock``     DI 0000FF00 / 0001FF00 / 901F
    ``decode_run_status_3(value) -> RunStatus3``      DI 04000503
    (values to write are built with ``app.devices.framing.to_bcd``)
Constants
    ``DI``, ``DI97``, ``Function``, ``Function97``, ``RelayCommand``,
    ``ErrorFlags``, ``Supply``, ``MeterType``, ``SCALARS``, ``Scalar``,
    ``BROADCAST_ADDRESS``, ``WILDCARD_ADDRESS``, ``ProtocolError``

Addresses are 12-character strings in human order (``"000000001234"``);
``AA`` bytes are wildcards.  Date-times are encoded field by field as given:
pass the meter's local time.
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
    to_bcd,
)

__all__ = [
    "BROADCAST_ADDRESS",
    "DI",
    "DI97",
    "SCALARS",
    "WILDCARD_ADDRESS",
    "Ack",
    "EnergyBlock",
    "ErrorFlags",
    "ErrorReply",
    "Frame",
    "FrameDecoder",
    "Function",
    "Function97",
    "MeterType",
    "ProtocolError",
    "ReadReply",
    "RelayCommand",
    "RunStatus3",
    "Scalar",
    "Supply",
    "decode_energy_block",
    "decode_int",
    "decode_run_status_3",
    "encode_broadcast_time",
    "encode_frame",
    "encode_read",
    "encode_read_1997",
    "encode_read_follow_up",
    "encode_relay_control",
    "encode_write",
    "is_reply_to",
    "parse_reply",
    "parse_reply_1997",
]

ADDRESS_LENGTH = 6
BROADCAST_ADDRESS = "999999999999"
"""Broadcast address (section 1.1): meters act but do not reply."""
WILDCARD_ADDRESS = "AAAAAAAAAAAA"
"""Wildcard address (section 1.1): any single meter on the bus answers."""

_DATA_OFFSET = 0x33
_HEADER_LENGTH = 10  # 68 A0..A5 68 C L
_OVERHEAD = 12  # header + CS + 16

# Control code bits, section 1.2.
_DIRECTION_REPLY = 0x80
_ABNORMAL = 0x40
_FOLLOW_UP = 0x20
_FUNCTION_MASK = 0x1F


class Function(enum.IntEnum):
    """DL/T 645-2007 function codes, control bits D4..D0 (section 1.2)."""

    SECURITY = 0x03
    BROADCAST_TIME = 0x08
    READ = 0x11
    READ_FOLLOW_UP = 0x12
    READ_ADDRESS = 0x13
    WRITE = 0x14
    WRITE_ADDRESS = 0x15
    FREEZE = 0x16
    CHANGE_BAUD_RATE = 0x17
    CHANGE_PASSWORD = 0x18
    MAX_DEMAND_RESET = 0x19
    METER_RESET = 0x1A
    EVENT_RESET = 0x1B
    RELAY_CONTROL = 0x1C
    MULTI_FUNCTION_OUTPUT = 0x1D


class Function97(enum.IntEnum):
    """DL/T 645-1997 function codes (section 2)."""

    READ = 0x01
    READ_FOLLOW_UP = 0x02
    REREAD = 0x03
    WRITE = 0x04
    BROADCAST_TIME = 0x08
    WRITE_ADDRESS = 0x0A
    CHANGE_BAUD_RATE = 0x0C
    CHANGE_PASSWORD = 0x0F
    MAX_DEMAND_RESET = 0x10


class DI(enum.IntEnum):
    """DL/T 645-2007 data identifiers DI3 DI2 DI1 DI0 (section 1.4)."""

    ENERGY_TOTAL = 0x00000000
    ENERGY_T1 = 0x00000100
    ENERGY_T2 = 0x00000200
    ENERGY_T3 = 0x00000300
    ENERGY_T4 = 0x00000400
    ENERGY_BLOCK = 0x0000FF00
    FORWARD_ENERGY_TOTAL = 0x00010000
    FORWARD_ENERGY_BLOCK = 0x0001FF00
    FORWARD_ENERGY_LAST_SETTLEMENT = 0x00010001
    REVERSE_ENERGY_TOTAL = 0x00020000
    VOLTAGE_A = 0x02010100
    VOLTAGE_B = 0x02010200
    VOLTAGE_C = 0x02010300
    CURRENT_A = 0x02020100
    CURRENT_B = 0x02020200
    CURRENT_C = 0x02020300
    ACTIVE_POWER_TOTAL = 0x02030000
    ACTIVE_POWER_A = 0x02030100
    ACTIVE_POWER_B = 0x02030200
    ACTIVE_POWER_C = 0x02030300
    REACTIVE_POWER_TOTAL = 0x02040000
    POWER_FACTOR_TOTAL = 0x02060000
    FREQUENCY = 0x02800002
    RUN_STATUS_3 = 0x04000503
    REMAINING_ENERGY = 0x00900100
    OVERDRAFT_ENERGY = 0x00900101
    REMAINING_AMOUNT = 0x00900200
    OVERDRAFT_AMOUNT = 0x00900201
    PURCHASE_COUNT = 0x03330201
    ALARM_AMOUNT_1 = 0x04001001
    ALARM_AMOUNT_2 = 0x04001002
    PRICE_T1 = 0x04050101
    PRICE_T2 = 0x04050102
    PRICE_T3 = 0x04050103
    PRICE_T4 = 0x04050104


class DI97(enum.IntEnum):
    """DL/T 645-1997 data identifiers DI1 DI0 (section 2)."""

    FORWARD_ENERGY_TOTAL = 0x9010
    FORWARD_ENERGY_T1 = 0x9011
    FORWARD_ENERGY_T2 = 0x9012
    FORWARD_ENERGY_T3 = 0x9013
    FORWARD_ENERGY_T4 = 0x9014
    FORWARD_ENERGY_BLOCK = 0x901F
    REVERSE_ENERGY_TOTAL = 0x9020
    VOLTAGE_A = 0xB611
    VOLTAGE_B = 0xB612
    VOLTAGE_C = 0xB613
    CURRENT_A = 0xB621
    CURRENT_B = 0xB622
    CURRENT_C = 0xB623
    ACTIVE_POWER_TOTAL = 0xB630


class RelayCommand(enum.IntEnum):
    """N1 of the relay control command 0x1C (section 1.6)."""

    TRIP = 0x1A
    CLOSE_ALLOWED = 0x1B
    DIRECT_CLOSE = 0x1C
    ALARM = 0x2A
    ALARM_RELEASE = 0x2B
    KEEP_POWER = 0x3A
    KEEP_POWER_RELEASE = 0x3B


class ErrorFlags(enum.IntFlag):
    """DL/T 645-2007 error word ERR of abnormal replies (section 1.3).

    For 0x1C on State-Grid meters Q/GDW specs extend the meanings; treat
    unexpected combinations generically.
    """

    OTHER = 0x01
    NO_DATA = 0x02
    PASSWORD = 0x04
    BAUD_RATE = 0x08
    YEAR_ZONES = 0x10
    DAILY_SLOTS = 0x20
    TARIFFS = 0x40
    RESERVED = 0x80


class Supply(enum.IntEnum):
    """Run status word 3, bits 1-2: power supply (section 1.5)."""

    MAIN = 0
    AUXILIARY = 1
    BATTERY = 2
    UNDEFINED = 3


class MeterType(enum.IntEnum):
    """Run status word 3, bits 8-9: prepayment type (section 1.5)."""

    NOT_PREPAID = 0
    ENERGY_PREPAID = 1
    MONEY_PREPAID = 2
    UNDEFINED = 3


class Scalar(NamedTuple):
    """How a single-value DI is encoded: BCD, least significant byte first."""

    length: int
    """Bytes of the value."""
    signed: bool
    """The top bit of the last (most significant) byte is the sign (1.8)."""
    unit: str
    """What one count of the decoded int means."""


_ENERGY = Scalar(4, signed=False, unit="0.01 kWh")
_MONEY = Scalar(4, signed=False, unit="0.01 yuan (fen)")

SCALARS: dict[int, Scalar] = {
    # DL/T 645-2007, section 1.4
    DI.ENERGY_TOTAL: _ENERGY,
    DI.ENERGY_T1: _ENERGY,
    DI.ENERGY_T2: _ENERGY,
    DI.ENERGY_T3: _ENERGY,
    DI.ENERGY_T4: _ENERGY,
    DI.FORWARD_ENERGY_TOTAL: _ENERGY,
    DI.FORWARD_ENERGY_LAST_SETTLEMENT: _ENERGY,
    DI.REVERSE_ENERGY_TOTAL: _ENERGY,
    DI.VOLTAGE_A: Scalar(2, signed=False, unit="0.1 V"),
    DI.VOLTAGE_B: Scalar(2, signed=False, unit="0.1 V"),
    DI.VOLTAGE_C: Scalar(2, signed=False, unit="0.1 V"),
    DI.CURRENT_A: Scalar(3, signed=True, unit="0.001 A"),
    DI.CURRENT_B: Scalar(3, signed=True, unit="0.001 A"),
    DI.CURRENT_C: Scalar(3, signed=True, unit="0.001 A"),
    DI.ACTIVE_POWER_TOTAL: Scalar(3, signed=True, unit="0.0001 kW"),
    DI.ACTIVE_POWER_A: Scalar(3, signed=True, unit="0.0001 kW"),
    DI.ACTIVE_POWER_B: Scalar(3, signed=True, unit="0.0001 kW"),
    DI.ACTIVE_POWER_C: Scalar(3, signed=True, unit="0.0001 kW"),
    DI.REACTIVE_POWER_TOTAL: Scalar(3, signed=True, unit="0.0001 kvar"),
    DI.POWER_FACTOR_TOTAL: Scalar(2, signed=True, unit="0.001"),
    DI.FREQUENCY: Scalar(2, signed=False, unit="0.01 Hz"),
    DI.REMAINING_ENERGY: _ENERGY,
    DI.OVERDRAFT_ENERGY: _ENERGY,
    DI.REMAINING_AMOUNT: _MONEY,
    DI.OVERDRAFT_AMOUNT: _MONEY,
    DI.PURCHASE_COUNT: Scalar(2, signed=False, unit="purchases"),
    DI.ALARM_AMOUNT_1: _MONEY,
    DI.ALARM_AMOUNT_2: _MONEY,
    DI.PRICE_T1: Scalar(4, signed=False, unit="0.0001 yuan/kWh"),
    DI.PRICE_T2: Scalar(4, signed=False, unit="0.0001 yuan/kWh"),
    DI.PRICE_T3: Scalar(4, signed=False, unit="0.0001 yuan/kWh"),
    DI.PRICE_T4: Scalar(4, signed=False, unit="0.0001 yuan/kWh"),
    # DL/T 645-1997, section 2 (note the coarser voltage and current units)
    DI97.FORWARD_ENERGY_TOTAL: _ENERGY,
    DI97.FORWARD_ENERGY_T1: _ENERGY,
    DI97.FORWARD_ENERGY_T2: _ENERGY,
    DI97.FORWARD_ENERGY_T3: _ENERGY,
    DI97.FORWARD_ENERGY_T4: _ENERGY,
    DI97.REVERSE_ENERGY_TOTAL: _ENERGY,
    DI97.VOLTAGE_A: Scalar(2, signed=False, unit="1 V"),
    DI97.VOLTAGE_B: Scalar(2, signed=False, unit="1 V"),
    DI97.VOLTAGE_C: Scalar(2, signed=False, unit="1 V"),
    DI97.CURRENT_A: Scalar(2, signed=False, unit="0.01 A"),
    DI97.CURRENT_B: Scalar(2, signed=False, unit="0.01 A"),
    DI97.CURRENT_C: Scalar(2, signed=False, unit="0.01 A"),
    DI97.ACTIVE_POWER_TOTAL: Scalar(3, signed=False, unit="0.0001 kW"),
}
"""Single-value data identifiers of both editions (their DIs do not collide)."""


# -- frames ---------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """One checksum-valid DL/T 645 frame (section 1.1), either edition."""

    address: str
    """12 characters, human order (A5 first)."""
    control: int
    """Control code C: direction, abnormal and follow-up bits plus function."""
    data: bytes
    """The data field with the 0x33 offset already removed."""
    raw: bytes
    """The frame as received, from the first 68 to the 16 (no preamble)."""

    @property
    def function(self) -> int:
        """Function code, control bits D4..D0."""
        return self.control & _FUNCTION_MASK

    @property
    def is_reply(self) -> bool:
        """Direction bit D7: sent by a meter."""
        return bool(self.control & _DIRECTION_REPLY)

    @property
    def is_abnormal(self) -> bool:
        """Bit D6: abnormal (error) reply."""
        return bool(self.control & _ABNORMAL)

    @property
    def has_follow_up(self) -> bool:
        """Bit D5: the meter has more data in follow-up frames."""
        return bool(self.control & _FOLLOW_UP)


class FrameDecoder(StreamDecoder[Frame]):
    """Streaming DL/T 645 frame decoder (sections 1.1 and 1.8).

    ``feed(data) -> list[Frame]`` never raises.  It skips 0-4 (or any number
    of) ``FE`` and other garbage, resynchronises on ``68 A0..A5 68``, returns
    several frames from one read and reassembles a frame split across reads.
    Candidates with a wrong checksum or end byte, or abandoned as truncated,
    are dropped and counted in ``errors``.  See ``StreamDecoder``.
    """

    def _probe(self, buf: bytes) -> int | Probe:
        if len(buf) < _HEADER_LENGTH:
            if len(buf) > 7 and buf[7] != START:
                return Probe.NOT_A_FRAME
            return Probe.NEED_MORE
        if buf[7] != START:
            return Probe.NOT_A_FRAME
        return _OVERHEAD + buf[9]

    def _build(self, raw: bytes) -> Frame:
        return Frame(
            address=address_from_wire(raw[1:7]),
            control=raw[8],
            data=bytes((b - _DATA_OFFSET) & 0xFF for b in raw[10:-2]),
            raw=raw,
        )


def encode_frame(address: str, control: int, data: bytes = b"", *, preamble: int = 0) -> bytes:
    """Build a DL/T 645 frame (section 1.1), either edition.

    ``data`` is given as the values (before the +0x33 transform, which this
    applies).  ``preamble`` is the number of ``FE`` wake-up bytes (0-4); most
    meters expect 4 on a real bus.
    """
    if not 0 <= control <= 0xFF:
        raise ProtocolError(f"control code out of range: {control}")
    if len(data) > 0xFF:
        raise ProtocolError(f"data too long for one frame: {len(data)} bytes")
    body = (
        bytes([START])
        + address_to_wire(address, ADDRESS_LENGTH)
        + bytes([START, control, len(data)])
        + bytes((b + _DATA_OFFSET) & 0xFF for b in data)
    )
    return preamble_bytes(preamble) + body + bytes([checksum(body), END])


def _di_bytes(di: int, length: int) -> bytes:
    if not 0 <= di < 1 << (8 * length):
        raise ProtocolError(f"data identifier out of range: {di:#x}")
    return di.to_bytes(length, "little")


def _hex_digits(value: str, length: int, what: str) -> bytes:
    """Opaque code (password, operator code) given as hex digits, sent LSB first."""
    if len(value) != 2 * length:
        raise ProtocolError(f"{what} must have {2 * length} hex digits: {value!r}")
    try:
        return bytes.fromhex(value)[::-1]
    except ValueError:
        raise ProtocolError(f"{what} must be hex digits: {value!r}") from None


def _datetime_bcd(when: datetime) -> bytes:
    """``ss mm hh DD MM YY`` as BCD bytes (sections 1.6 and 1.7)."""
    if not 2000 <= when.year <= 2099:
        raise ProtocolError(f"year must be 2000-2099: {when.year}")
    fields = (when.second, when.minute, when.hour, when.day, when.month, when.year - 2000)
    return b"".join(to_bcd(field, 1) for field in fields)


def _credentials(password_level: int, password: str, operator: str) -> bytes:
    """``PA P0 P1 P2 C0 C1 C2 C3`` (sections 1.6 and 1.7)."""
    if not 0 <= password_level <= 0xFF:
        raise ProtocolError(f"password level out of range: {password_level}")
    return (
        bytes([password_level])
        + _hex_digits(password, 3, "password")
        + _hex_digits(operator, 4, "operator code")
    )


def encode_read(address: str, di: int, *, preamble: int = 0) -> bytes:
    """Read data request, function 0x11, ``DATA = DI`` (sections 1.2, 1.4)."""
    return encode_frame(address, Function.READ, _di_bytes(di, 4), preamble=preamble)


def encode_read_follow_up(address: str, di: int, seq: int, *, preamble: int = 0) -> bytes:
    """Read follow-up request, function 0x12, ``DATA = DI SEQ`` (section 1.7).

    ``seq`` starts at 1 for the first follow-up frame.
    """
    if not 0 <= seq <= 0xFF:
        raise ProtocolError(f"follow-up sequence out of range: {seq}")
    data = _di_bytes(di, 4) + bytes([seq])
    return encode_frame(address, Function.READ_FOLLOW_UP, data, preamble=preamble)


def encode_write(
    address: str,
    di: int,
    value: bytes,
    *,
    password_level: int = 0x02,
    password: str = "000000",
    operator: str = "00000000",
    preamble: int = 0,
) -> bytes:
    """Write data request, function 0x14 (section 1.7).

    ``DATA = DI | PA P0 P1 P2 | C0..C3 | value``.  ``value`` is the value as
    the meter stores it, least significant byte first (e.g.
    ``framing.to_bcd(2000, 4)`` for 20.00 yuan).  ``password`` (6 hex digits) and
    ``operator`` (8 hex digits) are written in human order and sent low byte
    first.
    """
    data = _di_bytes(di, 4) + _credentials(password_level, password, operator) + value
    return encode_frame(address, Function.WRITE, data, preamble=preamble)


def encode_relay_control(
    address: str,
    command: RelayCommand,
    valid_until: datetime,
    *,
    password_level: int = 0x02,
    password: str = "000000",
    operator: str = "00000000",
    preamble: int = 0,
) -> bytes:
    """Relay / alarm / keep-power control, function 0x1C, L = 16 (section 1.6).

    ``DATA = PA P0 P1 P2 | C0..C3 | N1 N2 | ss mm hh DD MM YY``: N1 is
    ``command``, N2 is reserved (00) and ``valid_until`` is the command's
    expiry in the meter's local time (prefer "now + a few minutes"; meters
    that check it reject expired or zero times).  Plain PA=02 suits most
    commercial meters; State-Grid ESAM meters need ciphertext and are not
    supported here.
    """
    try:
        command = RelayCommand(command)
    except ValueError:
        raise ProtocolError(f"unknown relay command N1: {command:#04x}") from None
    data = (
        _credentials(password_level, password, operator)
        + bytes([command, 0x00])
        + _datetime_bcd(valid_until)
    )
    return encode_frame(address, Function.RELAY_CONTROL, data, preamble=preamble)


def encode_broadcast_time(when: datetime, *, preamble: int = 0) -> bytes:
    """Broadcast time, function 0x08 to ``99..99``, ``DATA = ss mm hh DD MM YY``.

    Meters do not reply (sections 1.2 and 1.7).  ``when`` is meter local time.
    """
    return encode_frame(
        BROADCAST_ADDRESS, Function.BROADCAST_TIME, _datetime_bcd(when), preamble=preamble
    )


def encode_read_1997(address: str, di: int, *, preamble: int = 0) -> bytes:
    """DL/T 645-1997 read request, control 0x01, 2-byte DI sent DI0 first (section 2)."""
    return encode_frame(address, Function97.READ, _di_bytes(di, 2), preamble=preamble)


# -- replies --------------------------------------------------------------


@dataclass(frozen=True)
class ReadReply:
    """Normal reply to a read (2007: 0x91/0xB1/0x92/0xB2; 1997: 0x81/0xA1)."""

    address: str
    di: int
    """Data identifier echoed by the meter (4 bytes in 2007, 2 in 1997)."""
    value: bytes
    """Value bytes after the DI (0x33 removed), least significant byte first."""
    more: bool
    """Control bit D5: the meter has follow-up frames (use 0x12 with SEQ)."""
    seq: int | None = None
    """SEQ of a 2007 follow-up reply (function 0x12), else None."""


@dataclass(frozen=True)
class Ack:
    """Normal reply to a command such as 0x14 write or 0x1C relay control."""

    address: str
    function: int
    data: bytes
    """Reply data (0x33 removed); empty for 0x94 and 0x9C."""


@dataclass(frozen=True)
class ErrorReply:
    """Abnormal reply (control bit D6 set) carrying the error word ERR."""

    address: str
    function: int
    error: int
    """The raw ERR byte."""
    flags: ErrorFlags | None
    """ERR decoded per DL/T 645-2007 (section 1.3); None for 1997 replies."""


def is_reply_to(frame: Frame, address: str, function: int) -> bool:
    """Tell whether ``frame`` answers a request with ``function`` sent to ``address``.

    True when the direction bit marks a meter reply, the function code
    matches (normal or abnormal reply) and the address matches.  ``AA``
    bytes in the requested ``address`` match any byte, so a wildcard read
    accepts whichever meter answers.  Raises ``ProtocolError`` if
    ``address`` itself is malformed.
    """
    return (
        address_matches(address, frame.raw[1:7]) and frame.is_reply and frame.function == function
    )


def _parse(
    frame: Frame, read: int, follow_up: int | None, di_length: int, edition: int
) -> ReadReply | Ack | ErrorReply:
    if not frame.is_reply:
        raise ProtocolError(f"not a reply (control {frame.control:#04x})")
    if frame.is_abnormal:
        if len(frame.data) != 1:
            raise ProtocolError(f"abnormal reply must carry 1 ERR byte, got {len(frame.data)}")
        error = frame.data[0]
        flags = ErrorFlags(error) if edition == 2007 else None
        return ErrorReply(frame.address, frame.function, error, flags)
    if frame.function == read:
        if len(frame.data) < di_length:
            raise ProtocolError("read reply shorter than its data identifier")
        di = int.from_bytes(frame.data[:di_length], "little")
        return ReadReply(frame.address, di, frame.data[di_length:], frame.has_follow_up)
    if frame.function == follow_up:
        if len(frame.data) < di_length + 1:
            raise ProtocolError("follow-up reply shorter than DI + SEQ")
        di = int.from_bytes(frame.data[:di_length], "little")
        return ReadReply(
            frame.address,
            di,
            frame.data[di_length:-1],
            frame.has_follow_up,
            seq=frame.data[-1],
        )
    return Ack(frame.address, frame.function, frame.data)


def parse_reply(frame: Frame) -> ReadReply | Ack | ErrorReply:
    """Interpret a DL/T 645-2007 reply frame (sections 1.2, 1.3).

    * abnormal reply (D6) -> ``ErrorReply`` with the ERR word;
    * 0x91 / 0xB1 -> ``ReadReply`` (DI + value); 0x92 / 0xB2 -> ``ReadReply``
      with ``seq``;
    * any other normal reply (0x94, 0x9C, ...) -> ``Ack``.

    Raises ``ProtocolError`` for a request frame or a malformed reply.  Check
    ``is_reply_to`` first to reject replies from the wrong meter.
    """
    return _parse(frame, Function.READ, Function.READ_FOLLOW_UP, 4, 2007)


def parse_reply_1997(frame: Frame) -> ReadReply | Ack | ErrorReply:
    """Interpret a DL/T 645-1997 reply frame (section 2).

    0x81 / 0xA1 -> ``ReadReply`` with a 2-byte DI; abnormal (0xC1, ...) ->
    ``ErrorReply`` with ``flags=None`` (protocols.md does not give the 1997
    ERR bit order); other normal replies -> ``Ack``.
    """
    return _parse(frame, Function97.READ, None, 2, 1997)


# -- values ---------------------------------------------------------------


class EnergyBlock(NamedTuple):
    """Energy block: total and tariffs T1..T4 (sharp, peak, flat, valley), 0.01 kWh."""

    total: int
    t1: int
    t2: int
    t3: int
    t4: int


@dataclass(frozen=True)
class RunStatus3:
    """Run status word 3, DI 04000503 (section 1.5)."""

    raw: int
    """The 16-bit word (bit 0 = least significant bit of the first byte)."""
    second_slot_table: bool
    """Bit 0: the second time-slot table is in use."""
    supply: Supply
    """Bits 1-2: main, auxiliary or battery supply."""
    programming_allowed: bool
    """Bit 3."""
    relay_open: bool
    """Bit 4: relay state, True = open (断, supply cut), False = closed (通)."""
    second_time_zone_set: bool
    """Bit 5: the second time-zone set is in use."""
    relay_commanded_trip: bool
    """Bit 6: relay command state, True = trip, False = close."""
    pre_trip_alarm: bool
    """Bit 7."""
    meter_type: MeterType
    """Bits 8-9: not prepaid, energy-prepaid or money-prepaid."""
    second_price_set: bool
    """Bit 10: the second tariff price set is in use."""
    second_step_set: bool
    """Bit 11: the second step (阶梯) set is in use."""
    keep_power: bool
    """Bit 12: keep-power (保电) is on."""
    identity_authenticated: bool
    """Bit 13."""
    local_account_opened: bool
    """Bit 14."""
    remote_account_opened: bool
    """Bit 15."""


def _expect_length(value: bytes, length: int, what: str) -> None:
    if len(value) != length:
        raise ProtocolError(f"{what} needs {length} bytes, got {len(value)}")


def decode_int(di: int, value: bytes) -> int:
    """Decode the value of a single-value DI listed in ``SCALARS``.

    Returns an int in the unit given by ``SCALARS[di].unit`` - e.g. energy in
    0.01 kWh, money in fen, voltage in 0.1 V (2007) or 1 V (1997), current
    in 0.001 A, active power in 0.0001 kW.  Signed quantities use the top bit
    of the most significant byte as the sign (section 1.8).  Raises
    ``ProtocolError`` for an unknown DI, a wrong length or non-BCD bytes.
    """
    scalar = SCALARS.get(di)
    if scalar is None:
        raise ProtocolError(f"no scalar decoding known for DI {di:#010x}")
    _expect_length(value, scalar.length, f"DI {di:#010x}")
    if scalar.signed and value[-1] & 0x80:
        return -from_bcd(value[:-1] + bytes([value[-1] & 0x7F]))
    return from_bcd(value)


def decode_energy_block(value: bytes) -> EnergyBlock:
    """Decode an energy block (2007 DI 0000FF00 / 0001FF00, 1997 DI 901F).

    Five 4-byte BCD members, total then T1..T4, each in 0.01 kWh (sections
    1.4, 1.8 and 2).
    """
    _expect_length(value, 20, "energy block")
    return EnergyBlock(*(from_bcd(value[i : i + 4]) for i in range(0, 20, 4)))


def decode_run_status_3(value: bytes) -> RunStatus3:
    """Decode run status word 3, 2 bytes sent low byte first (section 1.5).

    The word is a bit field, not BCD.
    """
    _expect_length(value, 2, "run status word 3")
    word = int.from_bytes(value, "little")

    def bit(n: int) -> bool:
        return bool(word >> n & 1)

    return RunStatus3(
        raw=word,
        second_slot_table=bit(0),
        supply=Supply(word >> 1 & 0b11),
        programming_allowed=bit(3),
        relay_open=bit(4),
        second_time_zone_set=bit(5),
        relay_commanded_trip=bit(6),
        pre_trip_alarm=bit(7),
        meter_type=MeterType(word >> 8 & 0b11),
        second_price_set=bit(10),
        second_step_set=bit(11),
        keep_power=bit(12),
        identity_authenticated=bit(13),
        local_account_opened=bit(14),
        remote_account_opened=bit(15),
    )
