"""ModbusDriver against simulated Modbus meters over real TCP on 127.0.0.1 (VirtualBus), with
Modbus RTU frames (serial server) and Modbus TCP (MBAP).  Nothing is mocked between the
driver (pymodbus) and the simulator (our own frames); golden frames come from protocols.md
sections 6.2 and 6.4."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import struct
import textwrap
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from app.devices.drivers.base import MeterReading, MeterRef, NoAnswer, Refused
from app.devices.drivers.modbus import ModbusDriver
from app.devices.profiles import load_profile
from app.sim.bus import VirtualBus
from app.sim.meters import MeterModel
from app.sim.modbus import (
    VirtualModbusMeter,
    crc16_modbus,
    mbap_framer,
    rtu_frame,
    rtu_framer,
)

START = dt.datetime(2025, 6, 2, 12, 0, 0)
FAR = START + dt.timedelta(days=3650)
TIMEOUT = 0.3

# protocols.md 6.2 [CONSTRUCTED, CRC verified] and 6.4 (frames pymodbus 3.16.1 produced)
READ_ENERGY = "01 03 00 00 00 0A C5 CD"
READ_ENERGY_REPLY = "01 03 14 00 01 E2 40 00 00 00 64 00 00 C3 50 00 00 EA 60 00 00 34 2C 3E CA"
FORCE_OPEN = "01 10 00 57 00 02 04 00 01 00 01 27 75"
FORCE_CLOSE = "01 10 00 57 00 02 04 00 01 00 00 E6 B5"
GOLDEN_RTU = [
    READ_ENERGY,
    FORCE_OPEN,
    FORCE_CLOSE,
    "01 03 00 00 00 02 C4 0B",
    READ_ENERGY_REPLY,
    "01 03 00 0B 00 03 74 09",
    "01 03 06 08 9B 02 00 04 66 C6 B3",
    "01 06 00 57 00 01 F9 DA",
    "01 03 01 00 00 01 85 F6",
    "01 83 02 C0 F1",
]


def h(text: str) -> bytes:
    return bytes.fromhex(text)


class Clock:
    """A captured local time the test advances by hand."""

    def __init__(self, start: dt.datetime = START) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += dt.timedelta(**kw)


def meter_model(clock: Clock, address: str = "1", **kw: Any) -> MeterModel:
    params: dict[str, Any] = {
        "total": 123456,
        "rates": [100, 50000, 60000, 13356],
        "load_w": 2000,
        "open_hour": 0,
        "close_hour": 24,
    }
    params.update(kw)
    model = MeterModel(address=address, clock=clock, **params)
    model.advance()
    return model


def device(
    model: MeterModel, profile: str = "acrel-ddsy1352", unit: int = 1, **kw: Any
) -> VirtualModbusMeter:
    kw.setdefault("response_delay", 0.005)
    return VirtualModbusMeter(model, unit, load_profile(profile, kw.pop("profile_dir", None)), **kw)


def ref(address: str = "1", profile: str = "acrel-ddsy1352") -> MeterRef:
    return MeterRef(address=address, protocol="modbus-rtu-tcp", profile=profile)


class Rig:
    """A VirtualBus on 127.0.0.1 with the given meters and a ModbusDriver pointed at it; every
    request/reply pair on the bus is kept in ``frames``."""

    def __init__(
        self,
        *devices: VirtualModbusMeter,
        framer: str = "rtu",
        timeout: float = TIMEOUT,
        retries: int = 1,
        **bus_kw: Any,
    ) -> None:
        bus_kw.setdefault("time_scale", 0.1)  # scales byte timing and response delays
        self.bus = VirtualBus(
            framer=rtu_framer if framer == "rtu" else mbap_framer, devices=list(devices), **bus_kw
        )
        self.frames: list[tuple[bytes, bytes | None]] = []
        self.bus.on_frame = lambda request, reply: self.frames.append((request, reply))
        self.framer = framer
        self.driver_kw = {"timeout": timeout, "retries": retries}
        self.driver: ModbusDriver

    async def __aenter__(self) -> Rig:
        port = await self.bus.start()
        self.driver = ModbusDriver("127.0.0.1", port, framer=self.framer, **self.driver_kw)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.driver.close()
        await asyncio.sleep(0.02)  # let the bus see the connection close
        await self.bus.stop()

    def requests(self, fc: int | None = None) -> list[bytes]:
        """RTU request frames seen (optionally only one function code)."""
        return [q for q, _ in self.frames if fc is None or q[1] == fc]


def run(rig: Rig, body: Callable[[Rig], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        async with rig:
            return await body(rig)

    return asyncio.run(main())


def assert_matches_model(reading: MeterReading, model: MeterModel) -> None:
    snap = model.snapshot()
    assert (reading.total, reading.t1, reading.t2, reading.t3, reading.t4) == (
        snap["total"],
        snap["t1"],
        snap["t2"],
        snap["t3"],
        snap["t4"],
    )
    assert reading.power_w == snap["power_w"]
    assert reading.voltage_dv == model.voltage_dv
    # the simulator derives I = P / U and holds it in 0.01 A: mA = 10 x floor(P / U x 100)
    assert reading.current_ma == snap["power_w"] * 10_000 // model.voltage_dv // 10 * 10


# ------------------------------------------------------------------------------ frames and CRC
@pytest.mark.parametrize("frame", GOLDEN_RTU)
def test_crc16_modbus_reproduces_protocols_md_frames(frame):
    raw = h(frame)
    assert rtu_frame(raw[:-2]) == raw
    assert crc16_modbus(raw) == 0  # a frame including its own CRC leaves remainder 0


def test_rtu_framer_finds_request_lengths():
    write = h(FORCE_OPEN)
    assert rtu_framer(h(READ_ENERGY)) == 8
    assert rtu_framer(h(READ_ENERGY) + h(READ_ENERGY)) == 8
    assert rtu_framer(h(READ_ENERGY)[:5]) == 0
    assert rtu_framer(h("01 06 00 57 00 01 F9 DA")) == 8
    assert rtu_framer(write) == 13  # 9 + byte count 4
    assert rtu_framer(write[:6]) == 0
    assert rtu_framer(write[:12]) == 0
    assert rtu_framer(b"") == 0
    assert rtu_framer(b"\x01") == 0
    assert rtu_framer(h("F8 03")) == -1  # unit id above 247
    assert rtu_framer(h("01 2B 0E 01 00")) == -1  # function code a meter never gets
    assert rtu_framer(h("01 10 00 57 00 02 05 00 01 00 01 00")) == -1  # byte count != 2 x qty


def test_rtu_frame_failing_crc_is_consumed_whole_and_unanswered():
    clock = Clock()
    meter = device(meter_model(clock))
    bad = h(READ_ENERGY[:-5] + " 00 00")
    assert rtu_framer(bad + h(READ_ENERGY)) == 8  # consumed as one piece, the next one intact
    assert meter.handle(bad) is None
    assert meter.handle(h(READ_ENERGY)) is not None


def test_mbap_framer():
    request = h("00 07 00 00 00 06 01 03 00 00 00 0A")
    assert mbap_framer(request) == 12
    assert mbap_framer(request + request[:3]) == 12
    assert mbap_framer(request[:5]) == 0
    assert mbap_framer(request[:11]) == 0
    assert mbap_framer(h("00 07 00 01 00 06")) == -1  # protocol id must be 0
    assert mbap_framer(h("00 07 00 00 01 00")) == -1  # length 256


def test_simulator_reproduces_the_pymodbus_frames_of_protocols_md():
    """protocols.md 6.4: the replies pymodbus' own simulator gave for the same registers."""
    clock = Clock()
    model = meter_model(clock, load_w=1126, voltage_dv=2203)
    meter = device(model, overrides={"current_ma": 5120})
    assert meter.handle(h(READ_ENERGY)) == h(READ_ENERGY_REPLY)
    assert meter.handle(h("01 03 00 0B 00 03 74 09")) == h("01 03 06 08 9B 02 00 04 66 C6 B3")
    assert meter.handle(h("01 03 01 00 00 01 85 F6")) == h("01 83 02 C0 F1")
    assert meter.handle(h(READ_ENERGY).replace(b"\x01", b"\x02", 1)) is None  # another unit
    model.offline = True
    assert meter.handle(h(READ_ENERGY)) is None


