"""The collector against a simulated site over real TCP on 127.0.0.1: real codecs and drivers
on one side, virtual gateways and meters on the other, nothing mocked in between."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from app.domain.accounts import set_keep_power
from app.domain.actors import SYSTEM, Actor
from app.domain.sales import sell
from app.domain.site import create_gateway
from app.domain.water import deduct_water_day
from app.models import Command, Event, Meter, Reading
from app.sim.bus import VirtualBus
from app.sim.meters import MeterModel
from app.sim.site import _serial_framer
from workers.collector import Collector

LOCAL = dt.timedelta(hours=8)


class Clock:
    """One controllable time for the meters (local) and the box (UTC)."""

    def __init__(self, utc: dt.datetime):
        self.utc = utc

    def box(self) -> dt.datetime:
        return self.utc

    def local(self) -> dt.datetime:
        return self.utc + LOCAL

    def advance(self, **kw) -> None:
        self.utc += dt.timedelta(**kw)


class Field:
    """A simulated gateway with meters, plus the matching rows in the database."""

    def __init__(self, site, clock: Clock):
        self.site = site
        self.clock = clock
        self.models: dict[int, MeterModel] = {}  # by meter id
        self.devices: list = []
        self.bus: VirtualBus | None = None
        self.gateway = None
        self.loop = asyncio.new_event_loop()

    def add(self, meter: Meter, *, protocol="dlt645-2007", load_w=3600, **model_kw) -> MeterModel:
        from app.sim.cjt188 import VirtualCjt188Meter
        from app.sim.dlt645 import VirtualDlt645Meter

        address = f"{meter.id:012d}" if protocol.startswith("dlt645") else f"{meter.id:014d}"
        Meter.update(address=address, protocol=protocol, gateway=self.gateway.id).where(
            Meter.id == meter.id
        ).execute()
        model = MeterModel(
            address=address,
            kind=meter.kind,
            total=int(meter.last_total or 0),
            load_w=load_w,
            open_hour=0,
            close_hour=24,
            clock=self.clock.local,
            **model_kw,
        )
        model.advance()
        dev = (
            VirtualDlt645Meter(model, address, response_delay=0.005)
            if protocol.startswith("dlt645")
            else VirtualCjt188Meter(model, address, response_delay=0.005)
        )
        self.devices.append(dev)
        self.models[meter.id] = model
        return model

    def start(self, port: int = 0, *, time_scale: float = 1.0) -> None:
        self.bus = VirtualBus(
            framer=_serial_framer, devices=self.devices, baud=9600, time_scale=time_scale
        )
        port = self.loop.run_until_complete(self.bus.start(port=port))
        if self.gateway.port != port:
            type(self.gateway).update(port=port).where(
                type(self.gateway).id == self.gateway.id
            ).execute()
            self.gateway.port = port

    def stop(self) -> None:
        self.loop.run_until_complete(self.bus.stop())

    def cycle(self, collector: Collector, *, force=True):
        return self.loop.run_until_complete(collector.run_cycle(force=force))


@pytest.fixture
def field(site, now):
    clock = Clock(now)
    f = Field(site, clock)
    f.gateway = create_gateway(
        site.prop, name="GW1", host="127.0.0.1", port=1, actor=SYSTEM, now=now
    )
    yield f
    if f.bus is not None:
        f.stop()
    f.loop.close()


def collector_for(field: Field, **kw) -> Collector:
    return Collector(clock=field.clock.box, timeout=0.3, batch_interval=0.01, **kw)


def close(field: Field, collector: Collector) -> None:
    field.loop.run_until_complete(collector.close())


def test_a_cycle_reads_every_meter_and_rates_the_readings(field, site, now):
    accounts = [site.account(initial=100_00) for _ in range(3)]
    for acct, (m,) in accounts:
        sell(
            acct,
            amount_fen=100_00,
            method="cash",
            idempotency_key=f"s{acct.id}",
            actor=SYSTEM,
            now=now,
        )
        field.add(m)
    field.start()
    c = collector_for(field)
    field.clock.advance(hours=1)  # 3.6 kW for an hour: 3.60 kWh each
    report = field.cycle(c)
    assert report.meters_read == 3 and report.missed == 0
    for _acct, (m,) in accounts:
        row = Reading.get((Reading.meter == m.id) & (Reading.source == "poll"))
        assert row.total == field.models[m.id].total == 100_00 + 360
        assert row.status == "accepted" and row.charge_fen == 252
        assert Meter.get_by_id(m.id).relay_confirmed == "on"
    close(field, c)


def test_trip_at_zero_then_automatic_restore_after_a_sale(field, site, now):
    acct, (m,) = site.account(initial=0)
    sell(
        acct, amount_fen=103, method="cash", idempotency_key="a", actor=SYSTEM, now=now
    )  # 1.00 net
    model = field.add(m)
    field.start()
    c = collector_for(field)
    field.clock.advance(hours=1)  # 3.6 kWh x 0.70 = 2.52 > 1.00: balance below zero
    field.cycle(c)
    assert not model.supply_on, "the trip frame reached the meter in the same cycle"
    cmd = (
        Command.select()
        .where((Command.meter == m.id) & (Command.kind == "relay_off"))
        .order_by(Command.id.desc())
        .first()
    )
    assert cmd.status == "confirmed" and Meter.get_by_id(m.id).relay_confirmed == "off"
    # the relay really stops consumption
    before = model.total
    field.clock.advance(hours=1)
    field.cycle(c)
    assert model.total == before
    sell(
        acct,
        amount_fen=10000,
        method="wechat",
        idempotency_key="b",
        actor=SYSTEM,
        now=field.clock.utc,
    )
    field.cycle(c)
    assert model.supply_on
    last_on = (
        Command.select()
        .where((Command.meter == m.id) & (Command.kind == "relay_on"))
        .order_by(Command.id.desc())
        .first()
    )
    assert last_on.status == "confirmed"
    close(field, c)


def test_keep_power_prevents_the_trip(field, site, now):
    acct, (m,) = site.account(initial=0)
    model = field.add(m)
    set_keep_power(m, on=True, reason="cold store", actor=Actor("e", "electrician"), now=now)
    field.start()
    c = collector_for(field)
    field.clock.advance(hours=1)
    field.cycle(c)
    assert model.supply_on and model.keep_power
    assert (
        Command.get((Command.meter == m.id) & (Command.kind == "keep_power")).status == "confirmed"
    )
    close(field, c)


def test_overload_trips_the_meter_and_alerts(field, site, now):
    acct, (m,) = site.account(initial=0)
    sell(acct, amount_fen=100000, method="cash", idempotency_key="a", actor=SYSTEM, now=now)
    Meter.update(power_limit_w=2000).where(Meter.id == m.id).execute()
    model = field.add(m, load_w=3600)
    field.start()
    c = collector_for(field)
    field.clock.advance(minutes=10)
    field.cycle(c)
    assert not model.supply_on
    assert Event.select().where((Event.kind == "meter.overload") & (Event.meter == m.id)).exists()
    assert Meter.get_by_id(m.id).relay_reason == "overload"
    close(field, c)


def test_water_valve_closes_at_zero(field, site, now):
    acct, (e, w) = site.account(kinds=("electricity", "water"), initial=0)
    sell(acct, amount_fen=103, method="cash", idempotency_key="a", actor=SYSTEM, now=now)
    emodel = field.add(e, load_w=0)
    wmodel = field.add(w, protocol="cjt188", load_w=1000)  # 1 m3 per hour at 5.00 yuan
    field.start()
    c = collector_for(field)
    field.clock.advance(hours=1)
    field.cycle(c)
    assert wmodel.supply_on  # water is rated as read and deducted once a day
    field.clock.advance(hours=11, minutes=5)  # 00:05 local: the day is over
    deduct_water_day(site.prop, dt.date(2026, 11, 2), actor=SYSTEM, now=field.clock.box())
    field.cycle(c)
    assert not wmodel.supply_on and not emodel.supply_on
    last = (
        Command.select()
        .where((Command.meter == w.id) & (Command.kind == "valve_close"))
        .order_by(Command.id.desc())
        .first()
    )
    assert last.status == "confirmed"
    close(field, c)


def test_offline_after_k_misses_and_recovery(field, site, now):
    acct, (m,) = site.account(initial=0)
    sell(acct, amount_fen=100000, method="cash", idempotency_key="a", actor=SYSTEM, now=now)
    model = field.add(m)
    field.start()
    c = collector_for(field, offline_after=3)
    model.offline = True
    for _ in range(3):
        field.clock.advance(minutes=1)
        report = field.cycle(c)
    assert report.went_offline == [m.id]
    meter = Meter.get_by_id(m.id)
    assert not meter.online and meter.missed_polls == 3 and meter.backoff_until is not None
    assert (
        Event.select().where((Event.kind == "meter.offline") & (Event.meter == m.id)).count() == 1
    )
    # backed off: a normal (not forced) cycle skips it
    assert field.cycle(c, force=False).meters_read == 0
    model.offline = False
    field.clock.advance(hours=2)
    report = field.cycle(c)
    assert report.came_online == [m.id] and Meter.get_by_id(m.id).online
    assert Event.select().where((Event.kind == "meter.online") & (Event.meter == m.id)).exists()
    close(field, c)


def test_gateway_outage_is_filled_from_the_cumulative_registers(field, site, now):
    acct, (m,) = site.account(initial=0)
    sell(acct, amount_fen=100000, method="cash", idempotency_key="a", actor=SYSTEM, now=now)
    model = field.add(m)
    field.start()
    port = field.gateway.port
    c = collector_for(field)
    field.clock.advance(minutes=10)
    field.cycle(c)
    field.stop()
    for _ in range(3):
        field.clock.advance(minutes=10)
        report = field.cycle(c)
        assert report.unreachable_gateways == [field.gateway.id]
    field.start(port=port)
    field.clock.advance(minutes=10)
    field.cycle(c)
    used = sum(r.consumption for r in Reading.select().where(Reading.meter == m.id))
    assert used == model.total == 300  # 50 minutes at 3.6 kW, none lost
    close(field, c)


def test_meter_held_balance_gets_purchases_with_the_next_count(field, site, now):
    acct, (m,) = site.account(initial=0)
    Meter.update(prepaid_mode="meter").where(Meter.id == m.id).execute()
    model = field.add(m, load_w=0, meter_mode=True, balance_fen=0)
    field.start()
    c = collector_for(field)
    first = sell(
        acct, amount_fen=10310, method="cash", idempotency_key="a", actor=SYSTEM, now=now
    ).sale
    field.cycle(c)
    assert (model.balance_fen, model.purchase_count) == (first.net_fen, 1)
    second = sell(
        acct, amount_fen=5155, method="cash", idempotency_key="b", actor=SYSTEM, now=now
    ).sale
    field.cycle(c)
    assert (model.balance_fen, model.purchase_count) == (first.net_fen + second.net_fen, 2)
    assert Meter.get_by_id(m.id).purchase_count == 2
    # a balance that drifts from the ledger raises one reconciliation alert
    model.balance_fen -= 500
    field.cycle(c)
    field.cycle(c)
    assert (
        Event.select()
        .where((Event.kind == "meter.balance_mismatch") & (Event.meter == m.id))
        .count()
        == 1
    )
    close(field, c)
