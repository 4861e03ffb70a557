"""Dlt645Driver against simulated DL/T 645 meters over real TCP on 127.0.0.1 (VirtualBus):
real codec and GatewayLink on one side, VirtualDlt645Meter on MeterModel on the other, nothing
mocked in between.  Request vectors come from protocols.md 1.9 and 2."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest

from app.devices import dlt645
from app.devices.dlt645 import DI, ErrorFlags, FrameDecoder, Function, RelayCommand
from app.devices.drivers.base import MeterRef, NoAnswer, Refused
from app.devices.drivers.dlt645 import SIM_PURCHASE_DI, Dlt645Driver, Dlt6451997Driver
from app.devices.framing import to_bcd
from app.devices.transport import GatewayLink
from app.sim import dlt645 as sim
from app.sim.bus import VirtualBus, VirtualDevice
from app.sim.dlt645 import VirtualDlt645Meter, framer
from app.sim.meters import MeterModel

START = dt.datetime(2025, 6, 1, 10, 0, 0)  # 10:00-19:00 is T2 (peak) in DEFAULT_SEGMENTS
FAR = START + dt.timedelta(days=3650)
TIMEOUT = 0.3
SILENCE = 0.15  # timeout where the test expects silence
DELAY = 0.005
TIME_SCALE = 0.25  # the bus runs 4x faster than real time
A1 = "000000000001"
A2 = "000000000002"


def h(text: str) -> bytes:
    return bytes.fromhex(text)


class Clock:
    """A captured local time the test advances by hand (the list holds "now")."""

    def __init__(self, start: dt.datetime = START) -> None:
        self.now = [start]

    def __call__(self) -> dt.datetime:
        return self.now[0]

    def advance(self, **kw: float) -> None:
        self.now[0] += dt.timedelta(**kw)


def model(clock: Clock, address: str = A1, **kw: Any) -> MeterModel:
    params: dict[str, Any] = {"total": 123456, "rates": [1000, 2000, 3000, 4000], "load_w": 2000}
    params.update(kw)
    m = MeterModel(address=address, clock=clock, **params)
    m.advance()
    return m


def ref(address: str = A1, protocol: str = "dlt645-2007", **options: Any) -> MeterRef:
    return MeterRef(address=address, protocol=protocol, options=dict(options))


Scenario = Callable[[VirtualBus, GatewayLink[Any]], Awaitable[Any]]


def run(devices: Sequence[VirtualDevice], scenario: Scenario, **bus_kw: Any) -> Any:
    """Start a bus with ``devices`` on a free port, run ``scenario(bus, link)``, tear down."""

    async def main() -> Any:
        bus = VirtualBus(framer=framer, devices=devices, baud=9600, time_scale=TIME_SCALE, **bus_kw)
        port = await bus.start(port=0)
        link: GatewayLink[Any] = GatewayLink("127.0.0.1", port)
        try:
            return await scenario(bus, link)
        finally:
            await link.close()
            await bus.stop()

    return asyncio.run(main())


def requested_dis(bus: VirtualBus) -> list[int]:
    """Record the DI of every 0x11 read the bus carries (the list fills as requests pass)."""
    seen: list[int] = []

    def observe(request: bytes, reply: bytes | None) -> None:
        frame = FrameDecoder().feed(request)[0]
        if frame.function == Function.READ:
            seen.append(int.from_bytes(frame.data[:4], "little"))

    bus.on_frame = observe
    return seen


# -- framer ----------------------------------------------------------------

READ_TOTAL = h("68 12 90 78 56 34 12 68 11 04 33 33 33 33 67 16")  # protocols.md 1.9


def test_framer_takes_a_request_with_four_fe_bytes_whole() -> None:
    assert framer(b"\xfe" * 4 + READ_TOTAL) == 4 + len(READ_TOTAL)
    assert framer(READ_TOTAL + READ_TOTAL) == len(READ_TOTAL)


def test_framer_waits_for_an_incomplete_frame() -> None:
    assert framer(b"") == 0
    assert framer(b"\xfe\xfe") == 0
    for cut in range(1, len(READ_TOTAL)):
        assert framer(b"\xfe\xfe" + READ_TOTAL[:cut]) == 0, cut


def test_framer_rejects_what_cannot_start_a_frame() -> None:
    assert framer(b"\x00" + READ_TOTAL) == -1
    assert framer(b"\xfe" * 5 + READ_TOTAL) == -1  # a fifth FE is dropped as garbage
    assert framer(READ_TOTAL[:7] + b"\x00" + READ_TOTAL[8:]) == -1  # no second 68
    bad_cs = READ_TOTAL[:-2] + bytes([READ_TOTAL[-2] ^ 1]) + READ_TOTAL[-1:]
    assert framer(bad_cs) == -1


# -- reading ---------------------------------------------------------------


def test_read_returns_the_models_registers_power_voltage_current_and_status() -> None:
    clock = Clock()
    m1 = model(clock)
    m2 = model(clock, A2, total=5, rates=[0, 5, 0, 0], load_w=1100)
    devices = [
        VirtualDlt645Meter(m1, A1, response_delay=DELAY),
        VirtualDlt645Meter(m2, A2, response_delay=DELAY, reply_preamble=4),
    ]
    clock.advance(hours=10)  # 2 kW from 10:00 to 20:00: 18.00 kWh at T2, 2.00 kWh at T1

    async def scenario(bus: VirtualBus, link: GatewayLink[Any]) -> None:
        driver = Dlt645Driver(link, timeout=TIMEOUT)
        meter = ref()
        reading = await driver.read(meter)
        assert (reading.total, reading.t1, reading.t2, reading.t3, reading.t4) == (
            123456 + 2000,
            1000 + 200,
            2000 + 1800,
            3000,
            4000,
        )
        assert (reading.total, [reading.t1, reading.t2, reading.t3, reading.t4]) == (
            m1.total,
            m1.rates,
        )
        assert reading.power_w == 2000
        assert reading.voltage_dv == 2200
        assert reading.current_ma == 2000 * 10_000 // 2200
        assert reading.supply == "on" and reading.keep_power is False
        assert reading.balance_fen is None and reading.purchase_count is None
        assert meter.capabilities == {"block_read": True}
        # a meter that sends FE FE FE FE before its replies, on the same link
        other = await driver.read(ref(A2))
        assert (other.total, other.t1, other.t2, other.power_w) == (5 + 1100, 110, 5 + 990, 1100)
        assert link.stats.bad_frames == 0 and link.stats.timeouts == 0

    run(devices, scenario)


def test_refused_block_falls_back_to_items_and_is_remembered() -> None:
    clock = Clock()
    m = model(clock)
    clock.advance(hours=1)

    async def scenario(bus: VirtualBus, link: GatewayLink[Any]) -> None:
        seen = requested_dis(bus)
        driver = Dlt645Driver(link, timeout=TIMEOUT)
        meter = ref()
        reading = await driver.read(meter)
        assert (reading.total, reading.t1, reading.t2, reading.t3, reading.t4) == (
            m.total,
            *m.rates,
        )
        assert reading.power_w == 2000 and reading.supply == "on"
        assert seen[:6] == [
            DI.ENERGY_BLOCK,
            DI.ENERGY_TOTAL,
            DI.ENERGY_T1,
            DI.ENERGY_T2,
            DI.ENERGY_T3,
            DI.ENERGY_T4,
        ]
        assert meter.capabilities["block_read"] is False
        seen.clear()
        clock.advance(minutes=30)
        again = await driver.read(meter)
        assert DI.ENERGY_BLOCK not in seen and seen[0] == DI.ENERGY_TOTAL
        assert again.total == m.total == reading.total + 100

    run([VirtualDlt645Meter(m, A1, response_delay=DELAY, supports_block=False)], scenario)


class IgnoresBlock:
    """A meter that stays silent for the energy block but answers everything else."""

    def __init__(self, inner: VirtualDlt645Meter) -> None:
        self.inner = inner
        self.response_delay = inner.response_delay

    def handle(self, request: bytes) -> bytes | None:
        frame = FrameDecoder().feed(request)[0]
        if frame.function == Function.READ and frame.data[:4] == (DI.ENERGY_BLOCK).to_bytes(
            4, "little"
        ):
            return None
        return self.inner.handle(request)


def test_a_silent_block_is_given_up_only_after_several_polls() -> None:
    clock = Clock()
    m = model(clock)

    async def scenario(bus: VirtualBus, link: GatewayLink[Any]) -> None:
        seen = requested_dis(bus)
        driver = Dlt645Driver(link, timeout=SILENCE, retries=0)
        meter = ref()
        for poll in range(1, 4):
            reading = await driver.read(meter)
            assert reading.total == m.total
            assert seen.count(DI.ENERGY_BLOCK) == poll
        assert meter.capabilities["block_read"] is False
        assert "silent" not in meter.capabilities
        await driver.read(meter)
        assert seen.count(DI.ENERGY_BLOCK) == 3

    run([IgnoresBlock(VirtualDlt645Meter(m, A1, response_delay=DELAY))], scenario)


class SlowBlock:
    """A meter that answers the energy block only after the driver has given up on it."""

    def __init__(self, inner: VirtualDlt645Meter, slow: float) -> None:
        self.inner = inner
        self.slow = slow
        self.response_delay = inner.response_delay

    def handle(self, request: bytes) -> bytes | None:
        frame = FrameDecoder().feed(request)[0]
        block = frame.data[:4] == (DI.ENERGY_BLOCK).to_bytes(4, "little")
        self.response_delay = self.slow if block else self.inner.response_delay
        return self.inner.handle(request)


def test_a_late_reply_to_an_earlier_read_is_not_taken_for_the_next_one() -> None:
    clock = Clock()
    m = model(clock)
    slow = (TIMEOUT + 0.1) / TIME_SCALE  # the block reply comes 0.1 s after the timeout

    async def scenario(bus: VirtualBus, link: GatewayLink[Any]) -> None:
        driver = Dlt645Driver(link, timeout=TIMEOUT, retries=0)
        meter = ref()
        reading = await driver.read(meter)
        # the late block reply arrived while the driver waited for the total item
        assert link.stats.foreign_frames == 1 and link.stats.timeouts == 1
        assert (reading.total, reading.t1, reading.t4) == (m.total, m.rates[0], m.rates[3])
        assert meter.capabilities["silent"] == {"block": 1}

    run([SlowBlock(VirtualDlt645Meter(m, A1, response_delay=DELAY), slow)], scenario)


def test_a_refused_optional_item_is_remembered_and_never_fails_the_read() -> None:
    clock = Clock()
    m = model(clock)  # not in meter mode: the meter has no balance registers

    async def scenario(bus: VirtualBus, link: GatewayLink[Any]) -> None:
        seen = requested_dis(bus)
        driver = Dlt645Driver(link, timeout=TIMEOUT)
        meter = ref(meter_mode=True)
        reading = await driver.read(meter)
        assert reading.total == m.total
        assert reading.balance_fen is None and reading.purchase_count is None
        assert DI.REMAINING_AMOUNT in seen and DI.PURCHASE_COUNT in seen
        assert meter.capabilities["unsupported"] == ["balance_fen", "purchase_count"]
        seen.clear()
        await driver.read(meter)
        assert DI.REMAINING_AMOUNT not in seen and DI.PURCHASE_COUNT not in seen
        assert seen == [
            DI.ENERGY_BLOCK,
            DI.ACTIVE_POWER_TOTAL,
            DI.VOLTAGE_A,
            DI.CURRENT_A,
            DI.RUN_STATUS_3,
        ]

    run([VirtualDlt645Meter(m, A1, response_delay=DELAY)], scenario)


# -- relay -----------------------------------------------------------------


def test_trip_stops_consumption_and_close_restores_it() -> None:
    clock = Clock()
    m = model(clock)
    device = VirtualDlt645Meter(m, A1, response_delay=DELAY)

    async def scenario(bus: VirtualBus, link: GatewayLink[Any]) -> None:
        driver = Dlt645Driver(link, timeout=TIMEOUT)
        meter = ref()
        await driver.set_supply(meter, False, valid_until=FAR)
        assert not m.supply_on
        assert await driver.read_supply(meter) == "off"
        tripped = await driver.read(meter)
        assert tripped.supply == "off" and tripped.power_w == 0 and tripped.current_ma == 0
        status = dlt645.decode_run_status_3(tripped.extra["run_status_3"].to_bytes(2, "little"))
        assert status.relay_open and status.relay_commanded_trip
        before = m.total
        clock.advance(hours=1)
        assert (await driver.read(meter)).total == before == m.total
        await driver.set_supply(meter, True, valid_until=FAR)
        assert m.supply_on and await driver.read_supply(meter) == "on"
        clock.advance(hours=1)
        assert (await driver.read(meter)).total == before + 200 == m.total

    run([device], scenario)


def test_relay_commands_with_an_expired_time_or_a_wrong_password_are_refused() -> None:
    clock = Clock()
    m = model(clock)

    async def scenario(bus: VirtualBus, link: GatewayLink[Any]) -> None:
        driver = Dlt645Driver(link, timeout=TIMEOUT)
        with pytest.raises(Refused, match="ERR 0x01"):
            await driver.set_supply(ref(), False, valid_until=START - dt.timedelta(minutes=1))
        with pytest.raises(Refused, match="ERR 0x04"):
            await driver.set_supply(ref(password="123456"), False, valid_until=FAR)
        assert m.supply_on

    run([VirtualDlt645Meter(m, A1, response_delay=DELAY)], scenario)


class RefusesDirectClose:
    """An older meter: answers relay control N1 1C (direct close) with ERR 'other'."""

    def __init__(self, inner: VirtualDlt645Meter) -> None:
        self.inner = inner
        self.response_delay = inner.response_delay
        self.n1: list[int] = []

    def handle(self, request: bytes) -> bytes | None:
        frame = FrameDecoder().feed(request)[0]
        if frame.function == Function.RELAY_CONTROL:
            self.n1.append(frame.data[8])
            if frame.data[8] == RelayCommand.DIRECT_CLOSE:
                return dlt645.encode_frame(frame.address, 0xDC, bytes([ErrorFlags.OTHER]))
        return self.inner.handle(request)


def test_a_meter_refusing_direct_close_gets_close_allowed_from_then_on() -> None:
    clock = Clock()
    m = model(clock, supply_on=False)
    device = RefusesDirectClose(VirtualDlt645Meter(m, A1, response_delay=DELAY))

    async def scenario(bus: VirtualBus, link: GatewayLink[Any]) -> None:
        driver = Dlt645Driver(link, timeout=TIMEOUT)
        meter = ref()
        await driver.set_supply(meter, True, valid_until=FAR)
        assert m.supply_on and meter.capabilities["direct_close"] is False
        await driver.set_supply(meter, False, valid_until=FAR)
        await driver.set_supply(meter, True, valid_until=FAR)
        assert device.n1 == [0x1C, 0x1B, 0x1A, 0x1B]
        with pytest.raises(Refused):
            await driver.set_supply(ref(close_command="direct"), True, valid_until=FAR)

    run([device], scenario)


def test_keep_power_is_reported_and_prevents_a_trip_until_released() -> None:
    clock = Clock()
    m = model(clock)

    async def scenario(bus: VirtualBus, link: GatewayLink[Any]) -> None:
        driver = Dlt645Driver(link, timeout=TIMEOUT)
        meter = ref()
        await driver.keep_power(meter, True, valid_until=FAR)
        assert m.keep_power_active()
        assert (await driver.read(meter)).keep_power is True
        with pytest.raises(Refused):
            await driver.set_supply(meter, False, valid_until=FAR)
        assert m.supply_on
        await driver.keep_power(meter, False, valid_until=FAR)
        assert not m.keep_power_active()
        assert (await driver.read(meter)).keep_power is False
        await driver.set_supply(meter, False, valid_until=FAR)
        assert not m.supply_on

    run([VirtualDlt645Meter(m, A1, response_delay=DELAY)], scenario)


# -- meter-held balance ----------------------------------------------------


def test_meter_mode_purchase_takes_the_next_count_and_refuses_a_replay() -> None:
    clock = Clock()
    m = model(clock, meter_mode=True, balance_fen=500, price=7000)
    seen_writes: list[bytes] = []

    async def scenario(bus: VirtualBus, link: GatewayLink[Any]) -> None:
        def observe(request: bytes, reply: bytes | None) -> None:
            frame = FrameDecoder().feed(request)[0]
            if frame.function == Function.WRITE:
                seen_writes.append(frame.data)

        bus.on_frame = observe
        driver = Dlt645Driver(link, timeout=TIMEOUT)
        meter = ref(meter_mode=True)
        clock.advance(hours=1)  # 2.00 kWh at 0.70 yuan: 1.40 yuan
        reading = await driver.read(meter)
        assert (
            (reading.balance_fen, reading.purchase_count)
            == (360, 0)
            == (m.balance_fen, m.purchase_count)
        )
        await driver.push_purchase(meter, 10000, 1)
        assert (m.balance_fen, m.purchase_count) == (10360, 1)
        assert seen_writes[0][:4] == SIM_PURCHASE_DI.to_bytes(4, "little")
        assert seen_writes[0][12:] == to_bcd(10000, 4) + to_bcd(1, 2)
        with pytest.raises(Refused, match="purchase count is 1"):
            await driver.push_purchase(meter, 10000, 1)  # replay
        with pytest.raises(Refused):
            await driver.push_purchase(meter, 10000, 3)  # skips a count
        assert (m.balance_fen, m.purchase_count) == (10360, 1)
        reading = await driver.read(meter)
        assert (reading.balance_fen, reading.purchase_count) == (10360, 1)

    run([VirtualDlt645Meter(m, A1, response_delay=DELAY)], scenario)


def test_meter_mode_at_zero_trips_refuses_close_and_reports_the_overdraft() -> None:
    clock = Clock()
    m = model(clock, meter_mode=True, balance_fen=100, price=7000)

    async def scenario(bus: VirtualBus, link: GatewayLink[Any]) -> None:
        driver = Dlt645Driver(link, timeout=TIMEOUT)
        meter = ref(meter_mode=True)
        clock.advance(hours=2)
        reading = await driver.read(meter)
        assert not m.supply_on and reading.supply == "off"
        assert m.balance_fen <= 0 and reading.balance_fen == m.balance_fen
        with pytest.raises(Refused):
            await driver.set_supply(meter, True, valid_until=FAR)
        assert not m.supply_on and "direct_close" not in meter.capabilities
        await driver.push_purchase(meter, 5000, 1)
        assert m.supply_on
        assert (await driver.read(meter)).balance_fen == m.balance_fen > 0

    run([VirtualDlt645Meter(m, A1, response_delay=DELAY)], scenario)


class LosesFirstWriteAck:
    """Carries out every request but loses the reply to the first write."""

    def __init__(self, inner: VirtualDlt645Meter) -> None:
        self.inner = inner
        self.response_delay = inner.response_delay
        self.lost = False

    def handle(self, request: bytes) -> bytes | None:
        reply = self.inner.handle(request)
        frame = FrameDecoder().feed(request)[0]
        if frame.function == Function.WRITE and not self.lost:
            self.lost = True
            return None
        return reply


def test_a_purchase_whose_ack_was_lost_is_not_refused_on_the_retry() -> None:
    clock = Clock()
    m = model(clock, meter_mode=True, balance_fen=1000, purchase_count=4)

    async def scenario(bus: VirtualBus, link: GatewayLink[Any]) -> None:
        driver = Dlt645Driver(link, timeout=SILENCE, retries=1)
        await driver.push_purchase(ref(meter_mode=True), 2000, 5)
        assert (m.balance_fen, m.purchase_count) == (3000, 5)
        assert link.stats.timeouts == 1

    run([LosesFirstWriteAck(VirtualDlt645Meter(m, A1, response_delay=DELAY))], scenario)


# -- silence, strangers, noise ---------------------------------------------


def test_an_absent_or_offline_meter_gives_no_answer() -> None:
    clock = Clock()
    m = model(clock)

    async def scenario(bus: VirtualBus, link: GatewayLink[Any]) -> None:
        driver = Dlt645Driver(link, timeout=SILENCE, retries=1)
        absent = ref("000000000077")
        with pytest.raises(NoAnswer):
            await driver.read(absent)
        assert link.stats.timeouts == 4  # block twice, then the total item twice
        assert "block_read" not in absent.capabilities  # nothing learned from silence
        meter = ref()
        await driver.read(meter)  # learns that the meter answers the block
        m.offline = True
        with pytest.raises(NoAnswer):
            await driver.read(meter)
        assert link.stats.timeouts == 6  # a known block reader is not asked item by item
        assert meter.capabilities == {"block_read": True}

    run([VirtualDlt645Meter(m, A1, response_delay=DELAY)], scenario)


class Impostor:
    """A misconfigured device answering every read with the address of another meter."""

    response_delay = DELAY

    def handle(self, request: bytes) -> bytes | None:
        frame = FrameDecoder().feed(request)[0]
        if frame.function != Function.READ:
            return None
        return dlt645.encode_frame("000000000099", 0x91, frame.data[:4] + bytes(20))


def test_a_reply_from_another_address_is_never_taken() -> None:
    async def scenario(bus: VirtualBus, link: GatewayLink[Any]) -> None:
        driver = Dlt645Driver(link, timeout=SILENCE, retries=0)
        with pytest.raises(NoAnswer):
            await driver.read(ref())
        assert link.stats.foreign_frames == 2 and link.stats.replies == 0

    run([Impostor()], scenario)


def test_a_garbling_bus_gives_no_answer_and_counts_bad_frames() -> None:
    clock = Clock()
    m = model(clock)

    async def scenario(bus: VirtualBus, link: GatewayLink[Any]) -> None:
        driver = Dlt645Driver(link, timeout=SILENCE, retries=1)
        with pytest.raises(NoAnswer):
            await driver.read(ref())
        assert link.stats.bad_frames > 0 and link.stats.replies == 0
        assert bus.stats.replies == 4  # every request was answered - and garbled

    run([VirtualDlt645Meter(m, A1, response_delay=DELAY)], scenario, noise_rate=1.0)


# -- DL/T 645-1997 -----------------------------------------------------------


def test_a_1997_meter_is_read_for_its_total_and_ignores_2007_requests() -> None:
    clock = Clock()
    m = model(clock)
    clock.advance(hours=1)

    async def scenario(bus: VirtualBus, link: GatewayLink[Any]) -> None:
        reading = await Dlt6451997Driver(link, timeout=TIMEOUT).read(ref(protocol="dlt645-1997"))
        assert reading.total == m.total == 123456 + 200
        assert reading.t1 is None and reading.supply is None
        # the version follows MeterRef.protocol on the 2007 driver
        driver = Dlt645Driver(link, timeout=SILENCE, retries=0)
        assert (await driver.read(ref(protocol="dlt645-1997"))).total == m.total
        with pytest.raises(NoAnswer):
            await driver.read(ref())
        with pytest.raises(Refused):
            await driver.set_supply(ref(protocol="dlt645-1997"), False, valid_until=FAR)
        assert m.supply_on

    run([VirtualDlt645Meter(m, A1, response_delay=DELAY, version="1997")], scenario)


def test_1997_vector_read_of_9010_is_answered_with_the_total() -> None:
    clock = Clock()
    m = model(clock, address="000000001111", total=4321)
    meter = VirtualDlt645Meter(m, "000000001111", version="1997")
    reply = meter.handle(h("68 11 11 00 00 00 00 68 01 02 43 C3 FB 16"))  # protocols.md 2
    assert reply is not None
    frame = FrameDecoder().feed(reply)[0]
    parsed = dlt645.parse_reply_1997(frame)
    assert isinstance(parsed, dlt645.ReadReply)
    assert (parsed.di, dlt645.decode_int(parsed.di, parsed.value)) == (0x9010, 4321)


# -- broadcast time --------------------------------------------------------


def test_broadcast_time_sets_every_meter_clock_without_disturbing_the_bus() -> None:
    clock = Clock()
    m1, m2 = model(clock), model(clock, A2)
    d1 = VirtualDlt645Meter(m1, A1, response_delay=DELAY)
    d2 = VirtualDlt645Meter(m2, A2, response_delay=DELAY)

    async def scenario(bus: VirtualBus, link: GatewayLink[Any]) -> None:
        driver = Dlt645Driver(link, timeout=TIMEOUT)
        when = START + dt.timedelta(minutes=2)
        await driver.broadcast_time(when)
        assert d1.clock_offset == d2.clock_offset == dt.timedelta(minutes=2)
        assert await driver.read_clock(ref(A2)) == when
        assert bus.stats.silent == 1 and link.stats.timeouts == 0
        await driver.broadcast_time(START + dt.timedelta(hours=1))  # beyond +-5 min: ignored
        assert d1.clock_offset == dt.timedelta(minutes=2)
        assert (await driver.read(ref())).total == m1.total
        assert link.stats.timeouts == 0 and link.stats.bad_frames == 0

    run([d1, d2], scenario)


def test_the_simulated_meter_answers_the_protocols_md_request_vectors() -> None:
    clock = Clock()
    address = "123456789012"
    m = model(
        clock, address=address, total=123456, meter_mode=True, balance_fen=8850, purchase_count=12
    )
    meter = VirtualDlt645Meter(m, address)
    expected = {
        "68 12 90 78 56 34 12 68 11 04 33 33 33 33 67 16": 123456,  # 00000000
        "68 12 90 78 56 34 12 68 11 04 33 35 C3 33 F9 16": 8850,  # 00900200
        "68 12 90 78 56 34 12 68 11 04 34 35 66 36 A0 16": 12,  # 03330201
        "68 12 90 78 56 34 12 68 11 04 33 34 34 35 6B 16": 2200,  # 02010100
    }
    for request, value in expected.items():
        reply = meter.handle(b"\xfe" * 4 + h(request))
        assert reply is not None
        parsed = dlt645.parse_reply(FrameDecoder().feed(reply)[0])
        assert isinstance(parsed, dlt645.ReadReply)
        assert dlt645.decode_int(parsed.di, parsed.value) == value
    trip = "68 12 90 78 56 34 12 68 1C 10 35 33 33 33 33 33 33 33 4D 33 8C 8C 56 64 45 58 3B 16"
    assert meter.handle(h(trip)) == h("68 12 90 78 56 34 12 68 9C 00 22 16")  # ok, 1.9
    assert not m.supply_on
    assert sim.SIM_PURCHASE_DI == SIM_PURCHASE_DI