# ------------------------------------------------------------------------------ reading
def test_read_equals_the_meter_model_and_starts_with_the_golden_frame():
    clock = Clock()
    model = meter_model(clock)
    rig = Rig(device(model))
    meter = ref()

    async def body(rig: Rig) -> MeterReading:
        return await rig.driver.read(meter)

    reading = run(rig, body)
    assert_matches_model(reading, model)
    assert reading.current_ma == 9090  # 2000 W at 220.0 V
    assert reading.supply is None  # forced control off: the meter's own logic holds the relay
    assert reading.keep_power is False
    assert reading.extra == {"forced_control": 0, "forced_open": 0}
    assert rig.frames[0] == (h(READ_ENERGY), rig.frames[0][1])
    # three grouped reads: energy 0x0000x10, U/I/P 0x000Bx3, forced control 0x0057x2
    assert [(q[2] << 8 | q[3], q[5]) for q in rig.requests()] == [(0x00, 10), (0x0B, 3), (0x57, 2)]
    assert meter.capabilities == {"modbus_profile": "acrel-ddsy1352"}


def test_trip_and_close_send_the_golden_frames_and_trip_stops_consumption():
    clock = Clock()
    model = meter_model(clock)
    rig = Rig(device(model))
    meter = ref()

    async def body(rig: Rig) -> None:
        await rig.driver.set_supply(meter, False, valid_until=FAR)
        assert await rig.driver.read_supply(meter) == "off"
        assert model.supply_on is False
        before = (await rig.driver.read(meter)).total
        clock.advance(hours=1)
        after = await rig.driver.read(meter)
        assert after.total == before and after.power_w == 0 and after.supply == "off"

        await rig.driver.set_supply(meter, True, valid_until=FAR)
        assert await rig.driver.read_supply(meter) == "on"
        clock.advance(hours=1)
        again = await rig.driver.read(meter)
        assert again.total == before + 200  # 2000 W for an hour = 2.00 kWh
        assert again.supply == "on"

    run(rig, body)
    assert [q for q in rig.requests(16)] == [h(FORCE_OPEN), h(FORCE_CLOSE)]
    assert all(reply is not None and reply[1] == 16 for q, reply in rig.frames if q[1] == 16)


