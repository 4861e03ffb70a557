"""Simulated Modbus meters on a ``VirtualBus``: Modbus RTU (serial server) or Modbus TCP (MBAP).

``VirtualModbusMeter`` serves a register map (``app.devices.profiles.Profile``) from a
``MeterModel``: energy, the four rate registers, power, voltage, current, relay and
forced-control state, and - for a profile that maps them - the meter-held balance and purchase
count.  Writes that match one of the profile's actions are carried out on the model (trip,
close, keep power, release, purchase); anything else is refused the way a meter refuses it.

The frames are encoded here, not with pymodbus: the bus needs a framer that finds request
frames in a raw byte stream, and the meter must be able to stay silent, answer late or
answer short, which a Modbus server library does not model.

Public API:

* ``crc16_modbus(data) -> int`` and ``rtu_frame(body) -> bytes`` (body + CRC, low byte first).
* ``rtu_framer(buf) -> int`` / ``mbap_framer(buf) -> int`` - the ``VirtualBus`` framers.
* ``VirtualModbusMeter`` - one meter (unit id) on the bus.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

from app.devices.profiles import (
    Point,
    Profile,
    WriteAction,
    decode_registers,
    encode_registers,
)
from app.sim.meters import MeterModel

__all__ = ["VirtualModbusMeter", "crc16_modbus", "mbap_framer", "rtu_frame", "rtu_framer"]

# Modbus exception codes
ILLEGAL_FUNCTION = 1
ILLEGAL_DATA_ADDRESS = 2
ILLEGAL_DATA_VALUE = 3
DEVICE_FAILURE = 4

_FIXED_LENGTH = {1: 8, 2: 8, 3: 8, 4: 8, 5: 8, 6: 8}  # request frame length by function code
_MAX_UNIT = 247


def crc16_modbus(data: bytes) -> int:
    """CRC-16/Modbus (poly 0xA001 reflected, init 0xFFFF); transmitted low byte first."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def rtu_frame(body: bytes) -> bytes:
    """``body`` (unit id + PDU) with its CRC appended, low byte first."""
    return body + struct.pack("<H", crc16_modbus(body))


def rtu_crc_ok(frame: bytes) -> bool:
    """True when the last two bytes of ``frame`` are the CRC of the rest."""
    return len(frame) >= 4 and crc16_modbus(frame[:-2]) == struct.unpack("<H", frame[-2:])[0]


def rtu_framer(buf: bytes) -> int:
    """Length of the Modbus RTU request frame at the start of ``buf``: 0 while incomplete, -1
    when the first byte cannot start a request (unit id above 247, unknown function code or
    an inconsistent FC15/FC16 header).

    FC01-06 requests are 8 bytes; FC15/FC16 are 9 + byte count.  A complete frame whose CRC
    does not match is still returned whole: on a real bus the inter-frame silence delimits it,
    and the meter discards it (``VirtualModbusMeter.handle`` stays silent) - it is consumed as
    garbage in one piece instead of shifting the stream byte by byte into the next request."""
    if not buf:
        return 0
    if buf[0] > _MAX_UNIT:
        return -1
    if len(buf) < 2:
        return 0
    fc = buf[1]
    if fc in _FIXED_LENGTH:
        n = _FIXED_LENGTH[fc]
    elif fc in (15, 16):
        if len(buf) < 7:
            return 0
        quantity = (buf[4] << 8) | buf[5]
        byte_count = buf[6]
        if fc == 16:
            ok = 1 <= quantity <= 123 and byte_count == 2 * quantity
        else:
            ok = 1 <= quantity <= 1968 and byte_count == (quantity + 7) // 8
        if not ok:
            return -1
        n = 9 + byte_count
    else:
        return -1
    return n if len(buf) >= n else 0


def mbap_framer(buf: bytes) -> int:
    """Length of the Modbus TCP (MBAP) request at the start of ``buf``: 0 while incomplete, -1
    when the header cannot be one (protocol id not 0, length field outside 2..254)."""
    if len(buf) >= 4 and (buf[2] or buf[3]):
        return -1
    if len(buf) < 6:
        return 0
    length = (buf[4] << 8) | buf[5]
    if not 2 <= length <= 254:
        return -1
    n = 6 + length
    return n if len(buf) >= n else 0


def _exception(fc: int, code: int) -> bytes:
    return bytes([fc | 0x80, code])


