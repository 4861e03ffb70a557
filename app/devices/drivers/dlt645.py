"""DL/T 645-2007 and DL/T 645-1997 electricity meters behind a serial-to-TCP gateway
(protocols.md sections 1 and 2), driven through a ``GatewayLink``.

Public API
----------
``Dlt645Driver(link, timeout=1.0, retries=1, preamble=4, *, version=None)``
    A ``MeterDriver`` (``app.devices.drivers.base``).  ``version`` ``"2007"`` or ``"1997"``
    forces an edition; ``None`` takes it from ``MeterRef.protocol`` (``"dlt645-1997"`` is
    1997, anything else 2007).  Besides the interface it offers ``read_clock(meter)``.
``Dlt6451997Driver(link, timeout=1.0, retries=1, preamble=4)``
    The same driver fixed to DL/T 645-1997 (``protocol = "dlt645-1997"``).
``SIM_PURCHASE_DI``
    The data identifier ``push_purchase`` writes - a simulator/vendor extension, see below.
``DI_DATE``, ``DI_TIME``, ``decode_meter_clock(date_value, time_value) -> datetime``
    The meter clock identifiers (2007) and their decoding, used by ``read_clock``.
``SILENT_LIMIT``
    Polls in a row an optional item (or the energy block) may stay silent before it is
    remembered as unsupported.

Reading (2007), one request per item, in this order:

* energy: the combined-active block ``0000FF00`` (total and T1..T4 in one frame).  A meter
  that refuses it (abnormal reply, or a reply that does not decode) is read item by item
  (``00000000``, ``00000100`` .. ``00000400``) and ``capabilities["block_read"] = False`` is
  remembered, so later polls go straight to the items.  A meter that stays silent for the
  block but answers the items is given ``SILENT_LIMIT`` polls before the same is remembered
  (one lost reply on a noisy bus must not cost the meter its block reads forever); once a
  block has been answered (``capabilities["block_read"] = True``) a silent block means a
  silent meter and the read fails with ``NoAnswer``.  The total is required; T1..T4 are an
  optional group ("tariffs").
* optional items: active power ``02030000``, voltage A ``02010100``, current A ``02020100``,
  run status word 3 ``04000503`` (supply from the relay bit, keep power from bit 12) and,
  when ``meter.options["meter_mode"]`` or ``capabilities["balance"]`` is true, remaining
  amount ``00900200`` (with overdraft ``00900201`` when the remaining amount is 0) and
  purchase count ``03330201``.  An optional item the meter refuses is added to
  ``capabilities["unsupported"]`` and never asked again; one it stays silent for is counted in
  ``capabilities["silent"]`` and becomes unsupported after ``SILENT_LIMIT`` polls in a row.
  An optional item never fails a read: its field stays ``None``.

Reading (1997): the forward active total ``9010`` only (``MeterReading.total``).

Units (all exact integer conversions, no floats):

* energy: the meter's 0.01 kWh counts, unchanged (``total``, ``t1``..``t4``);
* power: the meter sends 0.0001 kW = 0.1 W; ``power_w = value // 10`` (floored: 1.1260 kW ->
  1126 W, 0.0009 kW -> 0 W, -0.0005 kW -> -1 W);
* voltage: 0.1 V = ``voltage_dv`` unchanged; current: 0.001 A = ``current_ma`` unchanged;
* money: fen unchanged; balance = remaining amount, or minus the overdraft amount when the
  remaining amount is 0.

Commands (2007 only; a 1997 meter raises ``Refused``):

* ``set_supply``: relay control ``0x1C`` - N1 ``1A`` trip; to close, ``1C`` direct close, or
  ``1B`` close-allowed when ``meter.options["close_command"] == "allowed"``.  Without that
  option a meter that refuses direct close is sent close-allowed, and if it accepts that,
  ``capabilities["direct_close"] = False`` is remembered.  (Close-allowed leaves the relay
  open until the tenant presses the meter's button: confirming with ``read_supply`` is the
  collector's job.)
* ``keep_power``: N1 ``3A`` keep power / ``3B`` release.
* Both send ``valid_until`` (meter local time) as the command's expiry, and the password
  level, password and operator code from ``meter.options`` (``password_level`` default 2,
  ``password`` default ``"000000"``, ``operator`` default ``"00000000"``).
* ``push_purchase``: DL/T 645 recharges meter-held balances with ESAM-secured commands
  (``0x03`` with ciphertext; protocols.md 1.7) whose content the standard does not give us.
  This driver writes (``0x14``) the data identifier ``meter.options["purchase_di"]``
  (default ``SIM_PURCHASE_DI``) with the value ``amount (4-byte BCD fen) + purchase count
  (2-byte BCD)``, each least significant byte first.  This is a **simulator/vendor
  extension, configure per meter model**; it is not part of DL/T 645.  If an attempt timed
  out and the retry is refused, the driver reads the purchase count: when it already equals
  ``count`` the first attempt landed (its acknowledgement was lost) and the call succeeds.
* ``broadcast_time``: ``0x08`` to ``99..99``; no reply is expected (both editions).

Errors: ``NoAnswer`` when the meter stays silent through ``retries`` repeats of ``timeout``
seconds (frames that fail their checksum count as silence, in ``link.stats.bad_frames``);
``Refused`` on an abnormal reply, or a reply whose value does not decode; ``ConnectionError``
propagates from the link.  Replies are matched with ``dlt645.is_reply_to`` (address and
function) and, for reads, the echoed data identifier, so a reply from another meter or a late
reply to an earlier request is never taken.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from app.devices import dlt645
from app.devices.dlt645 import (
    DI,
    DI97,
    Ack,
    ErrorReply,
    Frame,
    FrameDecoder,
    Function,
    Function97,
    ReadReply,
    RelayCommand,
)
from app.devices.drivers.base import MeterReading, MeterRef, NoAnswer, Refused
from app.devices.framing import ProtocolError, from_bcd, to_bcd
from app.devices.transport import GatewayLink

__all__ = [
    "DI_DATE",
    "DI_TIME",
    "SILENT_LIMIT",
    "SIM_PURCHASE_DI",
    "Dlt645Driver",
    "Dlt6451997Driver",
    "decode_meter_clock",
]

log = logging.getLogger("meterdesk.devices.dlt645")

SIM_PURCHASE_DI = 0xEE900001
"""Purchase write of the meterdesk simulator (``app.sim.dlt645``): simulator/vendor extension,
configure per meter model (``MeterRef.options["purchase_di"]``).

