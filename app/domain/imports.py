"""Importing gateways and meters from an Excel sheet.

The flow is parse -> validate -> import.  ``parse_workbook`` turns the uploaded bytes into
rows numbered as the sheet numbers them (row 1 is the header, row 2 the first data row) or
refuses the whole file.  ``validate_gateways`` / ``validate_meters`` only read: they return the
clean rows ready for the domain's create functions and every row-level error.  The import
functions validate again inside the write transaction and write everything or nothing, so a
file confirmed twice (or by two people at once) finds its own rows as duplicates the second
time and writes nothing.

Column headings are bilingual and fixed ("表号 Serial"); a heading matches by its Chinese part,
its English part or the whole text, with or without the trailing ``*`` of required columns.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from openpyxl import Workbook, load_workbook
from openpyxl.styles import Font, PatternFill
from openpyxl.worksheet.datavalidation import DataValidation
from peewee import IntegrityError

from app.db import insert_chunked, write_tx
from app.devices.profiles import available_profiles
from app.domain.actors import Actor
from app.domain.audit import audit, audit_many, audit_row
from app.domain.errors import ValidationError
from app.domain.site import (
    METER_KINDS,
    PREPAID_MODES,
    PROTOCOLS,
    floor_level,
    new_gateway,
    new_meter,
    new_room,
)
from app.i18n import tr
from app.models import Building, Floor, Gateway, Meter, Property, Room, Tariff

MAX_ROWS = 20_000
KINDS = ("gateways", "meters")
BAUDS = (1200, 2400, 4800, 9600, 19200, 38400, 115200)
MODBUS = ("modbus-rtu-tcp", "modbus-tcp")
CHUNK = 500


@dataclass(frozen=True)
class Column:
    key: str
    zh: str
    en: str
    required: bool = False
    choices: tuple[str, ...] = ()

    @property
    def heading(self) -> str:
        return f"{self.zh} {self.en}" + (" *" if self.required else "")


GATEWAY_COLUMNS = (
    Column("name", "名称", "Name", True),
    Column("host", "主机地址", "Host", True),
    Column("port", "端口", "Port", True),
    Column("baud", "波特率", "Baud", choices=tuple(str(b) for b in BAUDS)),
)

METER_COLUMNS = (
    Column("serial", "表号", "Serial", True),
    Column("kind", "类型", "Kind", True, METER_KINDS),
    Column("protocol", "协议", "Protocol", choices=PROTOCOLS),
    Column("address", "通信地址", "Address"),
    Column("gateway", "网关", "Gateway"),
    Column("building", "楼栋", "Building"),
    Column("floor", "楼层", "Floor"),
    Column("room", "房间", "Room"),
    Column("multiplier", "倍率", "Multiplier"),
    Column("prepaid_mode", "预付费方式", "Prepaid mode", choices=PREPAID_MODES),
    Column("tariff", "电价/水价", "Tariff"),
    Column("profile", "型号配置", "Profile"),
)

COLUMNS = {"gateways": GATEWAY_COLUMNS, "meters": METER_COLUMNS}

EXAMPLES = {
    "gateways": ["1号楼网关", "192.168.1.50", 502, 9600],
    "meters": [
        "000000001001",
        "electricity",
        "dlt645-2007",
        "000000001001",
        "1号楼网关",
        "A",
        "1",
        "101",
        1,
        "platform",
        "",
        "",
    ],
}

KIND_WORDS = {
    "electricity": "electricity",
    "电": "electricity",
    "电表": "electricity",
    "water": "water",
    "水": "water",
    "水表": "water",
}
MODE_WORDS = {"platform": "platform", "平台": "platform", "meter": "meter", "表内": "meter"}
ADDRESS_DIGITS = {"dlt645-2007": 12, "dlt645-1997": 12, "cjt188": 14}
HOST_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-:]*$")


@dataclass(frozen=True)
class Row:
    number: int  # the sheet's own row number
    values: dict[str, str]


@dataclass(frozen=True)
class RowError:
    row: int
    column: str  # a column key ("" for the whole row)
    value: str
    message: str


@dataclass
class Plan:
    """What validation found: the clean rows and every error."""

    kind: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    new_rooms: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors


class ImportRejected(ValidationError):
    """The file has row errors; nothing was written."""

    def __init__(self, errors: list[RowError]):
        super().__init__(
            tr("%(n)s rows have errors; nothing was imported", n=len({e.row for e in errors})),
            "file",
        )
        self.errors = errors


def column_heading(kind: str, key: str) -> str:
    for col in COLUMNS[kind]:
        if col.key == key:
            return col.heading
    return ""


def file_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------- the template
def template_workbook(kind: str) -> bytes:
    """An empty sheet with the headings and drop-down lists, and an example sheet."""
    columns = COLUMNS[kind]
    wb = Workbook()
    ws = wb.active
    ws.title = "导入 Import"
    bold = Font(bold=True)
    fill = PatternFill("solid", fgColor="FFF2CC")
    for i, col in enumerate(columns, start=1):
        cell = ws.cell(row=1, column=i, value=col.heading)
        cell.font = bold
        if col.required:
            cell.fill = fill
        letter = cell.column_letter
        ws.column_dimensions[letter].width = max(14, len(col.heading) + 4)
        if col.key in ("serial", "address"):
            for r in range(2, 1002):
                ws.cell(row=r, column=i).number_format = "@"  # keep leading zeros
        if col.choices:
            dv = DataValidation(
                type="list", formula1='"' + ",".join(col.choices) + '"', allow_blank=True
            )
            dv.add(f"{letter}2:{letter}{MAX_ROWS + 1}")
            ws.add_data_validation(dv)
    ws.freeze_panes = "A2"
    example = wb.create_sheet("示例 Example")
    example.append([c.heading for c in columns])
    example.append(EXAMPLES[kind])
    for cell in example[1]:
        cell.font = bold
    notes = wb.create_sheet("说明 Notes")
    notes.append(["列 Column", "说明 Notes"])
    for col in columns:
        text = "必填 required" if col.required else "可选 optional"
        if col.choices:
            text += ": " + " / ".join(col.choices)
        notes.append([col.heading, text])
    notes.append([])
    notes.append(
        [
            f"从第 2 行起每行一条；最多 {MAX_ROWS} 行。",
            f"One item per row from row 2; at most {MAX_ROWS} rows.",
        ]
    )
    notes.column_dimensions["A"].width = 26
    notes.column_dimensions["B"].width = 60
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


# ---------------------------------------------------------------------------- parsing
def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    return str(value).strip()


def _normal(heading: str) -> str:
    return re.sub(r"\s+", " ", heading.replace("*", "").replace("＊", "")).strip().lower()


def _heading_map(kind: str) -> dict[str, str]:
    names: dict[str, str] = {}
    for col in COLUMNS[kind]:
        for text in (col.heading, col.zh, col.en, f"{col.zh} {col.en}", col.key):
            names[_normal(text)] = col.key
    return names


def parse_workbook(data: bytes, kind: str) -> list[Row]:
    """The data rows of the first sheet, or a ValidationError saying what is wrong with the file."""
    if kind not in KINDS:
        raise ValidationError(tr("choose what to import"), "kind")
    if not data:
        raise ValidationError(tr("the file is empty"), "file")
    if not data.startswith(b"PK"):
        raise ValidationError(tr("this is not an Excel .xlsx file"), "file")
    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:  # openpyxl raises many kinds for a damaged or foreign zip
        raise ValidationError(tr("this is not an Excel .xlsx file"), "file") from None
    try:
        ws = wb.worksheets[0] if wb.worksheets else None
        if ws is None:
            raise ValidationError(tr("the file has no sheet"), "file")
        rows = ws.iter_rows(values_only=True)
        header = next(rows, None)
        if not header or not any(_text(v) for v in header):
            raise ValidationError(
                tr("the first row must hold the column headings of the template"), "file"
            )
        names = _heading_map(kind)
        keys: list[str | None] = []
        unknown = []
        for value in header:
            text = _text(value)
            if not text:
                keys.append(None)
                continue
            key = names.get(_normal(text))
            if key is None:
                unknown.append(text)
            if key is not None and key in keys:
                raise ValidationError(
                    tr("the column '%(column)s' appears twice", column=text), "file"
                )
            keys.append(key)
        if unknown:
            raise ValidationError(
                tr(
                    "unknown columns: %(columns)s. Use the template's headings.",
                    columns=", ".join(unknown),
                ),
                "file",
            )
        missing = [c.heading for c in COLUMNS[kind] if c.required and c.key not in keys]
        if missing:
            raise ValidationError(
                tr(
                    "required columns are missing: %(columns)s. Use the template for this import.",
                    columns=", ".join(missing),
                ),
                "file",
            )
        out: list[Row] = []
        for number, values in enumerate(rows, start=2):
            cells = {k: _text(v) for k, v in zip(keys, values, strict=False) if k is not None}
            if not any(cells.values()):
                continue
            if len(out) >= MAX_ROWS:
                raise ValidationError(
                    tr(
                        "the file has more than %(n)s rows; split it into smaller files", n=MAX_ROWS
                    ),
                    "file",
                )
            out.append(Row(number, {c.key: cells.get(c.key, "") for c in COLUMNS[kind]}))
    finally:
        wb.close()
    if not out:
        raise ValidationError(tr("the file has no data rows (the first data row is row 2)"), "file")
    return out


# ---------------------------------------------------------------------------- validation
def _chunks(seq: Sequence, size: int = CHUNK) -> Iterable[Sequence]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


def _whole(text: str, low: int, high: int) -> int | None:
    if not re.fullmatch(r"-?\d+", text):
        return None
    value = int(text)
    return value if low <= value <= high else None


class _Errors:
    def __init__(self) -> None:
        self.items: list[RowError] = []

    def add(self, row: Row, key: str, message: str) -> None:
        self.items.append(RowError(row.number, key, row.values.get(key, ""), message))


def validate_gateways(prop: Property, rows: Sequence[Row]) -> Plan:
    """Check gateway rows against each other and the database; writes nothing."""
    err = _Errors()
    plan = Plan("gateways")
    seen_addr: dict[tuple[str, int], int] = {}
    seen_name: dict[str, int] = {}
    taken_names = {g.name for g in Gateway.select(Gateway.name).where(Gateway.property == prop)}
    hosts = sorted({r.values["host"] for r in rows if r.values["host"]})
    taken_addr: set[tuple[str, int]] = set()
    for part in _chunks(hosts):
        taken_addr.update(
            (g.host, g.port)
            for g in Gateway.select(Gateway.host, Gateway.port).where(Gateway.host.in_(list(part)))
        )
    for row in rows:
        v = row.values
        before = len(err.items)
        name, host = v["name"], v["host"]
        if not name:
            err.add(row, "name", tr("a gateway name is required"))
        elif len(name) > 80:
            err.add(row, "name", tr("at most %(n)s characters", n=80))
        elif name in taken_names:
            err.add(row, "name", tr("a gateway named '%(name)s' exists", name=name))
        elif name in seen_name:
            err.add(row, "name", tr("the same name is on row %(row)s", row=seen_name[name]))
        if not host:
            err.add(row, "host", tr("a host is required"))
        elif len(host) > 120 or not HOST_RE.match(host):
            err.add(row, "host", tr("'%(host)s' is not a host name or IP address", host=host))
        port = _whole(v["port"], 1, 65535)
        if not v["port"]:
            err.add(row, "port", tr("a port is required"))
        elif port is None:
            err.add(row, "port", tr("the port must be a whole number 1-65535"))
        baud = 9600 if not v["baud"] else _whole(v["baud"], 1, 10**7)
        if baud not in BAUDS:
            err.add(row, "baud", tr("%(baud)s is not a serial baud rate", baud=v["baud"]))
        if host and port is not None:
            if (host, port) in taken_addr:
                err.add(
                    row, "host", tr("a gateway at %(host)s:%(port)s exists", host=host, port=port)
                )
            elif (host, port) in seen_addr:
                err.add(
                    row,
                    "host",
                    tr("the same host and port are on row %(row)s", row=seen_addr[(host, port)]),
                )
            seen_addr.setdefault((host, port), row.number)
        if name:
            seen_name.setdefault(name, row.number)
        if len(err.items) == before:
            plan.rows.append(
                {
                    "row": row.number,
                    "values": v,
                    "name": name,
                    "host": host,
                    "port": port,
                    "baud": baud,
                }
            )
    plan.errors = err.items
    return plan


def _room_index(
    prop: Property,
) -> tuple[
    set[str],
    dict[tuple[str, str], int],
    dict[tuple[str, str, str], int],
    dict[tuple[str, str], list[int]],
]:
    buildings = {b.name for b in Building.select(Building.name).where(Building.property == prop)}
    floors: dict[tuple[str, str], int] = {}
    for f in (
        Floor.select(Floor.id, Floor.name, Building.name)
        .join(Building)
        .where(Building.property == prop)
    ):
        floors[(f.building.name, f.name)] = f.id
    rooms: dict[tuple[str, str, str], int] = {}
    by_number: dict[tuple[str, str], list[int]] = {}
    query = (
        Room.select(Room.id, Room.number, Floor.name, Building.name)
        .join(Floor)
        .join(Building)
        .where(Building.property == prop)
    )
    for r in query:
        rooms[(r.floor.building.name, r.floor.name, r.number)] = r.id
        by_number.setdefault((r.floor.building.name, r.number), []).append(r.id)
    return buildings, floors, rooms, by_number


def _address(protocol: str, text: str) -> str | None:
    """The meter's bus address in its protocol's form, or None if it cannot be one."""
    digits = ADDRESS_DIGITS.get(protocol)
    if digits:
        if not text.isdigit() or len(text) > digits:
            return None
        return text.zfill(digits)
    if protocol in MODBUS:
        unit = _whole(text, 1, 247)
        return None if unit is None else str(unit)
    return text if 0 < len(text) <= 20 else None


def validate_meters(prop: Property, rows: Sequence[Row], *, create_rooms: bool = False) -> Plan:
    """Check meter rows against each other and the database; writes nothing.

    With ``create_rooms`` a building or room the site does not have yet is planned for
    creation (building, floor and room must then all be given); without it, it is an error.
    """
    err = _Errors()
    plan = Plan("meters")
    serials = sorted({r.values["serial"] for r in rows if r.values["serial"]})
    taken_serials: set[str] = set()
    for part in _chunks(serials):
        taken_serials.update(
            m.serial for m in Meter.select(Meter.serial).where(Meter.serial.in_(list(part)))
        )
    gateways_by_name: dict[str, list[Gateway]] = {}
    gateways_by_addr: dict[str, Gateway] = {}
    for g in Gateway.select().where(Gateway.property == prop):
        gateways_by_name.setdefault(g.name, []).append(g)
        gateways_by_addr[f"{g.host}:{g.port}"] = g
    taken_bus: set[tuple[int, str]] = {
        (m.gateway_id, m.address)
        for m in Meter.select(Meter.gateway, Meter.address)
        .join(Gateway)
        .where(Gateway.property == prop)
    }
    tariffs = {
        t.name: t
        for t in Tariff.select().where((Tariff.property == prop) & (Tariff.active == True))
    }
    profiles = set(available_profiles())
    buildings, floors, rooms, by_number = _room_index(prop)
    planned_rooms: set[tuple[str, str, str]] = set()
    seen_serial: dict[str, int] = {}
    seen_bus: dict[tuple[int, str], int] = {}

    for row in rows:
        v = row.values
        before = len(err.items)
        clean: dict[str, Any] = {"row": row.number, "values": v}
        serial = v["serial"]
        if not serial:
            err.add(row, "serial", tr("a meter serial is required"))
        elif len(serial) > 40:
            err.add(row, "serial", tr("at most %(n)s characters", n=40))
        elif serial in taken_serials:
            err.add(row, "serial", tr("meter serial '%(serial)s' exists", serial=serial))
        elif serial in seen_serial:
            err.add(row, "serial", tr("the same serial is on row %(row)s", row=seen_serial[serial]))
        if serial:
            seen_serial.setdefault(serial, row.number)
        clean["serial"] = serial

        kind = KIND_WORDS.get(v["kind"].lower())
        if not v["kind"]:
            err.add(row, "kind", tr("the kind is required (electricity or water)"))
        elif kind is None:
            err.add(row, "kind", tr("unknown meter kind '%(kind)s'", kind=v["kind"]))
        clean["kind"] = kind

        protocol = v["protocol"].lower() or ("cjt188" if kind == "water" else "dlt645-2007")
        if protocol not in PROTOCOLS:
            err.add(row, "protocol", tr("unknown protocol '%(protocol)s'", protocol=v["protocol"]))
        elif kind == "water" and protocol.startswith("dlt645"):
            err.add(row, "protocol", tr("DL/T 645 is for electricity meters"))
        elif kind == "electricity" and protocol == "cjt188":
            err.add(row, "protocol", tr("CJ/T 188 is for water meters"))
        clean["protocol"] = protocol

        address = None
        if protocol in PROTOCOLS:
            raw = v["address"] or serial
            address = _address(protocol, raw)
            if raw and address is None:
                key = "address" if v["address"] else "serial"
                if protocol in MODBUS:
                    msg = tr("a Modbus address is a device id 1-247")
                elif protocol in ADDRESS_DIGITS:
                    msg = tr(
                        "a %(protocol)s address has at most %(n)s digits",
                        protocol=protocol,
                        n=ADDRESS_DIGITS[protocol],
                    )
                else:
                    msg = tr("at most %(n)s characters", n=20)
                if key == "serial":
                    msg = tr("no address given and the serial is not one: %(why)s", why=msg)
                err.add(row, key, msg)
        clean["address"] = address

        gateway = None
        if v["gateway"]:
            found = gateways_by_name.get(v["gateway"], [])
            if len(found) > 1:
                err.add(
                    row,
                    "gateway",
                    tr("several gateways are named '%(name)s'; give host:port", name=v["gateway"]),
                )
            elif found:
                gateway = found[0]
            elif v["gateway"] in gateways_by_addr:
                gateway = gateways_by_addr[v["gateway"]]
            else:
                err.add(row, "gateway", tr("unknown gateway '%(name)s'", name=v["gateway"]))
        elif protocol in MODBUS:
            err.add(row, "gateway", tr("a Modbus meter needs a gateway"))
        clean["gateway"] = gateway
        if gateway is not None and address is not None:
            bus = (gateway.id, address)
            if bus in taken_bus:
                err.add(
                    row,
                    "address",
                    tr("another meter on this gateway has address %(address)s", address=address),
                )
            elif bus in seen_bus:
                err.add(
                    row,
                    "address",
                    tr("the same gateway and address are on row %(row)s", row=seen_bus[bus]),
                )
            seen_bus.setdefault(bus, row.number)

        clean["room_id"] = None
        clean["new_room"] = None
        b, f, r = v["building"], v["floor"], v["room"]
        if b or f or r:
            if not r:
                err.add(row, "room", tr("give the room too, or leave building and floor empty"))
            elif not b:
                err.add(row, "building", tr("the building of room %(room)s is required", room=r))
            elif f and (b, f, r) in rooms:
                clean["room_id"] = rooms[(b, f, r)]
            elif not f and len(by_number.get((b, r), [])) == 1:
                clean["room_id"] = by_number[(b, r)][0]
            elif not f and len(by_number.get((b, r), [])) > 1:
                err.add(
                    row, "floor", tr("room %(room)s is on several floors; give the floor", room=r)
                )
            elif not create_rooms:
                if b not in buildings:
                    err.add(row, "building", tr("unknown building '%(building)s'", building=b))
                else:
                    err.add(
                        row,
                        "room",
                        tr("unknown room '%(room)s' in building %(building)s", room=r, building=b),
                    )
            elif not f:
                err.add(row, "floor", tr("the floor is required to create room %(room)s", room=r))
            else:
                clean["new_room"] = (b, f, r)
                if (b, f, r) not in planned_rooms:
                    planned_rooms.add((b, f, r))
                    plan.new_rooms += 1

        multiplier = 1 if not v["multiplier"] else _whole(v["multiplier"], 1, 10000)
        if multiplier is None:
            err.add(
                row, "multiplier", tr("the multiplier (CT ratio) must be a whole number 1-10000")
            )
        clean["multiplier"] = multiplier

        mode = MODE_WORDS.get(v["prepaid_mode"].lower() or "platform")
        if mode is None:
            err.add(
                row, "prepaid_mode", tr("unknown prepaid mode '%(mode)s'", mode=v["prepaid_mode"])
            )
        clean["prepaid_mode"] = mode

        tariff = None
        if v["tariff"]:
            tariff = tariffs.get(v["tariff"])
            if tariff is None:
                err.add(row, "tariff", tr("unknown tariff '%(name)s'", name=v["tariff"]))
            elif kind and tariff.utility != kind:
                err.add(
                    row,
                    "tariff",
                    tr("tariff '%(name)s' is not for this kind of meter", name=v["tariff"]),
                )
        clean["tariff"] = tariff

        profile = v["profile"]
        if profile:
            if protocol not in MODBUS:
                err.add(row, "profile", tr("a profile is only for Modbus meters"))
            elif profile not in profiles:
                err.add(row, "profile", tr("unknown profile '%(name)s'", name=profile))
        clean["profile"] = profile

        if len(err.items) == before:
            plan.rows.append(clean)
    plan.errors = err.items
    return plan


def validate(kind: str, prop: Property, rows: Sequence[Row], *, create_rooms: bool = False) -> Plan:
    if kind == "gateways":
        return validate_gateways(prop, rows)
    return validate_meters(prop, rows, create_rooms=create_rooms)


# ---------------------------------------------------------------------------- writing
# The import writes set-based: one ``insert_many`` per few hundred rows for each table, then
# re-selects the new rows by their unique keys for their ids (MariaDB returns no id list).
# Each row is built by the same ``new_*`` function the single-object create functions use, so
# an imported gateway, room or meter is the same row (and the same audit trail) as one created
# by hand.
@contextmanager
def _written_at_once() -> Iterator[None]:
    """A unique key the validation could not see taken (another import committing in the
    meantime on MariaDB, or names equal only under its case-insensitive collation) turns the
    import down like a row error would, instead of failing the request."""
    try:
        yield
    except IntegrityError:
        raise ValidationError(
            tr(
                "some of these rows were written by someone else at the same time; "
                "nothing was imported. Upload the file again to see which."
            ),
            "file",
        ) from None


def import_gateways(
    prop: Property, rows: Sequence[Row], *, actor: Actor, now: dt.datetime, digest: str = ""
) -> int:
    """Create every gateway of the file in one transaction, or none."""
    actor.require("site.edit")
    with _written_at_once(), write_tx():
        plan = validate_gateways(prop, rows)
        if plan.errors:
            raise ImportRejected(plan.errors)
        new = [
            new_gateway(
                prop,
                name=item["name"],
                host=item["host"],
                port=item["port"],
                baud=item["baud"],
                now=now,
            )
            for item in plan.rows
        ]
        insert_chunked(Gateway, [row for row, _ in new])
        ids = _gateway_ids({(row["host"], row["port"]) for row, _ in new})
        audit_many(
            [
                audit_row(
                    actor,
                    "gateway.create",
                    "gateway",
                    ids[(row["host"], row["port"])],
                    now=now,
                    **detail,
                )
                for row, detail in new
            ]
        )
        audit(actor, "import.gateways", prop, now=now, rows=len(plan.rows), sha256=digest)
    return len(plan.rows)


def _gateway_ids(keys: set[tuple[str, int]]) -> dict[tuple[str, int], int]:
    ids: dict[tuple[str, int], int] = {}
    for part in _chunks(sorted({host for host, _ in keys})):
        query = Gateway.select(Gateway.id, Gateway.host, Gateway.port).where(
            Gateway.host.in_(list(part))
        )
        ids.update({(g.host, g.port): g.id for g in query if (g.host, g.port) in keys})
    return ids


def _create_rooms(
    prop: Property, keys: list[tuple[str, str, str]], *, actor: Actor, now: dt.datetime
) -> dict[tuple[str, str, str], int]:
    """Create the rooms named (building, floor, number), and their buildings and floors where
    missing, as ``add_room`` would one by one; returns each room's id."""
    if not keys:
        return {}
    new = [new_room(building=b, floor=f, number=r) for b, f, r in keys]
    names = {detail["building"] for _, detail in new}

    def building_ids() -> dict[str, int]:
        query = Building.select(Building.id, Building.name).where(Building.property == prop)
        return {b.name: b.id for b in query if b.name in names}

    buildings = building_ids()
    missing = sorted(names - set(buildings))
    if missing:
        insert_chunked(Building, [{"property": prop, "name": name} for name in missing])
        buildings = building_ids()

    def floor_ids() -> dict[tuple[str, str], int]:
        query = (
            Floor.select(Floor.id, Floor.name, Building.name)
            .join(Building)
            .where(Building.property == prop)
        )
        return {(f.building.name, f.name): f.id for f in query}

    floors = floor_ids()
    wanted = sorted({(d["building"], d["floor"]) for _, d in new} - set(floors))
    if wanted:
        insert_chunked(
            Floor,
            [{"building": buildings[b], "name": f, "level": floor_level(f)} for b, f in wanted],
        )
        floors = floor_ids()
    insert_chunked(Room, [{"floor": floors[(d["building"], d["floor"])], **row} for row, d in new])
    index = _room_index(prop)[2]
    made = {key: index[key] for key in keys}
    audit_many(
        [
            audit_row(actor, "room.create", "room", made[key], now=now, **detail)
            for key, (_, detail) in zip(keys, new, strict=True)
        ]
    )
    return made