class VirtualModbusMeter:
    """One simulated Modbus meter (a ``VirtualDevice`` for ``VirtualBus``).

    ``short_range``: registers at and above this address do not exist (a meter whose readable
    range ends early); a read reaching them gets exception 2, or - with ``short_reply`` - a
    reply cut off at ``short_range`` (a cheap meter answering fewer registers than asked).
    ``group_reads=False``: the meter refuses (exception 2) any read spanning more than one
    point.  ``overrides``: fixed values in our units for named points (e.g. ``{"current_ma":
    5120}``); points the model does not know read 0 unless overridden or written.
    Silent when the unit id is not ours or ``model.offline``; a broadcast (unit 0) write is
    carried out without a reply."""

    def __init__(
        self,
        model: MeterModel,
        unit_id: int,
        profile: Profile,
        response_delay: float = 0.05,
        short_range: int | None = None,
        transport: str = "rtu",
        *,
        group_reads: bool = True,
        short_reply: bool = False,
        overrides: Mapping[str, int] | None = None,
    ) -> None:
        if not 1 <= unit_id <= _MAX_UNIT:
            raise ValueError(f"unit id {unit_id} is outside 1..{_MAX_UNIT}")
        if transport not in ("rtu", "tcp"):
            raise ValueError(f"transport {transport!r} is not 'rtu' or 'tcp'")
        self.model = model
        self.unit_id = unit_id
        self.profile = profile
        self.response_delay = response_delay
        self.short_range = short_range
        self.transport = transport
        self.group_reads = group_reads
        self.short_reply = short_reply
        self.overrides: dict[str, int] = dict(overrides or {})
        self.stored: dict[int, int] = {}  # registers written by actions, read back as they are
        self.forced: str | None = None  # "open" / "close" while forced control is on
        self.clock_writes: list[dict[str, int]] = []
        self._maps: dict[str, dict[int, tuple[Point, int]]] = {"holding": {}, "input": {}}
        for point in profile.points.values():
            for i in range(point.width):
                self._maps[point.function][point.address + i] = (point, i)

    # ------------------------------------------------------------------ framing
    def handle(self, request: bytes) -> bytes | None:
        """The reply frame to one request frame, or None (silence)."""
        if self.transport == "rtu":
            if not rtu_crc_ok(request):
                return None
            unit, pdu = request[0], request[1:-2]
        else:
            if len(request) < 8:
                return None
            unit, pdu = request[6], request[7:]
        if self.model.offline or not pdu:
            return None
        if unit == 0:
            if pdu[0] in (6, 16):
                self._execute(pdu)  # broadcast write: carried out, never answered
            return None
        if unit != self.unit_id:
            return None
        reply = self._execute(pdu)
        if self.transport == "rtu":
            return rtu_frame(bytes([unit]) + reply)
        return request[:2] + b"\x00\x00" + struct.pack(">H", len(reply) + 1) + bytes([unit]) + reply

    def _execute(self, pdu: bytes) -> bytes:
        fc = pdu[0]
        if fc in (3, 4):
            if len(pdu) != 5:
                return _exception(fc, ILLEGAL_DATA_VALUE)
            start, count = struct.unpack(">HH", pdu[1:5])
            if not 1 <= count <= 125:
                return _exception(fc, ILLEGAL_DATA_VALUE)
            regs = self._read("holding" if fc == 3 else "input", start, count)
            if isinstance(regs, int):
                return _exception(fc, regs)
            return bytes([fc, 2 * len(regs)]) + b"".join(struct.pack(">H", r) for r in regs)
        if fc == 6:
            if len(pdu) != 5:
                return _exception(fc, ILLEGAL_DATA_VALUE)
            address, value = struct.unpack(">HH", pdu[1:5])
            code = self._write(6, address, [value])
            return _exception(fc, code) if code else pdu
        if fc == 16:
            if len(pdu) < 6:
                return _exception(fc, ILLEGAL_DATA_VALUE)
            address, quantity, byte_count = struct.unpack(">HHB", pdu[1:6])
            data = pdu[6:]
            if byte_count != 2 * quantity or len(data) != byte_count:
                return _exception(fc, ILLEGAL_DATA_VALUE)
            values = [struct.unpack(">H", data[i : i + 2])[0] for i in range(0, byte_count, 2)]
            code = self._write(16, address, values)
            return _exception(fc, code) if code else pdu[:5]
        return _exception(fc, ILLEGAL_FUNCTION)

    # ------------------------------------------------------------------ reads
    def _read(self, function: str, start: int, count: int) -> list[int] | int:
        """Registers start..start+count-1, or an exception code."""
        if self.short_range is not None and start + count > self.short_range:
            if not self.short_reply or start >= self.short_range:
                return ILLEGAL_DATA_ADDRESS
            count = self.short_range - start
        table = self._maps[function]
        cells = [table.get(a) for a in range(start, start + count)]
        if any(c is None for c in cells):
            return ILLEGAL_DATA_ADDRESS
        points = {c[0].name for c in cells if c is not None}
        if not self.group_reads and len(points) > 1:
            return ILLEGAL_DATA_ADDRESS
        self.model.advance()
        words: dict[str, list[int]] = {}
        out: list[int] = []
        for cell in cells:
            assert cell is not None
            point, index = cell
            if point.name not in words:
                words[point.name] = self._registers_of(point)
            out.append(words[point.name][index])
        return out

    def _registers_of(self, point: Point) -> list[int]:
        """The registers the meter holds for ``point`` now."""
        raw = self._raw_of(point)
        return encode_registers(
            raw, point.type, byte_order=self.profile.byte_order, word_order=self.profile.word_order
        )

    def _raw_of(self, point: Point) -> int:
        m = self.model
        name = point.name
        if name in self.overrides:
            return point.raw_from_value(self.overrides[name])
        if name == "supply":
            on_value = point.on_value or 0
            mask = point.mask if point.mask is not None else 0xFFFF
            return on_value if m.supply_on else (0 if on_value else mask & -mask)
        if name == "keep_power":
            return 1 if m.keep_power_active() else 0
        if name not in _MODEL_VALUES:
            # forced_control / forced_open and points the model does not know: what was
            # written there (raw), else 0
            words = [self.stored.get(point.address + i, 0) for i in range(point.width)]
            return decode_registers(
                words,
                point.type,
                byte_order=self.profile.byte_order,
                word_order=self.profile.word_order,
            )
        return point.raw_from_value(_MODEL_VALUES[name](m))

    # ------------------------------------------------------------------ writes
    def _write(self, fc: int, address: int, values: list[int]) -> int:
        """Carry out a write; 0 on success or an exception code."""
        at_address = [a for a in self.profile.actions.values() if a.address == address]
        if not at_address:
            return ILLEGAL_DATA_ADDRESS
        fixed = [
            a
            for a in at_address
            if not a.fields and a.function_code == fc and tuple(values) == a.values
        ]
        if fixed:
            for i, v in enumerate(values):
                self.stored[address + i] = v
            self._apply({a.name for a in fixed}, address)
            return 0
        for action in at_address:
            if (
                action.fields
                and action.function_code == fc
                and len(values) == action.register_count
            ):
                return self._apply_fields(action, values)
        return ILLEGAL_DATA_VALUE

    def _apply(self, names: set[str], address: int) -> None:
        m = self.model
        if "supply_off" in names:
            m.set_keep_power(False)
            m.set_supply(False, commanded=True)
            self.forced = "open"
            return
        if "supply_on" in names:
            m.set_supply(True)
            self.forced = "close"
        if "keep_power_on" in names:
            m.set_keep_power(True)
            if not m.supply_on and self.forced != "open":
                m.set_supply(True)
        if "keep_power_off" in names:
            m.set_keep_power(False)
            relay = self.profile.actions.get("supply_off")
            if relay is not None and relay.address == address:
                # The release shares the forced-control register: the relay goes back to the
                # meter's own (prepaid) control.
                self.forced = None
                if m.meter_mode:
                    m.set_supply(m.balance_fen > 0)
                elif not m.supply_on and not m.tripped_by_overload:
                    m.set_supply(True)
            elif m.meter_mode and m.balance_fen <= 0:
                m.set_supply(False)

    def _apply_fields(self, action: WriteAction, registers: list[int]) -> int:
        values = action.values_from(
            registers, byte_order=self.profile.byte_order, word_order=self.profile.word_order
        )
        if action.name == "purchase":
            if not self.model.purchase(values["amount_fen"], values["count"]):
                return DEVICE_FAILURE
            if self.forced == "open":
                self.model.set_supply(False)
            return 0
        if action.name == "clock":
            self.clock_writes.append(values)
            return 0
        return ILLEGAL_DATA_VALUE


def _current_ma(m: MeterModel) -> int:
    power = m.power_now(m.clock())
    return power * 10_000 // m.voltage_dv if m.voltage_dv else 0


_MODEL_VALUES = {
    "total": lambda m: m.total,
    "t1": lambda m: m.rates[0],
    "t2": lambda m: m.rates[1],
    "t3": lambda m: m.rates[2],
    "t4": lambda m: m.rates[3],
    "power_w": lambda m: m.power_now(m.clock()),
    "voltage_dv": lambda m: m.voltage_dv,
    "current_ma": _current_ma,
    "balance_fen": lambda m: m.balance_fen,
    "purchase_count": lambda m: m.purchase_count,
}
