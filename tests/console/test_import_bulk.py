"""The import's confirm writes set-based, yet makes exactly the rows and the audit trail the
single-object create functions make."""

from __future__ import annotations

import json

import pytest

from app.db import db
from app.domain.actors import SYSTEM
from app.domain.imports import GATEWAY_COLUMNS, import_gateways, import_meters
from app.domain.site import add_room, create_gateway, create_meter
from app.models import AuditLog, Building, Floor, Gateway, Meter, Room
from tests.console.test_import import meter_row, parse_row


@pytest.fixture
def place(site, now):
    add_room(site.prop, building="A", floor="1", number="101", actor=SYSTEM, now=now)
    return create_gateway(site.prop, name="GW-A", host="10.0.0.5", port=502, actor=SYSTEM, now=now)


def fields(row, *skip: str) -> dict:
    return {k: v for k, v in row.__data__.items() if k not in ("id", *skip)}


def trail(action: str, object_id) -> list[dict]:
    query = AuditLog.select().where(
        (AuditLog.action == action) & (AuditLog.object_id == str(object_id))
    )
    return [json.loads(a.detail) for a in query]


def test_an_imported_meter_is_the_row_create_meter_makes(site, place, now):
    rows = [
        parse_row(meter_row("1001", address="1001", tariff="flat", multiplier=40, mode="meter"), 2),
        parse_row(
            meter_row("W77", kind="water", protocol="", address="77", gateway="", tariff="water"),
            3,
        ),
        parse_row(
            meter_row("M5", protocol="modbus-tcp", address="5", building="", floor="", room=""), 4
        ),
    ]
    assert import_meters(site.prop, rows, actor=SYSTEM, now=now) == 3
    room = Room.select().join(Floor).where((Floor.name == "1") & (Room.number == "101")).get()
    references = [
        (
            "1001",
            dict(
                address="000000001001",
                gateway=place,
                room=room,
                multiplier=40,
                prepaid_mode="meter",
                kind="electricity",
            ),
            site.flat,
        ),
        (
            "W77",
            dict(kind="water", protocol="cjt188", address="00000000000077", room=room),
            site.water,
        ),
        ("M5", dict(kind="electricity", protocol="modbus-tcp", address="5", gateway=place), None),
    ]
    for serial, kwargs, tariff in references:
        imported = Meter.get(Meter.serial == serial)
        made = create_meter(site.prop, serial=f"REF-{serial}", actor=SYSTEM, now=now, **kwargs)
        if tariff is not None:
            Meter.update(tariff=tariff).where(Meter.id == made.id).execute()
        made = Meter.get_by_id(made.id)
        assert fields(imported, "serial") == fields(made, "serial")
        assert trail("meter.create", imported.id) == [{"kind": kwargs["kind"], "serial": serial}]
        assert trail("meter.tariff", imported.id) == (
            [{"tariff": tariff.name}] if tariff is not None else []
        )
    assert Meter.get(Meter.serial == "1001").status == "stock"
    assert Meter.get(Meter.serial == "W77").max_rate == 10_000


def test_imported_rooms_reuse_buildings_and_get_floor_levels_as_add_room_does(site, place, now):
    rows = [
        parse_row(meter_row("000000000501", building="A", floor="1", room="103"), 2),
        parse_row(meter_row("000000000502", building="A", floor="-1", room="B01"), 3),
        parse_row(meter_row("000000000503", building="C", floor="M", room="M1"), 4),
        parse_row(meter_row("000000000504", building="C", floor="M", room="M1"), 5),
    ]
    buildings_before = Building.select().count()
    assert import_meters(site.prop, rows, actor=SYSTEM, now=now, create_rooms=True, digest="d1")
    assert Building.select().count() == buildings_before + 1
    assert {(f.building.name, f.name, f.level) for f in Floor.select().join(Building)} >= {
        ("A", "1", 1),
        ("A", "-1", -1),
        ("C", "M", 0),
    }
    m1 = Room.select().join(Floor).join(Building).where(Building.name == "C").get()
    assert [m.serial for m in Meter.select().where(Meter.room == m1).order_by(Meter.serial)] == [
        "000000000503",
        "000000000504",
    ]
    assert trail("room.create", m1.id) == [{"building": "C", "floor": "M", "number": "M1"}]
    reference = add_room(site.prop, building="C", floor="M", number="M2", actor=SYSTEM, now=now)
    assert fields(m1, "number") == fields(Room.get_by_id(reference.id), "number")
    summary = AuditLog.get(AuditLog.action == "import.meters")
    assert json.loads(summary.detail) == {"rooms": 3, "rows": 4, "sha256": "d1"}
    assert AuditLog.select().where(AuditLog.action == "room.create").count() == 3 + 2  # + place, M2


def test_an_imported_gateway_is_the_row_create_gateway_makes(site, now):
    from app.domain.imports import Row

    keys = [c.key for c in GATEWAY_COLUMNS]
    rows = [
        Row(2, dict(zip(keys, ["GW-1", "10.0.1.1", "502", "4800"], strict=True))),
        Row(3, dict(zip(keys, ["GW-2", "10.0.1.2", "502", ""], strict=True))),
    ]
    assert import_gateways(site.prop, rows, actor=SYSTEM, now=now, digest="d2") == 2
    made = create_gateway(
        site.prop, name="REF", host="10.0.1.9", port=502, baud=4800, actor=SYSTEM, now=now
    )
    imported = Gateway.get(Gateway.name == "GW-1")
    made = Gateway.get_by_id(made.id)
    assert fields(imported, "name", "host") == fields(made, "name", "host")
    assert Gateway.get(Gateway.name == "GW-2").baud == 9600
    assert trail("gateway.create", imported.id) == [{"host": "10.0.1.1", "port": 502}]
    summary = AuditLog.get(AuditLog.action == "import.gateways")
    assert json.loads(summary.detail) == {"rows": 2, "sha256": "d2"}


class Counter:
    def __init__(self):
        self.n = 0

    def __call__(self, original):
        def execute_sql(sql, params=None, *args, **kwargs):
            self.n += 1
            return original(sql, params, *args, **kwargs)

        return execute_sql


def statements_for(site, now, monkeypatch, first: int, n: int) -> int:
    rows = [
        parse_row(
            meter_row(f"{first + i:012d}", tariff="flat", room=f"N{first + i}", floor=str(first)),
            i + 2,
        )
        for i in range(n)
    ]
    counter = Counter()
    with monkeypatch.context() as patch:
        patch.setattr(db.obj, "execute_sql", counter(db.obj.execute_sql))
        assert import_meters(site.prop, rows, actor=SYSTEM, now=now, create_rooms=True) == n
    return counter.n


def test_the_statements_grow_with_chunks_of_rows_not_with_rows(site, place, now, monkeypatch):
    few = statements_for(site, now, monkeypatch, 1000, 5)
    many = statements_for(site, now, monkeypatch, 2000, 400)
    assert few <= many <= few + 2  # 800 audit rows for meters are two inserts
    assert many < 40
    assert Meter.select().where(Meter.tariff == site.flat).count() == 405