def import_meters(
    prop: Property,
    rows: Sequence[Row],
    *,
    actor: Actor,
    now: dt.datetime,
    create_rooms: bool = False,
    digest: str = "",
) -> int:
    """Create every meter of the file (and the rooms it names, if asked) in one transaction,
    or none."""
    actor.require("site.edit")
    with _written_at_once(), write_tx():
        plan = validate_meters(prop, rows, create_rooms=create_rooms)
        if plan.errors:
            raise ImportRejected(plan.errors)
        wanted = list(dict.fromkeys(i["new_room"] for i in plan.rows if i["new_room"] is not None))
        made = _create_rooms(prop, wanted, actor=actor, now=now)
        new = []
        for item in plan.rows:
            row, detail = new_meter(
                prop,
                serial=item["serial"],
                kind=item["kind"],
                protocol=item["protocol"],
                address=item["address"],
                gateway=item["gateway"],
                room=item["room_id"] if item["new_room"] is None else made[item["new_room"]],
                multiplier=item["multiplier"],
                prepaid_mode=item["prepaid_mode"],
                profile=item["profile"],
            )
            row["tariff"] = item["tariff"]
            new.append((row, detail))
        insert_chunked(Meter, [row for row, _ in new])
        ids: dict[str, int] = {}
        for part in _chunks([row["serial"] for row, _ in new]):
            query = Meter.select(Meter.id, Meter.serial).where(Meter.serial.in_(list(part)))
            ids.update({m.serial: m.id for m in query})
        trail = [
            audit_row(actor, "meter.create", "meter", ids[row["serial"]], now=now, **detail)
            for row, detail in new
        ]
        trail += [
            audit_row(
                actor,
                "meter.tariff",
                "meter",
                ids[row["serial"]],
                now=now,
                tariff=row["tariff"].name,
            )
            for row, _ in new
            if row["tariff"] is not None
        ]
        audit_many(trail)
        audit(
            actor,
            "import.meters",
            prop,
            now=now,
            rows=len(plan.rows),
            rooms=len(made),
            sha256=digest,
        )
    return len(plan.rows)
