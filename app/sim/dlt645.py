"""Simulated DL/T 645-2007 / 1997 electricity meters on a ``VirtualBus`` (protocols.md
sections 1 and 2).

Public API
----------
``framer(buf) -> int``
    The ``VirtualBus`` framer for DL/T 645 requests: up to four ``FE`` wake-up bytes are part
    of the frame; returns the length of the first complete, checksum-valid frame, 0 while
    more bytes are needed, -1 when the first byte cannot start one (garbage, a fifth ``FE``,
    a header without its second ``68``, a bad checksum or end byte).
``VirtualDlt645Meter(model, address, response_delay=0.05, supports_block=True,
version="2007", *, password="000000", reply_preamble=0, max_time_correction=5 min)``
    One meter (a ``VirtualDevice``) answering from a ``MeterModel``.
``SIM_PURCHASE_DI``
    Re-exported from ``app.devices.drivers.dlt645``: the purchase write of this simulator.

What a 2007 meter answers (anything addressed to another meter, and everything while
``model.offline`` is set, gets silence):

* ``0x11`` reads - energy block ``0000FF00`` / ``0001FF00`` (refused with "no requested data"
  when ``supports_block`` is False, so drivers must fall back), items ``00000000``,
  ``00000100``..``00000400``, ``00010000``..``00010400`` (forward = combined: the meter has
  no export), voltage A ``02010100``, current A ``02020100`` (power / voltage at unity power
  factor), active power ``02030000`` / ``02030100``, run status word 3 ``04000503``, date
  ``04000101`` and time ``04000102``; in meter mode also remaining amount ``00900200``,
  overdraft amount ``00900201`` and purchase count ``03330201``.  Any other identifier gets
  an abnormal reply with ERR "no requested data".
* ``0x13`` read address (wildcard ``AA..AA``) -> ``0x93`` with the address.
* ``0x1C`` relay control - trip -> ``model.set_supply(False)`` (refused while keep power is
  active: a kept meter does not trip); close allowed / direct close -> ``set_supply(True)``
  unless a meter-mode balance is <= 0 without keep power (the simulator closes at once for
  close-allowed: the button press is not modelled); alarm / alarm release set the pre-trip
  alarm bit; keep power / release -> ``model.set_keep_power`` (the frame's valid-until is the
  command's expiry, not the duration of keep power).  Refusals: ERR "password" for a wrong
  password or level, ERR "other" for an expired or invalid valid-until, a wrong length or a
  refused action.  Acknowledgement ``0x9C`` with no data.
* ``0x14`` write of ``SIM_PURCHASE_DI`` with ``amount (4-byte BCD fen) + purchase count
  (2-byte BCD)`` -> ``model.purchase(amount, count)``; acknowledgement ``0x94`` when the
  model accepts, ERR "other" when it refuses (a count that is not last + 1).  **This write is
  a simulator/vendor extension, configure per meter model**: DL/T 645 recharges go through
  ESAM-secured commands that protocols.md does not give.  Writes of any other identifier
  get ERR "no requested data".
* ``0x08`` broadcast time to ``99..99`` - no reply; moves the meter clock (``clock_offset``)
  when the correction is within ``max_time_correction`` (as meters limit broadcast time
  setting; None: no limit).
* other DL/T 645-2007 functions (security, follow-up, freeze, ...) -> abnormal reply ERR
  "other"; DL/T 645-1997 requests -> silence.

A 1997 meter (``version="1997"``) answers ``0x01`` reads of ``9010``..``9014``, ``901F``
(when ``supports_block``), ``B611`` (V), ``B621`` (0.01 A) and ``B630`` (0.0001 kW), abnormal
``0xC1`` with ERR 02 ("bad data identifier" in the 1997 bit order) for other identifiers,
and the broadcast time; 2007 requests get silence.

All values are integers from the model: energy in 0.01 kWh, voltage in 0.1 V, power in W
(sent as 0.0001 kW = W x 10), current in mA (W x 10000 // 0.1 V), money in fen.
"""

from __future__ import annotations

import datetime as dt

from app.devices.dlt645 import (
    BROADCAST_ADDRESS,
    DI,
    DI97,
    ErrorFlags,
    Frame,
    FrameDecoder,
    Function,
    Function97,
    RelayCommand,
    encode_frame,
)
from app.devices.drivers.dlt645 import DI_DATE, DI_TIME, SIM_PURCHASE_DI
from app.devices.framing import (
    END,
    MAX_PREAMBLE,
    PREAMBLE,
    START,
    ProtocolError,
    address_matches,
    address_to_wire,
    checksum,
    from_bcd,
    to_bcd,
)
from app.sim.meters import MeterModel