def test_keep_power_is_forced_close_and_release_restores_prepaid_control():
    clock = Clock()
    model = meter_model(clock)
    rig = Rig(device(model))
    meter = ref()

    async def body(rig: Rig) -> None:
        await rig.driver.keep_power(meter, True, valid_until=FAR)
        assert model.keep_power is True
        reading = await rig.driver.read(meter)
        assert reading.keep_power is True and reading.supply == "on"
        await rig.driver.keep_power(meter, False, valid_until=FAR)
        assert model.keep_power is False
        reading = await rig.driver.read(meter)
        assert reading.keep_power is False and reading.supply is None

    run(rig, body)
    assert rig.requests(16) == [h(FORCE_CLOSE), rtu_frame(h("01 10 00 57 00 02 04 00 00 00 00"))]


def test_grouped_read_refused_falls_back_to_single_points_and_is_remembered():
    clock = Clock()
    model = meter_model(clock)
    rig = Rig(device(model, group_reads=False))
    meter = ref()

    async def body(rig: Rig) -> None:
        assert_matches_model(await rig.driver.read(meter), model)
        assert meter.capabilities["group_read"] is False
        rig.frames.clear()
        assert_matches_model(await rig.driver.read(meter), model)

    run(rig, body)
    widths = {
        0x00: 2,
        0x02: 2,
        0x04: 2,
        0x06: 2,
        0x08: 2,
        0x0B: 1,
        0x0C: 1,
        0x0D: 1,
        0x57: 1,
        0x58: 1,
    }
    second = [(q[2] << 8 | q[3], q[5]) for q in rig.requests()]
    assert second == list(widths.items())  # one read per point, none refused
    assert all(reply is not None and reply[1] == 3 for _, reply in rig.frames)
    assert "unsupported" not in meter.capabilities


def test_short_range_skips_optional_points_and_remembers_them():
    clock = Clock()
    model = meter_model(clock)
    rig = Rig(device(model, short_range=0x0057))
    meter = ref()

    async def body(rig: Rig) -> MeterReading:
        first = await rig.driver.read(meter)
        assert meter.capabilities["unsupported"] == ["forced_control", "forced_open"]
        rig.frames.clear()
        return first, await rig.driver.read(meter)

    first, second = run(rig, body)
    for reading in (first, second):
        assert_matches_model(reading, model)
        assert reading.supply is None and reading.keep_power is None
    assert [(q[2] << 8 | q[3]) for q in rig.requests()] == [0x00, 0x0B]  # 0x0057 not asked again
    assert meter.capabilities.get("group_read", True) is True


