"""Cjt188Driver against simulated CJ/T 188 water meters over real TCP on 127.0.0.1
(VirtualBus): real codec and GatewayLink on one side, VirtualCjt188Meter on MeterModel on the
other, nothing mocked in between.  Vectors come from protocols.md 5.2."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest

from app.devices import cjt188
from app.devices.cjt188 import FrameDecoder, ValveState
from app.devices.drivers.base import MeterRef, NoAnswer, Refused
from app.devices.drivers.cjt188 import Cjt188Driver
from app.devices.drivers.dlt645 import Dlt645Driver
from app.devices.transport import GatewayLink
from app.sim.bus import Framer, VirtualBus, VirtualDevice
from app.sim.cjt188 import VirtualCjt188Meter, framer
from app.sim.dlt645 import VirtualDlt645Meter
from app.sim.meters import MeterModel
from app.sim.site import _serial_framer

START = dt.datetime(2025, 6, 1, 12, 34, 56)
FAR = START + dt.timedelta(days=3650)
TIMEOUT = 0.3
SILENCE = 0.15  # timeout where the test expects silence
DELAY = 0.005
TIME_SCALE = 0.25  # the bus runs 4x faster than real time
W1 = "20250601000001"
W2 = "20250601000002"


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


def water(clock: Clock, address: str = W1, **kw: Any) -> MeterModel:
    params: dict[str, Any] = {
        "kind": "water",
        "total": 123456,
        "load_w": 1000,
        "open_hour": 0,
        "close_hour": 24,
    }
    params.update(kw)
    m = MeterModel(address=address, clock=clock, **params)
    m.advance()
    return m


def ref(address: str = W1, **options: Any) -> MeterRef:
    return MeterRef(address=address, protocol="cjt188", kind="water", options=dict(options))


Scenario = Callable[[VirtualBus, GatewayLink[Any]], Awaitable[Any]]


def run(
    devices: Sequence[VirtualDevice],
    scenario: Scenario,
    *,
    bus_framer: Framer = framer,
    **bus_kw: Any,
) -> Any:
    """Start a bus with ``devices`` on a free port, run ``scenario(bus, link)``, tear down."""

    async def main() -> Any:
        bus = VirtualBus(
            framer=bus_framer, devices=devices, baud=9600, time_scale=TIME_SCALE, **bus_kw
        )
        port = await bus.start(port=0)
        link: GatewayLink[Any] = GatewayLink("127.0.0.1", port)
        try:
            return await scenario(bus, link)
        finally:
            await link.close()
            await bus.stop()

    return asyncio.run(main())


# -- framer ----------------------------------------------------------------

READ_901F = h("68 10 01 00 00 01 06 25 20 01 03 90 1F 00 78 16")  # protocols.md 5.2


def test_framer_takes_requests_with_their_preamble() -> None:
    assert framer(b"\xfe\xfe" + READ_901F) == 2 + len(READ_901F)
    blog = h("FE FE FE FE 68 10 44 33 22 11 00 33 78 01 03 1F 90 00 80 16")
    assert framer(blog) == len(blog)
    assert framer(READ_901F + READ_901F) == len(READ_901F)


def test_framer_waits_for_more_and_rejects_garbage() -> None:
    for cut in range(len(READ_901F)):
        assert framer(b"\xfe\xfe" + READ_901F[:cut]) == 0, cut
    assert framer(b"\x00" + READ_901F) == -1
    assert framer(b"\xfe" * 5 + READ_901F) == -1
    assert framer(READ_901F[:10] + b"\x02" + READ_901F[11:]) == -1  # L < 3
    assert framer(READ_901F[:-2] + b"\x00\x16") == -1  # bad checksum


def test_the_simulated_meter_answers_the_protocols_md_vectors() -> None:
    clock = Clock()
    m = water(clock, total=123_450)  # 123.45 m3
    meter = VirtualCjt188Meter(m, W1)
    meter.settlement_litres = 100_000  # 100.00 m3
    reply = meter.handle(b"\xfe\xfe" + READ_901F)
    assert reply == h(
        "68 10 01 00 00 01 06 25 20 81 16 90 1F 00 45 23 01 00 2C 00 00 01 00 2C"
        " 56 34 12 01 06 25 20 00 00 B5 16"
    )  # 123.45 m3, 100.00 m3, ST 0000
    close = h("FE FE 68 10 01 00 00 01 06 25 20 04 04 A0 17 00 99 1D 16")
    assert meter.handle(close) == h("68 10 01 00 00 01 06 25 20 84 05 A0 17 00 01 00 06 16")
    assert not m.supply_on


# -- reading ---------------------------------------------------------------


def test_read_gives_litres_valve_and_meter_time_in_the_standard_di_order() -> None:
    clock = Clock()
    m1, m2 = water(clock), water(clock, W2, total=50, load_w=600)
    devices = [
        VirtualCjt188Meter(m1, W1, response_delay=DELAY),
        VirtualCjt188Meter(m2, W2, response_delay=DELAY, unit="L", reply_preamble=3),
    ]
    clock.advance(minutes=30)  # 1000 L/h: 500 L

    async def scenario(bus: VirtualBus, link: GatewayLink[Any]) -> None:
        requests: list[bytes] = []
        bus.on_frame = lambda request, reply: requests.append(request)
        driver = Cjt188Driver(link, timeout=TIMEOUT)
        reading = await driver.read(ref())
        assert m1.total == 123456 + 500
        assert reading.total == 123950  # 123.95 m3: the register shows 0.01 m3 = 10 L
        assert reading.supply == "on" and reading.meter_time == clock()
        assert reading.extra == {"settlement_litres": 123450, "valve": "open", "battery_low": False}
        assert requests[0][:2] == b"\xfe\xfe"
        assert FrameDecoder().feed(requests[0])[0].data[:2] == b"\x90\x1f"
        litres = await driver.read(ref(W2))  # a meter counting in litres: exact
        assert litres.total == m2.total == 50 + 300
        assert link.stats.bad_frames == 0 and link.stats.timeouts == 0

    run(devices, scenario)


def test_a_swapped_di_meter_needs_the_swapped_option() -> None:
    clock = Clock()
    m = water(clock)

    async def scenario(bus: VirtualBus, link: GatewayLink[Any]) -> None:
        requests: list[bytes] = []
        bus.on_frame = lambda request, reply: requests.append(request)
        driver = Cjt188Driver(link, timeout=TIMEOUT)
        reading = await driver.read(ref(di_order="swapped"))
        assert reading.total == m.total // 10 * 10 and reading.supply == "on"
        assert FrameDecoder().feed(requests[0])[0].data[:2] == b"\x1f\x90"
        with pytest.raises(Refused):
            await driver.read(ref())  # 90 1F is an unknown DI to this meter
        await driver.set_supply(ref(di_order="swapped"), False, valid_until=FAR)
        assert not m.supply_on
        assert await driver.read_supply(ref(di_order="swapped")) == "off"
        with pytest.raises(ValueError):
            await driver.read(ref(di_order="backwards"))

    run([VirtualCjt188Meter(m, W1, response_delay=DELAY, di_order="swapped")], scenario)


# -- valve -------------------------------------------------------------------


def test_closing_the_valve_stops_the_flow_and_opening_restores_it() -> None:
    clock = Clock()
    m = water(clock)

    async def scenario(bus: VirtualBus, link: GatewayLink[Any]) -> None:
        driver = Cjt188Driver(link, timeout=TIMEOUT)
        meter = ref()
        await driver.set_supply(meter, False, valid_until=FAR)
        assert not m.supply_on
        assert await driver.read_supply(meter) == "off"
        before = (await driver.read(meter)).total
        clock.advance(hours=1)
        closed = await driver.read(meter)
        assert closed.total == before and closed.supply == "off"
        assert closed.extra["valve"] == ValveState.CLOSED.name.lower()
        await driver.set_supply(meter, True, valid_until=FAR)
        assert m.supply_on and await driver.read_supply(meter) == "on"
        clock.advance(hours=1)
        assert (await driver.read(meter)).total == before + 1000

    run([VirtualCjt188Meter(m, W1, response_delay=DELAY)], scenario)


def test_keep_power_and_purchases_are_refused_and_broadcast_time_sends_nothing() -> None:
    clock = Clock()
    m = water(clock)

    async def scenario(bus: VirtualBus, link: GatewayLink[Any]) -> None:
        driver = Cjt188Driver(link, timeout=TIMEOUT)
        with pytest.raises(Refused, match="not supported by water meters"):
            await driver.keep_power(ref(), True, valid_until=FAR)
        with pytest.raises(Refused, match="not supported by water meters"):
            await driver.push_purchase(ref(), 1000, 1)
        await driver.broadcast_time(START)
        assert bus.stats.requests == 0 and link.stats.requests == 0

    run([VirtualCjt188Meter(m, W1, response_delay=DELAY)], scenario)


def test_a_meter_reporting_an_abnormal_valve_is_not_reported_as_on_or_off() -> None:
    clock = Clock()
    m = water(clock)
    device = VirtualCjt188Meter(m, W1, response_delay=DELAY)
    device.status = lambda: bytes([ValveState.ABNORMAL | 0b100, 0])  # type: ignore[method-assign]

    async def scenario(bus: VirtualBus, link: GatewayLink[Any]) -> None:
        driver = Cjt188Driver(link, timeout=TIMEOUT)
        reading = await driver.read(ref())
        assert reading.supply is None
        assert reading.extra["valve"] == "abnormal" and reading.extra["battery_low"] is True
        with pytest.raises(Refused, match="abnormal"):
            await driver.read_supply(ref())

    run([device], scenario)


# -- silence and noise -------------------------------------------------------


def test_an_absent_or_offline_water_meter_gives_no_answer() -> None:
    clock = Clock()
    m = water(clock)

    async def scenario(bus: VirtualBus, link: GatewayLink[Any]) -> None:
        driver = Cjt188Driver(link, timeout=SILENCE, retries=1)
        with pytest.raises(NoAnswer):
            await driver.read(ref(W2))
        assert link.stats.timeouts == 2
        m.offline = True
        with pytest.raises(NoAnswer):
            await driver.set_supply(ref(), False, valid_until=FAR)
        assert m.supply_on and link.stats.timeouts == 4

    run([VirtualCjt188Meter(m, W1, response_delay=DELAY)], scenario)


def test_a_garbling_bus_gives_no_answer_and_counts_bad_frames() -> None:
    clock = Clock()
    m = water(clock)

    async def scenario(bus: VirtualBus, link: GatewayLink[Any]) -> None:
        driver = Cjt188Driver(link, timeout=SILENCE, retries=1)
        with pytest.raises(NoAnswer):
            await driver.read(ref())
        assert link.stats.bad_frames > 0 and link.stats.replies == 0

    run([VirtualCjt188Meter(m, W1, response_delay=DELAY)], scenario, noise_rate=1.0)


# -- a shared serial bus ---------------------------------------------------


def test_water_and_electricity_meters_share_one_serial_bus() -> None:
    """DL/T 645 and CJ/T 188 meters behind one gateway (app.sim.site's serial framer)."""
    clock = Clock()
    e = MeterModel(address="000000000001", total=1000, clock=clock)
    e.advance()
    w1, w2 = water(clock), water(clock, W2, total=0, load_w=2000)
    devices: list[VirtualDevice] = [
        VirtualDlt645Meter(e, "000000000001", response_delay=DELAY),
        VirtualCjt188Meter(w1, W1, response_delay=DELAY),
        VirtualCjt188Meter(w2, W2, response_delay=DELAY, di_order="swapped"),
    ]
    clock.advance(hours=1)

    async def scenario(bus: VirtualBus, link: GatewayLink[Any]) -> None:
        electricity = Dlt645Driver(link, timeout=TIMEOUT)
        water_driver = Cjt188Driver(link, timeout=TIMEOUT)
        eref = MeterRef(address="000000000001", protocol="dlt645-2007")
        await electricity.broadcast_time(clock())
        assert (await electricity.read(eref)).total == e.total == 1200
        assert (await water_driver.read(ref())).total == w1.total // 10 * 10
        assert (await water_driver.read(ref(W2, di_order="swapped"))).total == w2.total == 2000
        await water_driver.set_supply(ref(), False, valid_until=FAR)
        await electricity.set_supply(eref, False, valid_until=FAR)
        assert not w1.supply_on and not e.supply_on and w2.supply_on
        assert bus.stats.garbage_bytes == 0
        assert link.stats.timeouts == 0 and link.stats.bad_frames == 0

    run(devices, scenario, bus_framer=_serial_framer)


class Impostor:
    """A misconfigured device answering every request with the address of another meter."""

    response_delay = DELAY

    def handle(self, request: bytes) -> bytes | None:
        frame = FrameDecoder().feed(request)[0]
        return cjt188.encode_frame(0x10, W2, 0x80 | frame.function, frame.data[:3])


def test_replies_from_another_water_meter_are_never_taken() -> None:
    async def scenario(bus: VirtualBus, link: GatewayLink[Any]) -> None:
        driver = Cjt188Driver(link, timeout=SILENCE, retries=0)
        with pytest.raises(NoAnswer):
            await driver.set_supply(ref(), True, valid_until=FAR)
        assert link.stats.foreign_frames == 1 and link.stats.replies == 0

    run([Impostor()], scenario)