__all__ = ["SIM_PURCHASE_DI", "VirtualDlt645Meter", "framer"]

_HEADER = 10  # 68 A0..A5 68 C L
_OVERHEAD = 12  # header + CS + 16
_REPLY = 0x80
_ABNORMAL_REPLY = 0xC0
_ERR97_BAD_DI = 0x02  # DL/T 645-1997 ERR bit 1: data identifier error
_ERR97_ILLEGAL_DATA = 0x01  # DL/T 645-1997 ERR bit 0: illegal data
_PASSWORD_LEVELS = (0x02, 0x04)
_MAX_POWER_RAW = 799_999  # XX.XXXX kW in 3 BCD bytes with the top bit as the sign
_MAX_CURRENT_RAW = 799_999  # XXX.XXX A, same
_MONEY_PREPAID = 0b10 << 8  # run status word 3, bits 8-9
_OTHER_2007_FUNCTIONS = frozenset(Function) - {
    Function.READ,
    Function.WRITE,
    Function.RELAY_CONTROL,
    Function.READ_ADDRESS,
    Function.BROADCAST_TIME,
}


def _preamble_length(buf: bytes) -> int:
    n = 0
    while n < len(buf) and buf[n] == PREAMBLE:
        n += 1
    return n


def framer(buf: bytes) -> int:
    """Length of the DL/T 645 request frame at the start of ``buf`` including up to four
    ``FE`` bytes; 0 while incomplete; -1 when the first byte cannot start a frame."""
    i = _preamble_length(buf)
    if i > MAX_PREAMBLE:
        return -1
    if i == len(buf):
        return 0
    if buf[i] != START:
        return -1
    available = len(buf) - i
    if available > 7 and buf[i + 7] != START:
        return -1
    if available < _HEADER:
        return 0
    n = i + _OVERHEAD + buf[i + 9]
    if len(buf) < n:
        return 0
    if buf[n - 1] != END or checksum(buf[i : n - 2]) != buf[n - 2]:
        return -1
    return n


def _signed_bcd(value: int, length: int, limit: int) -> bytes:
    """Signed BCD (sign in the top bit of the most significant byte), clamped to ``limit``."""
    raw = to_bcd(min(abs(value), limit), length)
    return raw[:-1] + bytes([raw[-1] | 0x80]) if value < 0 else raw


def _datetime_from_bcd(data: bytes) -> dt.datetime | None:
    """``ss mm hh DD MM YY`` BCD, or None when not a valid date-time."""
    try:
        second, minute, hour, day, month, year = (from_bcd(data[i : i + 1]) for i in range(6))
        return dt.datetime(2000 + year, month, day, hour, minute, second)
    except (ProtocolError, ValueError):
        return None