def test_short_reply_falls_back_for_the_missing_register_only():
    clock = Clock()
    model = meter_model(clock, meter_mode=True, balance_fen=5000, purchase_count=2)
    rig = Rig(device(model, "meterdesk-sim-prepaid", short_range=0x0104, short_reply=True))
    meter = ref(profile="meterdesk-sim-prepaid")

    async def body(rig: Rig) -> tuple[MeterReading, MeterReading]:
        first = await rig.driver.read(meter)
        rig.frames.clear()
        return first, await rig.driver.read(meter)

    first, second = run(rig, body)
    for reading in (first, second):
        assert reading.balance_fen == 5000 and reading.purchase_count == 2
        assert reading.supply == "on"
        assert reading.keep_power is False  # now from the forced-control registers
    assert meter.capabilities == {
        "modbus_profile": "meterdesk-sim-prepaid",
        "unsupported": ["keep_power"],
    }
    assert (0x0100, 4) in [(q[2] << 8 | q[3], q[5]) for q in rig.requests()]  # regrouped


def test_required_point_outside_the_range_is_refused():
    clock = Clock()
    rig = Rig(device(meter_model(clock), short_range=0x000D))
    meter = ref()

    async def body(rig: Rig) -> None:
        with pytest.raises(Refused, match="required point power_w"):
            await rig.driver.read(meter)

    run(rig, body)


def test_new_profile_forgets_what_was_learned_with_the_old_one():
    clock = Clock()
    model = meter_model(clock)
    rig = Rig(device(model, "acrel-dtsy1352"))
    meter = ref(profile="acrel-dtsy1352")
    meter.capabilities.update(
        {"modbus_profile": "acrel-ddsy1352", "group_read": False, "unsupported": ["voltage_dv"]}
    )

    async def body(rig: Rig) -> MeterReading:
        return await rig.driver.read(meter)

    reading = run(rig, body)
    assert reading.voltage_dv == model.voltage_dv
    assert meter.capabilities == {"modbus_profile": "acrel-dtsy1352"}


# ------------------------------------------------------------------------------ silence
def test_absent_unit_id_gives_no_answer_within_the_timeout():
    clock = Clock()
    model = meter_model(clock)
    rig = Rig(device(model), retries=1)

    async def body(rig: Rig) -> float:
        started = time.monotonic()
        with pytest.raises(NoAnswer):
            await rig.driver.read(ref("7"))
        elapsed = time.monotonic() - started
        assert_matches_model(await rig.driver.read(ref("1")), model)  # the bus still works
        return elapsed

    elapsed = run(rig, body)
    # one request plus one retry, each waiting TIMEOUT; generous bound against a hung driver
    assert elapsed < 2 * TIMEOUT + 1.0
    assert [q[0] for q, reply in rig.frames if reply is None] == [7, 7]


def test_offline_meter_gives_no_answer():
    clock = Clock()
    model = meter_model(clock)
    rig = Rig(device(model), retries=0)

    async def body(rig: Rig) -> None:
        model.offline = True
        with pytest.raises(NoAnswer):
            await rig.driver.read(ref())
        with pytest.raises(NoAnswer):
            await rig.driver.set_supply(ref(), False, valid_until=FAR)
        assert model.supply_on is True
        model.offline = False
        assert (await rig.driver.read(ref())).total == model.total

    run(rig, body)


def test_late_reply_is_not_taken_for_the_next_request():
    """RTU frames carry no transaction id: a reply arriving after its timeout must not answer
    the next request (the driver reconnects after a timeout)."""
    clock = Clock()
    model = meter_model(clock)
    slow = device(model, response_delay=0.35)
    rig = Rig(slow, timeout=0.25, retries=0, time_scale=1.0)

    async def body(rig: Rig) -> MeterReading:
        with pytest.raises(NoAnswer):
            await rig.driver.read_supply(ref())  # reads 0x0057x2; its reply comes late
        slow.response_delay = 0.005
        return await rig.driver.read(ref())  # first request 0x0000x10, queued behind it

    assert_matches_model(run(rig, body), model)


def test_gateway_unreachable_is_a_connection_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def main() -> None:
        driver = ModbusDriver("127.0.0.1", port, timeout=TIMEOUT)
        with pytest.raises(ConnectionError):
            await driver.read(ref())
        with pytest.raises(ConnectionError):
            await driver.set_supply(ref(), False, valid_until=FAR)
        await driver.close()

    asyncio.run(main())