Value ``amount (4-byte BCD, fen) + purchase count (2-byte BCD)``, each least significant byte
first; the meter accepts only its last count + 1.  Not a DL/T 645 identifier: real meters
recharge through ESAM-secured commands (State Grid) or their own proprietary DI (e.g. the
PMC340's ``04900000``, protocols.md 1.7), so a real model needs its own configuration.
"""

DI_DATE = 0x04000101
"""Date and weekday ``YYMMDDWW`` (4 bytes, sent ``WW DD MM YY``), protocols.md 1.4."""
DI_TIME = 0x04000102
"""Time ``hhmmss`` (3 bytes, sent ``ss mm hh``), protocols.md 1.4."""

SILENT_LIMIT = 3

_BROADCAST_SETTLE = 0.05  # seconds the link waits after a broadcast (no reply is expected)
_MAX_PURCHASE_FEN = 99_999_999  # 4 BCD bytes
_MAX_PURCHASE_COUNT = 9_999  # 2 BCD bytes

R = TypeVar("R")
_Energy = tuple[int, int | None, int | None, int | None, int | None]  # total, T1..T4


def decode_meter_clock(date_value: bytes, time_value: bytes) -> dt.datetime:
    """The meter clock from the values of ``DI_DATE`` (4 bytes) and ``DI_TIME`` (3 bytes).

    Raises ``ProtocolError`` for wrong lengths, non-BCD bytes or an impossible date.
    """
    if len(date_value) != 4 or len(time_value) != 3:
        raise ProtocolError("meter clock needs 4 date bytes and 3 time bytes")
    _weekday, day, month, year = (from_bcd(date_value[i : i + 1]) for i in range(4))
    second, minute, hour = (from_bcd(time_value[i : i + 1]) for i in range(3))
    try:
        return dt.datetime(2000 + year, month, day, hour, minute, second)
    except ValueError as exc:
        raise ProtocolError(f"meter clock is not a date-time: {exc}") from None


@dataclass
class _Learned:
    """What one poll teaches about a meter's optional items (kept in ``capabilities``)."""

    address: str
    caps: dict[str, Any]
    unsupported: set[str] = field(default_factory=set)
    silent: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, meter: MeterRef) -> _Learned:
        caps = meter.capabilities
        return cls(
            meter.address, caps, set(caps.get("unsupported", [])), dict(caps.get("silent", {}))
        )

    def skip(self, name: str) -> bool:
        return name in self.unsupported

    def answered(self, name: str) -> None:
        self.silent.pop(name, None)

    def refused(self, name: str, reason: object) -> None:
        log.info(
            "meter %s lacks optional item %s (%s); not asking again", self.address, name, reason
        )
        self.silent.pop(name, None)
        self.unsupported.add(name)

    def no_answer(self, name: str) -> bool:
        """Count a silent poll; True when the limit is reached (the counter is then cleared)."""
        count = self.silent.get(name, 0) + 1
        if count >= SILENT_LIMIT:
            self.silent.pop(name, None)
            return True
        self.silent[name] = count
        return False

    def save(self) -> None:
        if self.unsupported:
            self.caps["unsupported"] = sorted(self.unsupported)
        else:
            self.caps.pop("unsupported", None)
        if self.silent:
            self.caps["silent"] = dict(sorted(self.silent.items()))
        else:
            self.caps.pop("silent", None)


