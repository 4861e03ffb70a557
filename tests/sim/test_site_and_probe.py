"""The simulated site from a description file, and the commissioning probe against it."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest

from app.cli import probe
from app.sim.site import build_site

SITE = {
    "gateway": [
        {
            "name": "serial bus",
            "port": 0,
            "family": "serial",
            "baud": 9600,
            "response_delay_ms": 5,
            "meter": [
                {
                    "address": "000000000011",
                    "protocol": "dlt645-2007",
                    "total": 123456,
                    "load_w": 0,
                },
                {"address": "000000000012", "protocol": "dlt645-1997", "total": 5000, "load_w": 0},
                {
                    "address": "20250601000001",
                    "protocol": "cjt188",
                    "kind": "water",
                    "total": 12340,
                    "load_w": 0,
                },
            ],
        },
        {
            "name": "modbus bus",
            "port": 0,
            "family": "modbus-rtu",
            "response_delay_ms": 5,
            "meter": [
                {
                    "address": "7",
                    "protocol": "modbus-rtu-tcp",
                    "profile": "acrel-ddsy1352",
                    "total": 7777,
                    "load_w": 0,
                }
            ],
        },
    ]
}


@pytest.fixture(scope="module")
def running_site():
    """The site served from a background event loop, as `meterdesk simulate` would."""
    site = build_site(SITE)
    loop = asyncio.new_event_loop()
    ports: list[int] = []
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        ports.extend(loop.run_until_complete(site.start()))
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield site, ports
    asyncio.run_coroutine_threadsafe(site.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def run_probe(app, *args):
    return app.test_cli_runner().invoke(probe, list(args))


def test_site_description_builds_each_protocol(running_site):
    site, ports = running_site
    assert len(ports) == 2 and all(ports)
    assert set(site.meters) == {"000000000011", "000000000012", "20250601000001", "7"}


def test_probe_reads_a_dlt645_meter_as_json_with_units_in_the_keys(app, running_site):
    _, ports = running_site
    result = run_probe(
        app,
        "--protocol",
        "dlt645-2007",
        "--host",
        "127.0.0.1",
        "--port",
        str(ports[0]),
        "--address",
        "000000000011",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["total_kwh"] == "1234.56" and data["relay"] == "on"
    assert {"t1_sharp_kwh", "voltage_v", "current_a", "power_kw"} <= set(data)


def test_probe_trips_and_closes_with_confirmation(app, running_site):
    site, ports = running_site
    args = [
        "--protocol",
        "dlt645-2007",
        "--host",
        "127.0.0.1",
        "--port",
        str(ports[0]),
        "--address",
        "000000000011",
    ]
    tripped = run_probe(app, *args, "--trip")
    assert tripped.exit_code == 0, tripped.output
    assert (
        json.loads(tripped.output)["relay"] == "off" and not site.meters["000000000011"].supply_on
    )
    closed = run_probe(app, *args, "--close")
    assert json.loads(closed.output)["relay"] == "on" and site.meters["000000000011"].supply_on


def test_probe_reads_1997_water_and_modbus_meters(app, running_site):
    _, ports = running_site
    old = run_probe(
        app,
        "--protocol",
        "dlt645-1997",
        "--host",
        "127.0.0.1",
        "--port",
        str(ports[0]),
        "--address",
        "000000000012",
    )
    assert json.loads(old.output)["total_kwh"] == "50.00"
    water = run_probe(
        app,
        "--protocol",
        "cjt188",
        "--host",
        "127.0.0.1",
        "--port",
        str(ports[0]),
        "--address",
        "20250601000001",
        "--valve-close",
    )
    assert water.exit_code == 0, water.output
    data = json.loads(water.output)
    assert data["total_m3"] == "12.340" and data["valve"] == "closed"
    modbus = run_probe(
        app,
        "--protocol",
        "modbus-rtu-tcp",
        "--host",
        "127.0.0.1",
        "--port",
        str(ports[1]),
        "--address",
        "7",
        "--profile",
        "acrel-ddsy1352",
    )
    assert modbus.exit_code == 0, modbus.output
    assert json.loads(modbus.output)["total_kwh"] == "77.77"


def test_probe_detects_a_1997_meter_when_2007_gets_no_answer(app, running_site):
    _, ports = running_site
    result = run_probe(
        app,
        "--protocol",
        "dlt645-2007",
        "--host",
        "127.0.0.1",
        "--port",
        str(ports[0]),
        "--address",
        "000000000012",
        "--timeout",
        "0.3",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (
        data["protocol"] == "dlt645-1997"
        and data["detected"] is True
        and data["total_kwh"] == "50.00"
    )


def test_probe_exits_non_zero_with_a_message_when_the_meter_is_silent(app, running_site):
    _, ports = running_site
    result = run_probe(
        app,
        "--protocol",
        "dlt645-2007",
        "--host",
        "127.0.0.1",
        "--port",
        str(ports[0]),
        "--address",
        "000000000099",
        "--timeout",
        "0.3",
    )
    assert result.exit_code != 0 and "no answer" in result.output


def test_probe_reports_an_unreachable_gateway(app):
    result = run_probe(
        app,
        "--protocol",
        "dlt645-2007",
        "--host",
        "127.0.0.1",
        "--port",
        "1",
        "--address",
        "000000000011",
        "--timeout",
        "0.3",
    )
    assert result.exit_code != 0 and "unreachable" in result.output