def test_garbled_replies_give_no_answer_or_the_right_values_never_wrong_ones():
    clock = Clock()
    model = meter_model(clock)
    rig = Rig(device(model), timeout=0.15, retries=1, noise_rate=0.3, seed=7)

    async def body(rig: Rig) -> list[str]:
        outcomes = []
        for _ in range(6):
            try:
                assert_matches_model(await rig.driver.read(ref()), model)
                outcomes.append("ok")
            except NoAnswer:
                outcomes.append("no answer")
        return outcomes

    outcomes = run(rig, body)
    assert "ok" in outcomes
    assert rig.bus.stats.replies > 0


# ------------------------------------------------------------------------------ meter mode
def test_meter_mode_purchase_next_count_accepted_replay_refused():
    clock = Clock()
    model = meter_model(clock, meter_mode=True, balance_fen=500, purchase_count=3)
    rig = Rig(device(model, "meterdesk-sim-prepaid"))
    meter = ref(profile="meterdesk-sim-prepaid")

    async def body(rig: Rig) -> None:
        await rig.driver.push_purchase(meter, 10_000, 4)
        reading = await rig.driver.read(meter)
        assert (reading.balance_fen, reading.purchase_count) == (10_500, 4)
        with pytest.raises(Refused, match="exception 4"):
            await rig.driver.push_purchase(meter, 10_000, 4)  # replay
        with pytest.raises(Refused, match="exception 4"):
            await rig.driver.push_purchase(meter, 10_000, 6)  # skips a count
        reading = await rig.driver.read(meter)
        assert (reading.balance_fen, reading.purchase_count) == (10_500, 4)

    run(rig, body)
    # amount 10000 fen as UINT32 high word first, then the count
    assert rig.requests(16)[0] == rtu_frame(h("01 10 01 10 00 03 06 00 00 27 10 00 04"))


def test_meter_mode_meter_trips_itself_at_zero_and_purchase_restores():
    clock = Clock()
    model = meter_model(clock, meter_mode=True, balance_fen=100, purchase_count=1)
    rig = Rig(device(model, "meterdesk-sim-prepaid"))
    meter = ref(profile="meterdesk-sim-prepaid")

    async def body(rig: Rig) -> None:
        assert (await rig.driver.read(meter)).supply == "on"
        clock.advance(hours=1)  # 2.00 kWh at 0.70 yuan = 140 fen > 100 fen
        reading = await rig.driver.read(meter)
        assert reading.supply == "off" and reading.balance_fen <= 0
        assert await rig.driver.read_supply(meter) == "off"
        await rig.driver.push_purchase(meter, 2_000, 2)
        reading = await rig.driver.read(meter)
        assert reading.supply == "on" and reading.balance_fen == model.balance_fen > 0

    run(rig, body)


def test_forced_open_holds_after_a_purchase():
    clock = Clock()
    model = meter_model(clock, meter_mode=True, balance_fen=100, purchase_count=1)
    rig = Rig(device(model, "meterdesk-sim-prepaid"))
    meter = ref(profile="meterdesk-sim-prepaid")

    async def body(rig: Rig) -> None:
        await rig.driver.set_supply(meter, False, valid_until=FAR)
        await rig.driver.push_purchase(meter, 2_000, 2)
        assert (await rig.driver.read(meter)).supply == "off"
        await rig.driver.keep_power(meter, False, valid_until=FAR)  # release forced control
        assert (await rig.driver.read(meter)).supply == "on"

    run(rig, body)


def test_purchase_without_a_purchase_write_is_refused_before_sending():
    clock = Clock()
    rig = Rig(device(meter_model(clock)))

    async def body(rig: Rig) -> None:
        with pytest.raises(Refused, match="defines no purchase write"):
            await rig.driver.push_purchase(ref(), 1_000, 1)

    run(rig, body)
    assert rig.frames == []


