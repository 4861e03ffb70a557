"""Benchmark: the Excel import of 20,000 meters, inside what one web request may take.

    python tests/benchmarks/import_xlsx.py [--rows 20000] [--sample 1000] [--gateways 100]

On a fresh SQLite database created with the migrations: a property with an electricity and a
water tariff, and a gateways workbook (``--gateways`` rows) imported through the same path.
The meters workbook (built with openpyxl, like a filled-in template) has ``--rows`` rows: one
electricity and one water meter per room, 100 rooms a floor, 10 floors a building, every meter
on a gateway, with a tariff, in a room the import creates (``create_rooms``: the heaviest
case, a building, floor and room written for the rows as well).

Measured:
- preview: ``parse_workbook`` + ``validate_meters`` (what the upload request does)
- confirm: ``parse_workbook`` + ``import_meters`` (what the confirm request does; the import
  validates again inside its transaction)
Baseline, in the same run on the same database: the former per-row confirm (re-validation,
then ``add_room`` for each new room and ``create_meter`` plus the tariff for each row, in one
transaction) on a ``--sample`` of rows of the same shape, extrapolated to ``--rows`` by its
per-row cost; printed with the ratio of the two confirm times.

The target is a confirm of 20,000 rows in 20 s or less (gunicorn's timeout is 60 s); the last
line is ``RESULT import_20k_seconds <seconds> s target <= 20``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import time

from _fixtures import fresh_database
from openpyxl import Workbook

from app.db import db, write_tx
from app.domain.actors import SYSTEM
from app.domain.audit import audit
from app.domain.imports import (
    GATEWAY_COLUMNS,
    METER_COLUMNS,
    ImportRejected,
    Plan,
    import_gateways,
    import_meters,
    parse_workbook,
    validate_meters,
)
from app.domain.site import add_room, create_meter, create_property
from app.domain.tariffs import create_tariff
from app.models import AuditLog, Meter, Room

TARGET_S = 20
PER_GATEWAY = 200  # meters on one gateway's bus


def workbook(columns, rows) -> bytes:
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("导入 Import")
    ws.append([c.heading for c in columns])
    for row in rows:
        ws.append(row)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def meter_rows(n: int, start: int, building_prefix: str, gateways: int):
    """``n`` rows from meter number ``start``: pairs of electricity and water meters per room."""
    for j in range(start, start + n):
        room = j // 2
        building, floor, number = room // 1000, room % 1000 // 100, room % 100
        gw = j // PER_GATEWAY % gateways
        water = j % 2 == 1
        yield [
            f"{j + 1:012d}",
            "water" if water else "electricity",
            "cjt188" if water else "dlt645-2007",
            f"{j + 1:014d}" if water else f"{j + 1:012d}",
            f"GW-{gw:03d}",
            f"{building_prefix}{building:02d}",
            str(floor + 1),
            f"{floor + 1}{number:02d}",
            1 if water else 40,
            "platform",
            "water" if water else "flat",
            "",
        ]


def old_per_row_import(prop, rows, *, now) -> int:
    """The confirm as it was: validation, then one domain call per room and per meter."""
    with write_tx():
        plan: Plan = validate_meters(prop, rows, create_rooms=True)
        if plan.errors:
            raise ImportRejected(plan.errors)
        made: dict[tuple[str, str, str], Room] = {}
        for item in plan.rows:
            room = None
            if item["room_id"] is not None:
                room = Room.get_by_id(item["room_id"])
            elif item["new_room"] is not None:
                key = item["new_room"]
                if key not in made:
                    made[key] = add_room(
                        prop, building=key[0], floor=key[1], number=key[2], actor=SYSTEM, now=now
                    )
                room = made[key]
            meter = create_meter(
                prop,
                serial=item["serial"],
                kind=item["kind"],
                protocol=item["protocol"],
                address=item["address"],
                gateway=item["gateway"],
                room=room,
                multiplier=item["multiplier"],
                prepaid_mode=item["prepaid_mode"],
                profile=item["profile"],
                actor=SYSTEM,
                now=now,
            )
            if item["tariff"] is not None:
                Meter.update(tariff=item["tariff"]).where(Meter.id == meter.id).execute()
                audit(SYSTEM, "meter.tariff", meter, now=now, tariff=item["tariff"].name)
        audit(SYSTEM, "import.meters", prop, now=now, rows=len(plan.rows), rooms=len(made))
    return len(plan.rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--sample", type=int, default=1000)
    parser.add_argument("--gateways", type=int, default=100)
    args = parser.parse_args()
    assert args.rows <= args.gateways * PER_GATEWAY, "more gateways are needed for that many rows"

    fresh_database("sqlite")
    now = dt.datetime(2026, 11, 2, 4, 0)
    prop = create_property(
        code="BENCH",
        name="Bench",
        catalog_price=6500,
        water_catalog_price=60000,
        actor=SYSTEM,
        now=now,
    )
    for name, utility, price in (("flat", "electricity", 7000), ("water", "water", 50000)):
        create_tariff(
            prop,
            name=name,
            utility=utility,
            kind="flat",
            spec={"price": price},
            effective_from=now - dt.timedelta(days=30),
            actor=SYSTEM,
            now=now,
        )

    gw_data = workbook(
        GATEWAY_COLUMNS,
        [[f"GW-{g:03d}", f"10.{g // 250}.{g % 250}.1", 502, 9600] for g in range(args.gateways)],
    )
    t0 = time.perf_counter()
    n_gw = import_gateways(prop, parse_workbook(gw_data, "gateways"), actor=SYSTEM, now=now)
    gw_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    data = workbook(METER_COLUMNS, meter_rows(args.rows, 0, "A", args.gateways))
    build_s = time.perf_counter() - t0
    print(
        f"workbook: {args.rows} meter rows, {len(data) / 1e6:.1f} MB, built in {build_s:.1f} s; "
        f"{n_gw} gateways imported in {gw_s:.2f} s"
    )

    t0 = time.perf_counter()
    rows = parse_workbook(data, "meters")
    parse_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    plan = validate_meters(prop, rows, create_rooms=True)
    validate_s = time.perf_counter() - t0
    assert plan.ok, plan.errors[:3]
    print(
        f"preview:  parse {parse_s:.2f} s + validate {validate_s:.2f} s = "
        f"{parse_s + validate_s:.2f} s ({plan.new_rooms} new rooms)"
    )

    audits_before = AuditLog.select().count()
    t0 = time.perf_counter()
    rows = parse_workbook(data, "meters")
    n = import_meters(prop, rows, actor=SYSTEM, now=now, create_rooms=True, digest="bench")
    confirm_s = time.perf_counter() - t0
    assert n == args.rows and Meter.select().count() == args.rows
    assert Meter.select().where(Meter.tariff.is_null()).count() == 0
    audits = AuditLog.select().count() - audits_before
    assert audits == 2 * args.rows + plan.new_rooms + 1, audits
    print(
        f"confirm:  parse + import {confirm_s:.2f} s = {n / confirm_s:,.0f} rows/s "
        f"({audits} audit rows)"
    )

    # The former per-row path, on rows of the same shape in another building range.
    sample = parse_workbook(
        workbook(METER_COLUMNS, meter_rows(args.sample, args.rows, "Z", args.gateways)), "meters"
    )
    t0 = time.perf_counter()
    assert old_per_row_import(prop, sample, now=now) == args.sample
    old_s = time.perf_counter() - t0
    per_row_ms = old_s / args.sample * 1000
    old_total = parse_s + old_s / args.sample * args.rows
    print(
        f"per-row:  {args.sample} rows in {old_s:.2f} s = {args.sample / old_s:,.0f} rows/s "
        f"({per_row_ms:.2f} ms a row); {args.rows} rows extrapolated with the parse: {old_total:.1f} s"
    )
    print(f"ratio per-row / set-based confirm: {old_total / confirm_s:.1f}x")
    db.close()
    print(f"RESULT import_20k_seconds {confirm_s:.2f} s target <= {TARGET_S}")


if __name__ == "__main__":
    main()