class Dlt645Driver:
    """A ``MeterDriver`` for DL/T 645 meters on one gateway (see the module docstring)."""

    def __init__(
        self,
        link: GatewayLink[Any],
        timeout: float = 1.0,
        retries: int = 1,
        preamble: int = 4,
        *,
        version: str | None = None,
    ) -> None:
        if version not in (None, "2007", "1997"):
            raise ValueError(f"DL/T 645 version must be '2007' or '1997', not {version!r}")
        if retries < 0:
            raise ValueError("retries must not be negative")
        self.link = link
        self.timeout = timeout
        self.retries = retries
        self.preamble = preamble
        self.version = version

    # ------------------------------------------------------------------ plumbing
    def _edition(self, meter: MeterRef) -> str:
        if self.version is not None:
            return self.version
        return "1997" if meter.protocol == "dlt645-1997" else "2007"

    def _require_2007(self, meter: MeterRef, what: str) -> None:
        if self._edition(meter) != "2007":
            raise Refused(f"meter {meter.address}: DL/T 645-1997 defines no {what}")

    async def _request(
        self,
        meter: MeterRef,
        request: bytes,
        function: int,
        what: str,
        *,
        di: int | None = None,
        edition: str = "2007",
        retries: int | None = None,
    ) -> ReadReply | Ack:
        """Send ``request`` until a matching reply comes (``retries`` repeats); return the
        normal reply, raise ``Refused`` for an abnormal one, ``NoAnswer`` for silence."""
        address = meter.address
        parse = dlt645.parse_reply if edition == "2007" else dlt645.parse_reply_1997

        def match(frame: Frame) -> bool:
            try:
                if not dlt645.is_reply_to(frame, address, function):
                    return False
                reply = parse(frame)
            except ProtocolError:
                return False
            return not (di is not None and isinstance(reply, ReadReply) and reply.di != di)

        attempts = 1 + (self.retries if retries is None else retries)
        for _ in range(attempts):
            frame = await self.link.transact(request, FrameDecoder(), match, self.timeout)
            if frame is None:
                continue
            reply = parse(frame)
            if isinstance(reply, ErrorReply):
                flags = f" ({reply.flags!r})" if reply.flags is not None else ""
                raise Refused(f"meter {address} refused {what}: ERR {reply.error:#04x}{flags}")
            return reply
        raise NoAnswer(f"meter {address}: no answer to {what} ({attempts} attempts)")

    async def _read_value(self, meter: MeterRef, di: int) -> bytes:
        """The value bytes of a 2007 read of ``di``."""
        request = dlt645.encode_read(meter.address, di, preamble=self.preamble)
        reply = await self._request(meter, request, Function.READ, f"read {di:08X}", di=di)
        assert isinstance(reply, ReadReply)
        return reply.value

    async def _read_decoded(self, meter: MeterRef, di: int, decode: Callable[[bytes], R]) -> R:
        """Read and decode ``di``; a value that does not decode is a refusal."""
        value = await self._read_value(meter, di)
        try:
            return decode(value)
        except ProtocolError as exc:
            raise Refused(f"meter {meter.address}: undecodable {di:08X} value: {exc}") from None

    async def _read_int(self, meter: MeterRef, di: int) -> int:
        return await self._read_decoded(meter, di, lambda value: dlt645.decode_int(di, value))

    async def _optional(
        self,
        meter: MeterRef,
        learned: _Learned,
        name: str,
        di: int,
        decode: Callable[[bytes], R],
    ) -> R | None:
        """An optional item: None when unsupported, refused or silent (and learn from it)."""
        if learned.skip(name):
            return None
        try:
            result = await self._read_decoded(meter, di, decode)
        except Refused as exc:
            learned.refused(name, exc)
            return None
        except NoAnswer:
            if learned.no_answer(name):
                learned.refused(name, f"no answer in {SILENT_LIMIT} polls")
            return None
        learned.answered(name)
        return result

    # ------------------------------------------------------------------ reading
    async def _read_energy(self, meter: MeterRef, learned: _Learned) -> _Energy:
        """Total and T1..T4: the block when the meter answers it, else item by item."""
        caps = meter.capabilities
        block = caps.get("block_read")
        block_refused = False
        if block is not False:
            try:
                energy = await self._read_decoded(
                    meter, DI.ENERGY_BLOCK, dlt645.decode_energy_block
                )
            except Refused as exc:
                block_refused = True
                reason: object = exc
            except NoAnswer:
                if block is True:
                    raise
                reason = "no answer"
            else:
                caps["block_read"] = True
                learned.answered("block")
                return energy
        total = await self._read_int(meter, DI.ENERGY_TOTAL)
        if block is not False:  # the block failed but the meter answers items
            if block_refused or learned.no_answer("block"):
                log.info(
                    "meter %s: energy block not available (%s); reading items",
                    meter.address,
                    reason,
                )
                caps["block_read"] = False
                learned.answered("block")  # forget a silence count: decided
        rates: list[int | None] = [None] * 4
        if not learned.skip("tariffs"):
            try:
                for i, di in enumerate((DI.ENERGY_T1, DI.ENERGY_T2, DI.ENERGY_T3, DI.ENERGY_T4)):
                    rates[i] = await self._read_int(meter, di)
            except Refused as exc:
                rates = [None] * 4
                learned.refused("tariffs", exc)
            except NoAnswer:
                rates = [None] * 4
                if learned.no_answer("tariffs"):
                    learned.refused("tariffs", f"no answer in {SILENT_LIMIT} polls")
            else:
                learned.answered("tariffs")
        return total, rates[0], rates[1], rates[2], rates[3]

    async def read(self, meter: MeterRef) -> MeterReading:
        """Energy, power, voltage, current, relay status and (meter mode) balance and
        purchase count in one poll; see the module docstring."""
        if self._edition(meter) == "1997":
            return await self._read_1997(meter)
        learned = _Learned.of(meter)
        try:
            total, t1, t2, t3, t4 = await self._read_energy(meter, learned)
            reading = MeterReading(total=total, t1=t1, t2=t2, t3=t3, t4=t4)
            power = await self._optional(
                meter,
                learned,
                "power_w",
                DI.ACTIVE_POWER_TOTAL,
                lambda v: dlt645.decode_int(DI.ACTIVE_POWER_TOTAL, v),
            )
            if power is not None:
                reading.power_w = power // 10  # 0.0001 kW = 0.1 W, floored to W
            reading.voltage_dv = await self._optional(
                meter,
                learned,
                "voltage_dv",
                DI.VOLTAGE_A,
                lambda v: dlt645.decode_int(DI.VOLTAGE_A, v),
            )
            reading.current_ma = await self._optional(
                meter,
                learned,
                "current_ma",
                DI.CURRENT_A,
                lambda v: dlt645.decode_int(DI.CURRENT_A, v),
            )
            status = await self._optional(
                meter, learned, "status", DI.RUN_STATUS_3, dlt645.decode_run_status_3
            )
            if status is not None:
                reading.supply = "off" if status.relay_open else "on"
                reading.keep_power = status.keep_power
                reading.extra["run_status_3"] = status.raw
            if meter.options.get("meter_mode") or meter.capabilities.get("balance"):
                await self._read_prepaid(meter, learned, reading)
        finally:
            learned.save()
        return reading

    async def _read_prepaid(
        self, meter: MeterRef, learned: _Learned, reading: MeterReading
    ) -> None:
        remaining = await self._optional(
            meter,
            learned,
            "balance_fen",
            DI.REMAINING_AMOUNT,
            lambda v: dlt645.decode_int(DI.REMAINING_AMOUNT, v),
        )
        if remaining == 0:
            overdraft = await self._optional(
                meter,
                learned,
                "overdraft",
                DI.OVERDRAFT_AMOUNT,
                lambda v: dlt645.decode_int(DI.OVERDRAFT_AMOUNT, v),
            )
            reading.balance_fen = -overdraft if overdraft else 0
        else:
            reading.balance_fen = remaining
        reading.purchase_count = await self._optional(
            meter,
            learned,
            "purchase_count",
            DI.PURCHASE_COUNT,
            lambda v: dlt645.decode_int(DI.PURCHASE_COUNT, v),
        )

    async def _read_1997(self, meter: MeterRef) -> MeterReading:
        di = DI97.FORWARD_ENERGY_TOTAL
        request = dlt645.encode_read_1997(meter.address, di, preamble=self.preamble)
        reply = await self._request(
            meter, request, Function97.READ, f"read {di:04X} (1997)", di=di, edition="1997"
        )
        assert isinstance(reply, ReadReply)
        try:
            total = dlt645.decode_int(di, reply.value)
        except ProtocolError as exc:
            raise Refused(f"meter {meter.address}: undecodable {di:04X} value: {exc}") from None
        return MeterReading(total=total)

    async def read_supply(self, meter: MeterRef) -> str:
        """'on' (relay closed) or 'off' (relay open) from run status word 3."""
        self._require_2007(meter, "run status word")
        status = await self._read_decoded(meter, DI.RUN_STATUS_3, dlt645.decode_run_status_3)
        return "off" if status.relay_open else "on"

    async def read_clock(self, meter: MeterRef) -> dt.datetime:
        """The meter's clock (local time) from ``DI_DATE`` and ``DI_TIME`` (2007)."""
        self._require_2007(meter, "clock read")
        date_value = await self._read_value(meter, DI_DATE)
        time_value = await self._read_value(meter, DI_TIME)
        try:
            return decode_meter_clock(date_value, time_value)
        except ProtocolError as exc:
            raise Refused(f"meter {meter.address}: undecodable clock: {exc}") from None

    # ------------------------------------------------------------------ commands
    async def _relay(
        self, meter: MeterRef, command: RelayCommand, valid_until: dt.datetime
    ) -> None:
        request = dlt645.encode_relay_control(
            meter.address,
            command,
            valid_until,
            password_level=int(meter.options.get("password_level", 0x02)),
            password=str(meter.options.get("password", "000000")),
            operator=str(meter.options.get("operator", "00000000")),
            preamble=self.preamble,
        )
        await self._request(meter, request, Function.RELAY_CONTROL, f"relay control {command.name}")

    async def set_supply(self, meter: MeterRef, on: bool, *, valid_until: dt.datetime) -> None:
        """Trip (off) or close (on) the relay; see the module docstring for the close
        command chosen.  Raises ``Refused`` when the meter says no."""
        self._require_2007(meter, "relay control")
        if not on:
            await self._relay(meter, RelayCommand.TRIP, valid_until)
            return
        choice = meter.options.get("close_command")
        if choice not in (None, "direct", "allowed"):
            raise ValueError(f"close_command must be 'direct' or 'allowed', not {choice!r}")
        if choice == "allowed" or (
            choice is None and meter.capabilities.get("direct_close") is False
        ):
            await self._relay(meter, RelayCommand.CLOSE_ALLOWED, valid_until)
            return
        try:
            await self._relay(meter, RelayCommand.DIRECT_CLOSE, valid_until)
        except Refused as direct_refusal:
            if choice == "direct":
                raise
            try:
                await self._relay(meter, RelayCommand.CLOSE_ALLOWED, valid_until)
            except Refused:
                raise direct_refusal from None
            log.info(
                "meter %s refuses direct close (%s) but accepts close-allowed",
                meter.address,
                direct_refusal,
            )
            meter.capabilities["direct_close"] = False

    async def keep_power(self, meter: MeterRef, on: bool, *, valid_until: dt.datetime) -> None:
        """Keep power (保电, N1 3A) or release it (3B)."""
        self._require_2007(meter, "keep-power control")
        command = RelayCommand.KEEP_POWER if on else RelayCommand.KEEP_POWER_RELEASE
        await self._relay(meter, command, valid_until)

    def _purchase_di(self, meter: MeterRef) -> int:
        configured = meter.options.get("purchase_di")
        if configured is None:
            return SIM_PURCHASE_DI
        return int(configured, 16) if isinstance(configured, str) else int(configured)

    async def push_purchase(self, meter: MeterRef, amount_fen: int, count: int) -> None:
        """Add ``amount_fen`` to the meter-held balance as purchase number ``count`` through
        the configured purchase write (simulator/vendor extension, see ``SIM_PURCHASE_DI``).

        Raises ``Refused`` when the meter refuses (e.g. ``count`` is not its last + 1),
        ``ValueError`` for an amount or count the value cannot carry.
        """
        self._require_2007(meter, "purchase write")
        if not 0 < amount_fen <= _MAX_PURCHASE_FEN:
            raise ValueError(f"purchase amount out of range: {amount_fen} fen")
        if not 0 < count <= _MAX_PURCHASE_COUNT:
            raise ValueError(f"purchase count out of range: {count}")
        di = self._purchase_di(meter)
        request = dlt645.encode_write(
            meter.address,
            di,
            to_bcd(amount_fen, 4) + to_bcd(count, 2),
            password_level=int(meter.options.get("password_level", 0x02)),
            password=str(meter.options.get("password", "000000")),
            operator=str(meter.options.get("operator", "00000000")),
            preamble=self.preamble,
        )
        what = f"purchase write {di:08X} (count {count})"
        timed_out = False
        for _ in range(1 + self.retries):
            try:
                await self._request(meter, request, Function.WRITE, what, retries=0)
                return
            except NoAnswer:
                timed_out = True
            except Refused as exc:
                meter_count = await self._purchase_count(meter)
                if timed_out and meter_count == count:
                    log.info(
                        "meter %s: purchase %s landed before its acknowledgement was lost",
                        meter.address,
                        count,
                    )
                    return
                raise Refused(f"{exc}; meter purchase count is {meter_count}") from None
        raise NoAnswer(f"meter {meter.address}: no answer to {what} ({1 + self.retries} attempts)")

    async def _purchase_count(self, meter: MeterRef) -> int | None:
        try:
            return await self._read_int(meter, DI.PURCHASE_COUNT)
        except (NoAnswer, Refused):
            return None

    async def broadcast_time(self, when: dt.datetime) -> None:
        """Broadcast time (``0x08`` to ``99..99``, both editions); meters do not reply."""
        request = dlt645.encode_broadcast_time(when, preamble=self.preamble)
        await self.link.send(request, settle=_BROADCAST_SETTLE)


class Dlt6451997Driver(Dlt645Driver):
    """``Dlt645Driver`` fixed to DL/T 645-1997: reads the forward active total (``9010``),
    broadcasts time; relay, keep-power and purchase commands raise ``Refused``."""

    def __init__(
        self, link: GatewayLink[Any], timeout: float = 1.0, retries: int = 1, preamble: int = 4
    ) -> None:
        super().__init__(link, timeout, retries, preamble, version="1997")