# ------------------------------------------------------------------------------ Modbus TCP
def test_modbus_tcp_mbap_read_and_trip():
    clock = Clock()
    model = meter_model(clock)
    rig = Rig(device(model, transport="tcp"), framer="socket")
    meter = ref()

    async def body(rig: Rig) -> MeterReading:
        reading = await rig.driver.read(meter)
        assert_matches_model(reading, model)
        await rig.driver.set_supply(meter, False, valid_until=FAR)
        assert await rig.driver.read_supply(meter) == "off"
        with pytest.raises(NoAnswer):
            await rig.driver.read(ref("9"))
        return reading

    assert run(rig, body).total == model.total
    first, reply = rig.frames[0]
    assert first[2:] == h("00 00 00 06 01 03 00 00 00 0A")  # MBAP: pid 0, length 6, unit 1
    assert reply is not None and reply[:2] == first[:2]  # transaction id echoed
    assert reply[7:] == h(READ_ENERGY_REPLY)[1:-2].replace(
        h("00 00 00 64 00 00 C3 50 00 00 EA 60 00 00 34 2C"),
        b"".join(struct.pack(">I", r) for r in model.rates),
    )
    writes = [q for q, _ in rig.frames if q[7] == 16]
    assert writes[0][6:] == h(FORCE_OPEN)[:-2]  # same PDU as RTU, no CRC
    assert model.supply_on is False


# ------------------------------------------------------------------------------ one bus
def test_one_driver_serialises_concurrent_requests():
    clock = Clock()
    one, two = meter_model(clock, "1"), meter_model(clock, "2", total=777)
    rig = Rig(device(one, unit=1), device(two, unit=2))

    async def body(rig: Rig) -> list[Any]:
        return await asyncio.gather(
            rig.driver.read(ref("1")),
            rig.driver.read(ref("2")),
            rig.driver.set_supply(ref("2"), False, valid_until=FAR),
            rig.driver.read(ref("1")),
        )

    first, second, _, third = run(rig, body)
    assert (first.total, second.total, third.total) == (123456, 777, 123456)
    assert two.supply_on is False and one.supply_on is True
    units = [q[0] for q, _ in rig.frames]
    runs = [u for i, u in enumerate(units) if i == 0 or units[i - 1] != u]
    assert runs == [1, 2, 1]  # each operation's requests stay together on the bus
    assert all(reply is not None for _, reply in rig.frames)


def test_broadcast_time_is_a_no_op_without_a_clock_write():
    clock = Clock()
    rig = Rig(device(meter_model(clock)))

    async def body(rig: Rig) -> None:
        await rig.driver.read(ref())
        rig.frames.clear()
        await rig.driver.broadcast_time(START)

    run(rig, body)
    assert rig.frames == []


def test_broadcast_time_with_a_site_clock_write(tmp_path):
    (tmp_path / "site-clock.toml").write_text(
        textwrap.dedent("""\
        name = "site-clock"
        description = "a site meter with a clock write"
        kind = "electricity"

        [points.total]
        address = 0x0000
        type = "uint32"

        [actions.clock]
        address = 0x0030
        fields = [{ name = "year" }, { name = "month" }, { name = "day" }, { name = "hour" },
                  { name = "minute" }, { name = "second" }]
        """),
        encoding="utf-8",
    )
    clock = Clock()
    model = meter_model(clock)
    meter_dev = device(model, "site-clock", profile_dir=tmp_path)
    rig = Rig(meter_dev)
    meter = ref(profile="site-clock")

    async def body(rig: Rig) -> MeterReading:
        rig.driver.profile_dir = tmp_path
        await rig.driver.read(meter)
        await rig.driver.broadcast_time(dt.datetime(2025, 6, 2, 13, 4, 5))
        return await rig.driver.read(meter)

    assert run(rig, body).total == model.total
    broadcast = [q for q, _ in rig.frames if q[0] == 0]
    assert broadcast == [rtu_frame(h("00 10 00 30 00 06 0C 07 E9 00 06 00 02 00 0D 00 04 00 05"))]
    assert meter_dev.clock_writes == [
        {"year": 2025, "month": 6, "day": 2, "hour": 13, "minute": 4, "second": 5}
    ]


def test_read_supply_falls_back_to_the_forced_control_registers():
    clock = Clock()
    model = meter_model(clock, meter_mode=True, balance_fen=5000, purchase_count=1)
    rig = Rig(device(model, "meterdesk-sim-prepaid", short_range=0x0103, short_reply=True))
    meter = ref(profile="meterdesk-sim-prepaid")

    async def body(rig: Rig) -> str:
        reading = await rig.driver.read(meter)
        assert meter.capabilities["unsupported"] == ["keep_power", "supply"]
        assert reading.supply is None  # forced control off: the meter's own logic decides
        with pytest.raises(Refused, match="relay state unknown"):
            await rig.driver.read_supply(meter)
        await rig.driver.set_supply(meter, False, valid_until=FAR)
        return await rig.driver.read_supply(meter)

    assert run(rig, body) == "off"
    assert model.supply_on is False