class VirtualDlt645Meter:
    """One simulated DL/T 645 meter (see the module docstring)."""

    def __init__(
        self,
        model: MeterModel,
        address: str,
        response_delay: float = 0.05,
        supports_block: bool = True,
        version: str = "2007",
        *,
        password: str = "000000",
        reply_preamble: int = 0,
        max_time_correction: dt.timedelta | None = dt.timedelta(minutes=5),
    ) -> None:
        if version not in ("2007", "1997"):
            raise ValueError(f"version must be '2007' or '1997', not {version!r}")
        self.model = model
        self.address = address
        self._wire = address_to_wire(address, 6)
        self.response_delay = response_delay
        self.supports_block = supports_block
        self.version = version
        self.password = password
        self.reply_preamble = reply_preamble
        self.max_time_correction = max_time_correction
        self.clock_offset = dt.timedelta(0)
        """Meter clock minus the model clock, moved by broadcast time."""
        self.commanded_trip = False
        """Run status word 3 bit 6: the last relay command was a trip."""
        self.alarm = False
        """Run status word 3 bit 7: pre-trip alarm (set by N1 2A, cleared by 2B)."""

    # ------------------------------------------------------------------ bus side
    def meter_time(self) -> dt.datetime:
        """The meter's clock: the model clock plus the broadcast corrections."""
        return self.model.clock() + self.clock_offset

    def handle(self, request: bytes) -> bytes | None:
        """The reply to one request frame, or None (silence)."""
        frames = FrameDecoder().feed(request)
        if not frames:
            return None
        frame = frames[0]
        if frame.is_reply or self.model.offline:
            return None
        if frame.address == BROADCAST_ADDRESS:
            if frame.function == Function.BROADCAST_TIME:
                self._set_time(frame.data)
            return None
        try:
            if not address_matches(frame.address, self._wire):
                return None
        except ProtocolError:
            return None
        if self.version == "1997":
            return self._handle_1997(frame)
        return self._handle_2007(frame)

    def _reply(self, function: int, data: bytes = b"") -> bytes:
        return encode_frame(self.address, _REPLY | function, data, preamble=self.reply_preamble)

    def _abnormal(self, function: int, error: int) -> bytes:
        return encode_frame(
            self.address, _ABNORMAL_REPLY | function, bytes([error]), preamble=self.reply_preamble
        )

    def _set_time(self, data: bytes) -> None:
        when = _datetime_from_bcd(data) if len(data) == 6 else None
        if when is None:
            return
        if (
            self.max_time_correction is not None
            and abs(when - self.meter_time()) > self.max_time_correction
        ):
            return
        self.clock_offset = when - self.model.clock()

    # ------------------------------------------------------------------ DL/T 645-2007
    def _handle_2007(self, frame: Frame) -> bytes | None:
        function = frame.function
        if function == Function.READ:
            return self._read(frame.data)
        if function == Function.WRITE:
            return self._write(frame.data)
        if function == Function.RELAY_CONTROL:
            return self._relay(frame.data)
        if function == Function.READ_ADDRESS:
            return self._reply(Function.READ_ADDRESS, self._wire)
        if function in _OTHER_2007_FUNCTIONS:
            return self._abnormal(function, ErrorFlags.OTHER)
        return None

    def _read(self, data: bytes) -> bytes:
        if len(data) < 4:
            return self._abnormal(Function.READ, ErrorFlags.OTHER)
        di = int.from_bytes(data[:4], "little")
        value = self._value(di)
        if value is None:
            return self._abnormal(Function.READ, ErrorFlags.NO_DATA)
        return self._reply(Function.READ, data[:4] + value)

    def _value(self, di: int) -> bytes | None:
        """The value bytes of a 2007 data identifier, or None when the meter has none."""
        model = self.model
        model.advance()
        energy: dict[int, int] = {
            DI.ENERGY_TOTAL: model.total,
            DI.FORWARD_ENERGY_TOTAL: model.total,
            DI.ENERGY_T1: model.rates[0],
            DI.ENERGY_T2: model.rates[1],
            DI.ENERGY_T3: model.rates[2],
            DI.ENERGY_T4: model.rates[3],
            0x00010100: model.rates[0],
            0x00010200: model.rates[1],
            0x00010300: model.rates[2],
            0x00010400: model.rates[3],
        }
        if di in energy:
            return to_bcd(energy[di], 4)
        if di in (DI.ENERGY_BLOCK, DI.FORWARD_ENERGY_BLOCK):
            if not self.supports_block:
                return None
            return b"".join(to_bcd(v, 4) for v in (model.total, *model.rates))
        power = model.power_now(model.clock())
        if di in (DI.ACTIVE_POWER_TOTAL, DI.ACTIVE_POWER_A):
            return _signed_bcd(power * 10, 3, _MAX_POWER_RAW)
        if di == DI.VOLTAGE_A:
            return to_bcd(model.voltage_dv, 2)
        if di == DI.CURRENT_A:
            current_ma = power * 10_000 // model.voltage_dv if model.voltage_dv else 0
            return _signed_bcd(current_ma, 3, _MAX_CURRENT_RAW)
        if di == DI.RUN_STATUS_3:
            return self.status_word_3().to_bytes(2, "little")
        if di in (DI_DATE, DI_TIME):
            now = self.meter_time()
            fields: tuple[int, ...] = (
                (now.isoweekday() % 7, now.day, now.month, now.year % 100)
                if di == DI_DATE
                else (now.second, now.minute, now.hour)
            )
            return b"".join(to_bcd(f, 1) for f in fields)
        if model.meter_mode:
            if di == DI.REMAINING_AMOUNT:
                return to_bcd(max(model.balance_fen, 0), 4)
            if di == DI.OVERDRAFT_AMOUNT:
                return to_bcd(max(-model.balance_fen, 0), 4)
            if di == DI.PURCHASE_COUNT:
                return to_bcd(model.purchase_count % 10_000, 2)
        return None

    def status_word_3(self) -> int:
        """Run status word 3 (protocols.md 1.5) from the model and the last commands."""
        model = self.model
        word = 0
        if not model.supply_on:
            word |= 1 << 4
        if self.commanded_trip:
            word |= 1 << 6
        if self.alarm:
            word |= 1 << 7
        if model.meter_mode:
            word |= _MONEY_PREPAID
        if model.keep_power_active():
            word |= 1 << 12
        return word

    def _authorised(self, level: int, password: bytes) -> bool:
        return level in _PASSWORD_LEVELS and password[::-1].hex() == self.password

    def _write(self, data: bytes) -> bytes:
        if len(data) < 12:
            return self._abnormal(Function.WRITE, ErrorFlags.OTHER)
        if not self._authorised(data[4], data[5:8]):
            return self._abnormal(Function.WRITE, ErrorFlags.PASSWORD)
        di = int.from_bytes(data[:4], "little")
        value = data[12:]
        if di != SIM_PURCHASE_DI:
            return self._abnormal(Function.WRITE, ErrorFlags.NO_DATA)
        if len(value) != 6:
            return self._abnormal(Function.WRITE, ErrorFlags.OTHER)
        try:
            amount, count = from_bcd(value[:4]), from_bcd(value[4:])
        except ProtocolError:
            return self._abnormal(Function.WRITE, ErrorFlags.OTHER)
        if not self.model.purchase(amount, count):
            return self._abnormal(Function.WRITE, ErrorFlags.OTHER)
        return self._reply(Function.WRITE)

    def _relay(self, data: bytes) -> bytes:
        refuse = self._abnormal(Function.RELAY_CONTROL, ErrorFlags.OTHER)
        if len(data) != 16:
            return refuse
        if not self._authorised(data[0], data[1:4]):
            return self._abnormal(Function.RELAY_CONTROL, ErrorFlags.PASSWORD)
        valid_until = _datetime_from_bcd(data[10:16])
        if valid_until is None or valid_until < self.meter_time():
            return refuse
        try:
            command = RelayCommand(data[8])
        except ValueError:
            return refuse
        model = self.model
        model.advance()
        if command is RelayCommand.TRIP:
            if model.keep_power_active():
                return refuse
            model.set_supply(False, commanded=True)
            self.commanded_trip = True
        elif command in (RelayCommand.CLOSE_ALLOWED, RelayCommand.DIRECT_CLOSE):
            if model.meter_mode and model.balance_fen <= 0 and not model.keep_power_active():
                return refuse
            model.set_supply(True)
            self.commanded_trip = False
        elif command is RelayCommand.ALARM:
            self.alarm = True
        elif command is RelayCommand.ALARM_RELEASE:
            self.alarm = False
        elif command is RelayCommand.KEEP_POWER:
            model.set_keep_power(True)
        else:  # KEEP_POWER_RELEASE
            model.set_keep_power(False)
        return self._reply(Function.RELAY_CONTROL)

    # ------------------------------------------------------------------ DL/T 645-1997
    def _handle_1997(self, frame: Frame) -> bytes | None:
        if frame.function != Function97.READ:
            return None
        if len(frame.data) != 2:
            return self._abnormal(Function97.READ, _ERR97_ILLEGAL_DATA)
        di = int.from_bytes(frame.data, "little")
        value = self._value_1997(di)
        if value is None:
            return self._abnormal(Function97.READ, _ERR97_BAD_DI)
        return self._reply(Function97.READ, frame.data + value)

    def _value_1997(self, di: int) -> bytes | None:
        model = self.model
        model.advance()
        energy: dict[int, int] = {
            DI97.FORWARD_ENERGY_TOTAL: model.total,
            DI97.FORWARD_ENERGY_T1: model.rates[0],
            DI97.FORWARD_ENERGY_T2: model.rates[1],
            DI97.FORWARD_ENERGY_T3: model.rates[2],
            DI97.FORWARD_ENERGY_T4: model.rates[3],
        }
        if di in energy:
            return to_bcd(energy[di], 4)
        if di == DI97.FORWARD_ENERGY_BLOCK:
            if not self.supports_block:
                return None
            return b"".join(to_bcd(v, 4) for v in (model.total, *model.rates))
        power = model.power_now(model.clock())
        if di == DI97.VOLTAGE_A:
            return to_bcd(model.voltage_dv // 10, 2)
        if di == DI97.CURRENT_A:
            current_ma = power * 10_000 // model.voltage_dv if model.voltage_dv else 0
            return to_bcd(min(current_ma // 10, 9_999), 2)
        if di == DI97.ACTIVE_POWER_TOTAL:
            return to_bcd(min(power * 10, 999_999), 3)
        return None
