"""A simulated site from a description file (TOML), and the description of the demo site.

[[gateway]]
name = "A座 弱电井"
port = 17001                 # TCP port on 127.0.0.1
family = "serial"            # serial: DL/T 645 + CJ/T 188 on one bus; modbus-rtu; modbus-tcp
baud = 9600
response_delay_ms = 50       # default for its meters
noise = 0.0                  # probability that a reply is garbled
drop = 0.0                   # probability that a reply is lost

[[gateway.meter]]
address = "000000000001"
protocol = "dlt645-2007"     # dlt645-1997 | cjt188 | modbus-rtu-tcp | modbus-tcp
kind = "electricity"         # or water
profile = ""                 # Modbus register map (see docs/modbus-profiles.md)
total = 123456               # starting register (0.01 kWh or litres)
load_w = 2000                # while open (water: litres per hour)
night_w = 0
open_hour = 9
close_hour = 22
meter_mode = false           # meter-held balance (内控)
balance_fen = 0
price = 7000                 # meter-mode price, 1/10000 yuan per unit
power_limit_w = 0
response_delay_ms = 50
supports_block = true        # DL/T 645: answers the 0000FF00 block read
di_order = "standard"        # CJ/T 188: standard or swapped
"""

from __future__ import annotations

import asyncio
import datetime as dt
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.sim.bus import VirtualBus
from app.sim.meters import MeterModel, wall_clock


@dataclass
class SimSite:
    buses: list[VirtualBus] = field(default_factory=list)
    meters: dict[str, MeterModel] = field(default_factory=dict)  # by address
    names: list[str] = field(default_factory=list)

    async def start(self, host: str = "127.0.0.1", ports: list[int] | None = None) -> list[int]:
        out = []
        for i, bus in enumerate(self.buses):
            port = ports[i] if ports else getattr(bus, "wanted_port", 0)
            out.append(await bus.start(host, port))
        return out

    async def stop(self) -> None:
        for bus in self.buses:
            await bus.stop()


def _serial_framer(buf: bytes) -> int:
    """DL/T 645 and CJ/T 188 share a bus: take whichever framer recognises the frame."""
    from app.sim import cjt188, dlt645

    a = dlt645.framer(buf)
    if a > 0:
        return a
    b = cjt188.framer(buf)
    if b > 0:
        return b
    if a == 0 or b == 0:
        return 0
    return -1


def build_site(
    description: dict[str, Any],
    *,
    clock: Callable[[], dt.datetime] = wall_clock,
    time_scale: float = 1.0,
) -> SimSite:
    from app.sim.cjt188 import VirtualCjt188Meter
    from app.sim.dlt645 import VirtualDlt645Meter

    site = SimSite()
    for g in description.get("gateway", []):
        family = g.get("family", "serial")
        delay_default = int(g.get("response_delay_ms", 50)) / 1000
        devices = []
        for md in g.get("meter", []):
            protocol = md.get("protocol", "dlt645-2007")
            model = MeterModel(
                address=str(md["address"]),
                kind=md.get("kind", "electricity"),
                total=int(md.get("total", 0)),
                load_w=int(md.get("load_w", 2000)),
                night_w=int(md.get("night_w", 0)),
                open_hour=int(md.get("open_hour", 9)),
                close_hour=int(md.get("close_hour", 22)),
                meter_mode=bool(md.get("meter_mode", False)),
                balance_fen=int(md.get("balance_fen", 0)),
                price=int(md.get("price", 7000)),
                power_limit_w=int(md.get("power_limit_w", 0)),
                clock=clock,
            )
            delay = int(md.get("response_delay_ms", delay_default * 1000)) / 1000
            if protocol.startswith("dlt645"):
                dev: Any = VirtualDlt645Meter(
                    model,
                    model.address,
                    response_delay=delay,
                    supports_block=bool(md.get("supports_block", True)),
                    version="1997" if protocol == "dlt645-1997" else "2007",
                )
            elif protocol == "cjt188":
                dev = VirtualCjt188Meter(
                    model,
                    model.address,
                    response_delay=delay,
                    di_order=md.get("di_order", "standard"),
                )
            elif protocol.startswith("modbus"):
                from app.devices.profiles import load_profile
                from app.sim.modbus import VirtualModbusMeter

                dev = VirtualModbusMeter(
                    model,
                    int(model.address),
                    load_profile(md.get("profile") or "acrel-ddsy1352"),
                    response_delay=delay,
                    transport="tcp" if family == "modbus-tcp" else "rtu",
                )
            else:
                raise ValueError(f"meter {model.address}: unknown protocol {protocol!r}")
            devices.append(dev)
            site.meters[model.address] = model
        if family == "serial":
            framer = _serial_framer
        elif family == "modbus-rtu":
            from app.sim.modbus import rtu_framer as framer
        elif family == "modbus-tcp":
            from app.sim.modbus import mbap_framer as framer
        else:
            raise ValueError(f"gateway {g.get('name')}: unknown family {family!r}")
        bus = VirtualBus(
            framer=framer,
            devices=devices,
            baud=int(g.get("baud", 9600)),
            noise_rate=float(g.get("noise", 0.0)),
            drop_rate=float(g.get("drop", 0.0)),
            time_scale=time_scale,
        )
        bus.wanted_port = int(g.get("port", 0))  # type: ignore[attr-defined]
        site.buses.append(bus)
        site.names.append(str(g.get("name", f"gateway {len(site.buses)}")))
    return site


def load_site_file(path: str) -> dict[str, Any]:
    with open(path, "rb") as fh:
        return tomllib.load(fh)


def describe_database_site() -> dict[str, Any]:
    """A site description matching the gateways and meters in the database (the demo), so the
    simulator answers for every polled meter with its current register."""
    from app.models import Gateway, Meter

    gateways = []
    for gw in Gateway.select().order_by(Gateway.id):
        meters = []
        for m in (
            Meter.select()
            .where((Meter.gateway == gw) & (Meter.status == "active"))
            .order_by(Meter.id)
        ):
            meters.append(
                {
                    "address": m.address,
                    "protocol": m.protocol,
                    "kind": m.kind,
                    "profile": m.profile,
                    "total": int(m.last_total or 0),
                    "load_w": (500 + (m.id * 37) % 4500)
                    if m.kind == "electricity"
                    else 20 + m.id % 80,
                    "night_w": 150 if m.id % 7 == 0 else 0,
                    "meter_mode": m.prepaid_mode == "meter",
                    "power_limit_w": m.power_limit_w,
                }
            )
        family = (
            "modbus-rtu" if any(x["protocol"].startswith("modbus") for x in meters) else "serial"
        )
        gateways.append(
            {
                "name": gw.name,
                "port": gw.port,
                "family": family,
                "baud": gw.baud,
                "response_delay_ms": 50,
                "meter": meters,
            }
        )
    return {"gateway": gateways}


async def serve(site: SimSite, *, stop: asyncio.Event | None = None) -> None:
    ports = await site.start()
    for name, port in zip(site.names, ports, strict=True):
        print(f"simulated gateway {name}: 127.0.0.1:{port}", flush=True)
    try:
        await (stop.wait() if stop else asyncio.Event().wait())
    finally:
        await site.stop()
