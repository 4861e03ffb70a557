"""Modbus meters (Modbus RTU through a serial-to-TCP gateway, or Modbus TCP) driven by a
register-map profile (``app.devices.profiles``).

``ModbusDriver`` talks to one gateway (one RS-485 bus) with pymodbus'
``AsyncModbusTcpClient``: ``framer="rtu"`` sends RTU frames over the TCP connection (the usual
serial server / communication manager in transparent mode), ``framer="socket"`` speaks Modbus
TCP (MBAP) to a Modbus TCP gateway or meter.  The meter's slave address (device id) is
``MeterRef.address`` as a decimal string; its register map is ``MeterRef.profile`` (default
``acrel-ddsy1352``).

Reading: the profile's points are grouped into as few FC03/FC04 reads as possible (contiguous
registers of the same function, at most ``profile.max_read`` registers each).  If the meter
refuses a grouped read (exception 2 or 3) or answers fewer registers than asked, the group is
read point by point; what that teaches is remembered in ``MeterRef.capabilities`` (persisted
by the collector) so later polls do not ask again:

* ``{"group_read": False}`` - the meter refused a group whose points it answers one by one;
* ``{"unsupported": [...]}`` - optional points the meter refused (or stayed silent for in
  three polls in a row, counted in ``"silent"``); they are never read again;
* ``{"modbus_profile": name}`` - the profile this was learned with (a new profile resets it).

An optional point the meter lacks never fails a read; a required one raises ``Refused``.

Relay: ``set_supply`` and ``keep_power`` write the profile's actions with FC16 (or FC06).  On
the Acrel DDSY1352/DTSY1352 the relay is driven by "forced control" at 0x0057: [1, 1] forced
open (trip), [1, 0] forced close, [0, 0] forced control off (the meter's prepaid logic decides
again).  Keep power is realised as forced close (the meter then ignores its own zero-balance
trip), and releasing keep power switches forced control off.  The ``valid_until`` of a
command is not sent: these meters have no expiry for forced control.

Supply state: from the profile's ``supply`` point when it has one, else from the registers
the relay actions write when they can be read back ([1, 1] -> "off", [1, 0] -> "on"; any other
content, e.g. forced control released, -> unknown), else unknown (``None``).

Errors: ``NoAnswer`` when the meter stays silent (after ``retries`` repeats of ``timeout``
seconds each) or a Modbus TCP gateway answers exception 0x0A/0x0B; ``Refused`` for any other
Modbus exception reply; ``ConnectionError`` when the gateway cannot be reached.  One driver
serialises its requests: a bus carries one request at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable

from pymodbus import FramerType
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU

from app.devices.drivers.base import MeterReading, MeterRef, NoAnswer, Refused
from app.devices.profiles import Point, Profile, WriteAction, load_profile

__all__ = ["DEFAULT_PROFILE", "ModbusDriver"]

log = logging.getLogger("meterdesk.devices.modbus")

DEFAULT_PROFILE = "acrel-ddsy1352"
BROADCAST_TURNAROUND = 0.2  # seconds of bus silence after a broadcast
SILENT_LIMIT = 3  # polls in a row an optional point may stay silent before it counts as absent
_FALLBACK_CODES = (2, 3)  # illegal data address / value: try smaller reads
_GATEWAY_SILENT = (0x0A, 0x0B)  # gateway path unavailable / target device failed to respond
_EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "device failure",
    5: "acknowledge",
    6: "device busy",
    0x0A: "gateway path unavailable",
    0x0B: "gateway target did not respond",
}
_DATATYPES = {
    "uint16": AsyncModbusTcpClient.DATATYPE.UINT16,
    "int16": AsyncModbusTcpClient.DATATYPE.INT16,
    "uint32": AsyncModbusTcpClient.DATATYPE.UINT32,
    "int32": AsyncModbusTcpClient.DATATYPE.INT32,
}
_READING_FIELDS = (
    "t1",
    "t2",
    "t3",
    "t4",
    "power_w",
    "voltage_dv",
    "current_ma",
    "balance_fen",
    "purchase_count",
)


class _Short(Exception):
    """A block read the meter refused (exception 2/3) or answered short."""


def _exception_text(code: int) -> str:
    return f"Modbus exception {code} ({_EXCEPTION_NAMES.get(code, 'unknown')})"


def _swap_bytes(words: list[int]) -> list[int]:
    return [((w & 0xFF) << 8) | (w >> 8) for w in words]


class ModbusDriver:
    """A ``MeterDriver`` for the Modbus meters behind one gateway (see the module docstring)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        framer: str = "rtu",
        timeout: float = 1.0,
        retries: int = 1,
        profile_dir: str | os.PathLike[str] | None = None,
        default_profile: str = DEFAULT_PROFILE,
    ) -> None:
        if framer not in ("rtu", "socket"):
            raise ValueError(f"framer {framer!r} is not 'rtu' or 'socket'")
        self.host = host
        self.port = port
        self.framer = framer
        self.timeout = timeout
        self.retries = retries
        self.profile_dir = profile_dir
        self.default_profile = default_profile
        self._client: AsyncModbusTcpClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: asyncio.Lock | None = None
        self._seen: dict[str, set[int]] = {}  # profile name -> device ids read on this bus

    # ------------------------------------------------------------------ connection
    def _bind_loop(self) -> tuple[AsyncModbusTcpClient, asyncio.Lock]:
        loop = asyncio.get_running_loop()
        if self._client is None or self._lock is None or self._loop is not loop:
            if self._client is not None:
                with contextlib.suppress(Exception):
                    self._client.close()
            self._client = AsyncModbusTcpClient(
                self.host,
                port=self.port,
                timeout=self.timeout,
                retries=self.retries,
                framer=FramerType.RTU if self.framer == "rtu" else FramerType.SOCKET,
                reconnect_delay=0,  # no background reconnects: each request connects if needed
            )
            self._lock = asyncio.Lock()
            self._loop = loop
        return self._client, self._lock

    @contextlib.asynccontextmanager
    async def _bus(self) -> AsyncIterator[AsyncModbusTcpClient]:
        """Hold the bus (one request sequence at a time) with a connected client."""
        client, lock = self._bind_loop()
        async with lock:
            if not client.connected and not await client.connect():
                raise ConnectionError(f"Modbus gateway {self.host}:{self.port} is unreachable")
            yield client

    def _drop_connection(self) -> None:
        """Forget the TCP connection: an RTU reply that comes after its timeout would otherwise
        be taken for the answer to the next request (RTU frames carry no transaction id)."""
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()

    async def close(self) -> None:
        """Close the gateway connection (a later request reconnects)."""
        self._drop_connection()

    async def _request(
        self,
        client: AsyncModbusTcpClient,
        call: Callable[[AsyncModbusTcpClient], Awaitable[ModbusPDU]],
        what: str,
    ) -> ModbusPDU:
        """One request and its reply; pymodbus errors mapped onto NoAnswer / ConnectionError.
        A broadcast (no reply expected) returns an empty PDU."""
        try:
            if not client.connected and not await client.connect():
                raise ConnectionError(f"Modbus gateway {self.host}:{self.port} is unreachable")
            response = await call(client)
        except ConnectionException as exc:
            self._drop_connection()
            raise ConnectionError(f"Modbus gateway {self.host}:{self.port}: {exc}") from None
        except ModbusIOException:
            if self.framer == "rtu":
                self._drop_connection()
            raise NoAnswer(f"no answer to {what} via {self.host}:{self.port}") from None
        except ModbusException as exc:
            raise NoAnswer(f"{what}: {exc}") from None
        if response is None:  # no_response_expected
            return ModbusPDU()
        if response.isError() and response.exception_code in _GATEWAY_SILENT:
            raise NoAnswer(f"{what}: {_exception_text(response.exception_code)}")
        return response

    # ------------------------------------------------------------------ profile and address
    def _profile(self, meter: MeterRef) -> Profile:
        profile = load_profile(meter.profile or self.default_profile, self.profile_dir)
        self._seen.setdefault(profile.name, set()).add(self._unit(meter))
        caps = meter.capabilities
        if caps.get("modbus_profile") != profile.name:
            for key in ("group_read", "unsupported", "silent"):
                caps.pop(key, None)
            caps["modbus_profile"] = profile.name
        return profile

    @staticmethod
    def _unit(meter: MeterRef) -> int:
        try:
            unit = int(str(meter.address).strip())
        except ValueError:
            raise ValueError(f"Modbus address {meter.address!r} is not a device id") from None
        if not 1 <= unit <= 247:
            raise ValueError(f"Modbus device id {unit} is outside 1..247")
        return unit

    # ------------------------------------------------------------------ reading
    def _plan(self, profile: Profile, points: list[Point], grouped: bool) -> list[list[Point]]:
        """Points in blocks of contiguous registers of one function (one point per block when
        ``grouped`` is False)."""
        blocks: list[list[Point]] = []
        for p in sorted(points, key=lambda x: (x.function_code, x.address)):
            last = blocks[-1] if blocks else None
            if (
                grouped
                and last
                and last[-1].function == p.function
                and last[-1].end == p.address
                and p.end - last[0].address <= profile.max_read
            ):
                last.append(p)
            else:
                blocks.append([p])
        return blocks

    async def _read_block(
        self, client: AsyncModbusTcpClient, unit: int, block: list[Point]
    ) -> list[int]:
        start, count = block[0].address, block[-1].end - block[0].address
        fc = block[0].function_code
        what = f"FC{fc:02d} 0x{start:04X}x{count} on device {unit}"
        if fc == 3:
            response = await self._request(
                client, lambda c: c.read_holding_registers(start, count=count, device_id=unit), what
            )
        else:
            response = await self._request(
                client, lambda c: c.read_input_registers(start, count=count, device_id=unit), what
            )
        if response.isError():
            if response.exception_code in _FALLBACK_CODES:
                raise _Short(_exception_text(response.exception_code))
            raise Refused(f"{what}: {_exception_text(response.exception_code)}")
        registers = list(response.registers)
        if len(registers) < count:
            raise _Short(f"{what}: {len(registers)} registers in the reply")
        if len(registers) > count or response.function_code != fc:
            self._drop_connection()
            raise NoAnswer(f"{what}: the reply does not match the request")
        return registers

    def _decode(self, profile: Profile, point: Point, words: list[int]) -> int:
        if profile.byte_order == "little":
            words = _swap_bytes(words)
        raw = AsyncModbusTcpClient.convert_from_registers(
            words,
            _DATATYPES[point.type],
            word_order="little" if profile.word_order == "little" else "big",
        )
        assert isinstance(raw, int)
        return point.value_from_raw(raw)

    async def _read_points(
        self, meter: MeterRef, profile: Profile, points: list[Point]
    ) -> tuple[dict[str, int], dict[int, int]]:
        """Values (our units) by point name and raw registers by address, for every point the
        meter answered; learns capabilities on the way."""
        caps = meter.capabilities
        unit = self._unit(meter)
        unsupported = set(caps.get("unsupported", []))
        silent: dict[str, int] = dict(caps.get("silent", {}))
        wanted = [p for p in points if p.name not in unsupported]
        values: dict[str, int] = {}
        registers: dict[int, int] = {}
        answered = False

        def keep(block: list[Point], words: list[int]) -> None:
            offset = 0
            for p in block:
                part = words[offset : offset + p.width]
                values[p.name] = self._decode(profile, p, part)
                for i, w in enumerate(part):
                    registers[p.address + i] = w
                offset += p.width
                silent.pop(p.name, None)

        def refused(p: Point, reason: str) -> None:
            if not p.optional:
                raise Refused(
                    f"device {unit} refuses required point {p.name} "
                    f"(0x{p.address:04X}, profile {profile.name}): {reason}"
                )
            log.info(
                "device %s lacks optional point %s (%s); not asking again", unit, p.name, reason
            )
            unsupported.add(p.name)

        async with self._bus() as client:
            for block in self._plan(profile, wanted, caps.get("group_read", True)):
                try:
                    keep(block, await self._read_block(client, unit, block))
                    answered = True
                    continue
                except NoAnswer:
                    if not answered or any(not p.optional for p in block):
                        raise
                    for p in block:  # silent for optional registers only: count it
                        silent[p.name] = silent.get(p.name, 0) + 1
                        if silent[p.name] >= SILENT_LIMIT:
                            silent.pop(p.name)
                            refused(p, f"no answer in {SILENT_LIMIT} polls")
                    continue
                except _Short as exc:
                    if len(block) == 1:
                        refused(block[0], str(exc))
                        continue
                    group_reason = str(exc)
                singles_ok = True
                for p in block:
                    try:
                        keep([p], await self._read_block(client, unit, [p]))
                        answered = True
                    except _Short as exc:
                        singles_ok = False
                        refused(p, str(exc))
                if singles_ok:
                    log.info(
                        "device %s refuses grouped reads (%s); reading point by point",
                        unit,
                        group_reason,
                    )
                    caps["group_read"] = False
        if unsupported:
            caps["unsupported"] = sorted(unsupported)
        if silent:
            caps["silent"] = silent
        else:
            caps.pop("silent", None)
        return values, registers

    @staticmethod
    def _registers_equal(registers: dict[int, int], action: WriteAction | None) -> bool | None:
        """Whether the registers an action writes read back as its values (None: not read)."""
        if action is None or not action.values:
            return None
        got = [registers.get(action.address + i) for i in range(len(action.values))]
        if any(g is None for g in got):
            return None
        return tuple(got) == action.values

    def _supply(
        self, profile: Profile, values: dict[str, int], registers: dict[int, int]
    ) -> str | None:
        point = profile.points.get("supply")
        if point is not None and "supply" in values:
            return "on" if values["supply"] == point.on_value else "off"
        if self._registers_equal(registers, profile.actions.get("supply_off")):
            return "off"
        if self._registers_equal(registers, profile.actions.get("supply_on")):
            return "on"
        return None

    def _keep_power(
        self, profile: Profile, values: dict[str, int], registers: dict[int, int]
    ) -> bool | None:
        if "keep_power" in values:
            return values["keep_power"] != 0
        return self._registers_equal(registers, profile.actions.get("keep_power_on"))

    async def read(self, meter: MeterRef) -> MeterReading:
        """Every point of the meter's profile in one poll (see the module docstring)."""
        profile = self._profile(meter)
        values, registers = await self._read_points(meter, profile, list(profile.points.values()))
        reading = MeterReading(total=values["total"])
        for name in _READING_FIELDS:
            if name in values:
                setattr(reading, name, values[name])
        reading.supply = self._supply(profile, values, registers)
        reading.keep_power = self._keep_power(profile, values, registers)
        reading.extra = {
            k: v
            for k, v in values.items()
            if k not in _READING_FIELDS and k not in ("total", "supply", "keep_power")
        }
        return reading

    async def read_supply(self, meter: MeterRef) -> str:
        """'on' or 'off' from the relay status point or the forced-control registers; raises
        Refused when the meter offers neither or its relay is under its own control."""
        profile = self._profile(meter)
        unsupported = set(meter.capabilities.get("unsupported", []))
        status = profile.points.get("supply")
        relay = profile.actions.get("supply_off")
        wanted: list[Point] = []
        if status is not None and status.name not in unsupported:
            wanted = [status]
        elif relay is not None:
            span = range(relay.address, relay.address + relay.register_count)
            wanted = [
                p
                for p in profile.points.values()
                if p.function == "holding"
                and p.name not in unsupported
                and any(a in span for a in range(p.address, p.end))
            ]
        if not wanted:
            raise Refused(
                f"profile {profile.name}: no readable relay status for device {meter.address}"
            )
        values, registers = await self._read_points(meter, profile, wanted)
        state = self._supply(profile, values, registers)
        if state is None:
            raise Refused(
                f"device {meter.address}: relay state unknown (forced control released "
                f"or status not readable)"
            )
        return state

    # ------------------------------------------------------------------ writing
    async def _write(
        self, meter: MeterRef, profile: Profile, action: WriteAction, registers: list[int]
    ) -> None:
        unit = self._unit(meter)
        what = (
            f"{action.name} (FC{action.function_code:02d} 0x{action.address:04X}) on device {unit}"
        )
        async with self._bus() as client:
            if action.function_code == 6:
                response = await self._request(
                    client,
                    lambda c: c.write_register(action.address, registers[0], device_id=unit),
                    what,
                )
            else:
                response = await self._request(
                    client,
                    lambda c: c.write_registers(action.address, registers, device_id=unit),
                    what,
                )
        if response.isError():
            raise Refused(f"{what}: {_exception_text(response.exception_code)}")
        echoed = response.address == action.address and (
            list(response.registers[:1]) == registers[:1]
            if action.function_code == 6
            else response.count == len(registers)
        )
        if not echoed:
            self._drop_connection()
            raise NoAnswer(f"{what}: the reply does not match the request")

    def _action(self, profile: Profile, name: str) -> WriteAction:
        action = profile.actions.get(name)
        if action is None:
            raise Refused(f"profile {profile.name} defines no {name} write")
        return action

    async def set_supply(self, meter: MeterRef, on: bool, *, valid_until: dt.datetime) -> None:
        """Close (forced close) or open (forced open) the relay; ``valid_until`` is not sent."""
        profile = self._profile(meter)
        action = self._action(profile, "supply_on" if on else "supply_off")
        await self._write(meter, profile, action, list(action.values))

    async def keep_power(self, meter: MeterRef, on: bool, *, valid_until: dt.datetime) -> None:
        """Keep power (Acrel: forced close) or release it (Acrel: forced control off, the
        meter's prepaid control decides again)."""
        profile = self._profile(meter)
        action = self._action(profile, "keep_power_on" if on else "keep_power_off")
        await self._write(meter, profile, action, list(action.values))

    async def push_purchase(self, meter: MeterRef, amount_fen: int, count: int) -> None:
        """Write ``amount_fen`` as purchase number ``count`` with the profile's purchase write;
        the meter refuses (Refused) a count that is not its last + 1."""
        profile = self._profile(meter)
        action = self._action(profile, "purchase")
        try:
            registers = action.registers_for(
                {"amount_fen": amount_fen, "count": count},
                byte_order=profile.byte_order,
                word_order=profile.word_order,
            )
        except ValueError as exc:
            raise Refused(f"profile {profile.name} cannot carry this purchase: {exc}") from None
        await self._write(meter, profile, action, registers)

    async def broadcast_time(self, when: dt.datetime) -> None:
        """Set the clock of the meters on this bus whose profile defines a clock write (a
        broadcast to device 0, or one write per meter read so far); otherwise nothing."""
        fields = {
            "year": when.year,
            "year2": when.year % 100,
            "month": when.month,
            "day": when.day,
            "hour": when.hour,
            "minute": when.minute,
            "second": when.second,
            "weekday": when.isoweekday() % 7,
        }  # 0 = Sunday
        for name, units in sorted(self._seen.items()):
            profile = load_profile(name, self.profile_dir)
            action = profile.actions.get("clock")
            if action is None:
                continue
            registers = action.registers_for(
                fields, byte_order=profile.byte_order, word_order=profile.word_order
            )
            if action.broadcast:
                await self._broadcast(action, registers)
                continue
            for unit in sorted(units):
                ref = MeterRef(address=str(unit), protocol="modbus", profile=name)
                try:
                    await self._write(ref, profile, action, registers)
                except (NoAnswer, Refused) as exc:
                    log.warning("clock write to device %s failed: %s", unit, exc)

    async def _broadcast(self, action: WriteAction, registers: list[int]) -> None:
        """Write to device 0 (every meter on the bus), expecting no reply."""
        what = f"broadcast {action.name} (FC{action.function_code:02d} 0x{action.address:04X})"
        async with self._bus() as client:
            if action.function_code == 6:
                await self._request(
                    client,
                    lambda c: c.write_register(
                        action.address, registers[0], device_id=0, no_response_expected=True
                    ),
                    what,
                )
            else:
                await self._request(
                    client,
                    lambda c: c.write_registers(
                        action.address, registers, device_id=0, no_response_expected=True
                    ),
                    what,
                )
            # nobody answers a broadcast: give the meters time to carry it out before the
            # next request goes on the bus (Modbus "turnaround delay")
            await asyncio.sleep(BROADCAST_TURNAROUND)
