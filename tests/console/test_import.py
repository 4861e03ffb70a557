"""Excel import of meters and gateways: template, preview with row errors, one confirm."""

from __future__ import annotations

import io
import re

import pytest
from openpyxl import Workbook, load_workbook

from app.domain.actors import SYSTEM, Actor
from app.domain.errors import PermissionDenied, ValidationError
from app.domain.imports import MAX_ROWS, import_meters, parse_workbook
from app.domain.site import add_room, create_gateway
from app.domain.users import create_user
from app.models import AuditLog, Gateway, Meter, Room
from tests.test_console import csrf, login


@pytest.fixture
def users(app, now):
    for role in ("admin", "manager", "cashier", "electrician", "viewer"):
        create_user(role, "password123", role, actor=SYSTEM, now=now)


@pytest.fixture
def place(site, now):
    add_room(site.prop, building="A", floor="1", number="101", actor=SYSTEM, now=now)
    add_room(site.prop, building="A", floor="1", number="102", actor=SYSTEM, now=now)
    return create_gateway(site.prop, name="GW-A", host="10.0.0.5", port=502, actor=SYSTEM, now=now)


def template(client, kind="meters"):
    r = client.get(f"/import/template/{kind}.xlsx")
    assert r.status_code == 200
    assert r.mimetype.endswith("spreadsheetml.sheet")
    return load_workbook(io.BytesIO(r.data))


def fill(wb, rows) -> bytes:
    ws = wb.worksheets[0]
    for i, values in enumerate(rows, start=2):
        for j, value in enumerate(values, start=1):
            ws.cell(row=i, column=j, value=value)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def meter_row(
    serial,
    *,
    kind="electricity",
    protocol="dlt645-2007",
    address=None,
    gateway="GW-A",
    building="A",
    floor="1",
    room="101",
    multiplier=1,
    mode="platform",
    tariff="",
    profile="",
):
    return [
        serial,
        kind,
        protocol,
        address if address is not None else serial,
        gateway,
        building,
        floor,
        room,
        multiplier,
        mode,
        tariff,
        profile,
    ]


def upload(client, data, kind="meters", filename="meters.xlsx", **extra):
    form = {"kind": kind, "csrf_token": csrf(client), "file": (io.BytesIO(data), filename), **extra}
    return client.post("/import/preview", data=form, content_type="multipart/form-data")


def token_of(page: str) -> str:
    m = re.search(r'name="token" value="([^"]+)"', page)
    assert m, "no confirm form in the preview"
    return m.group(1)


def confirm(client, token, kind="meters", **extra):
    return client.post(
        "/import/confirm", data={"kind": kind, "token": token, "csrf_token": csrf(client), **extra}
    )


def test_template_has_bilingual_headings_and_drop_down_lists(client, users, site):
    login(client, "manager")
    wb = template(client)
    ws = wb.worksheets[0]
    headings = [c.value for c in ws[1]]
    assert (
        headings[0] == "表号 Serial *" and "类型 Kind *" in headings and "协议 Protocol" in headings
    )
    assert ws.max_row == 1 or all(c.value is None for c in ws[2])  # the example is on its own sheet
    assert "示例 Example" in wb.sheetnames
    lists = [dv.formula1 for dv in ws.data_validations.dataValidation]
    assert any("dlt645-2007" in f for f in lists) and any("electricity" in f for f in lists)


def test_filled_template_previews_clean_and_confirm_writes_every_meter(client, users, site, place):
    login(client, "manager")
    rows = [meter_row(f"{9000 + i:012d}", room="101" if i % 2 else "102") for i in range(12)]
    rows.append(meter_row("30000001", kind="water", protocol="cjt188", address="", tariff="water"))
    data = fill(template(client), rows)
    before = Meter.select().count()
    page = upload(client, data)
    assert page.status_code == 200, page.text
    assert "13" in page.text and 'class="error"' not in page.text
    assert Meter.select().count() == before  # nothing written by the preview
    r = confirm(client, token_of(page.text))
    assert r.status_code == 303 and "imported=13" in r.headers["Location"]
    assert Meter.select().count() == before + 13
    water = Meter.get(Meter.serial == "30000001")
    assert water.kind == "water" and water.address == "00000030000001"  # padded to 14 digits
    assert water.tariff_id == site.water.id and water.gateway_id == place.id
    assert Meter.get(Meter.serial == "000000009001").room.number == "101"
    assert AuditLog.select().where(AuditLog.action == "import.meters").count() == 1


def test_one_bad_row_shows_its_sheet_row_number_and_nothing_is_written(client, users, site, place):
    login(client, "manager")
    rows = [meter_row(f"{1000 + i:012d}") for i in range(5)]
    rows[2] = meter_row("000000001002", room="999")  # sheet row 4
    data = fill(template(client), rows)
    before = Meter.select().count()
    page = upload(client, data)
    assert page.status_code == 422
    assert re.search(
        r'<td class="num">4</td><td>房间 Room</td><td>999</td><td class="error">[^<]*999', page.text
    )
    assert 'name="token"' not in page.text  # no confirm offered
    assert Meter.select().count() == before


@pytest.mark.parametrize(
    "row, column, message",
    [
        (meter_row("000000000001", building="Z"), "楼栋 Building", "unknown building"),
        (meter_row("000000000001", gateway="nowhere"), "网关 Gateway", "unknown gateway"),
        (meter_row("000000000001", protocol="zigbee"), "协议 Protocol", "unknown protocol"),
        (meter_row("000000000001", address="12AB"), "通信地址 Address", "at most 12 digits"),
        (meter_row("000000000001", tariff="gold"), "电价/水价 Tariff", "unknown tariff"),
        (meter_row("000000000001", tariff="water"), "电价/水价 Tariff", "not for this kind"),
        (meter_row("000000000001", multiplier="two"), "倍率 Multiplier", "whole number"),
        (meter_row("", address="000000000001"), "表号 Serial *", "serial is required"),
        (meter_row("000000000001", kind="gas"), "类型 Kind *", "unknown meter kind"),
        (
            meter_row("000000000001", protocol="modbus-rtu-tcp", address="300"),
            "通信地址 Address",
            "1-247",
        ),
    ],
)
def test_each_kind_of_bad_value_is_reported_next_to_its_column(
    client, users, site, place, row, column, message
):
    login(client, "manager")
    with client.session_transaction() as s:
        s["lang"] = "en"
    page = upload(client, fill(template(client), [row]))
    assert page.status_code == 422
    assert re.search(
        rf'<td class="num">2</td><td>{re.escape(column)}</td><td>[^<]*</td><td class="error">[^<]*{message}',
        page.text,
    ), page.text[-3000:]


def test_duplicate_serials_in_the_file_and_in_the_database_are_errors(client, users, site, place):
    acct, meters = site.account()
    login(client, "manager")
    rows = [
        meter_row("000000005555"),
        meter_row("000000005555", room="102"),
        meter_row(meters[0].serial, address="000000000077"),
    ]
    page = upload(client, fill(template(client), rows))
    assert page.status_code == 422
    assert re.search(r'<td class="num">3</td><td>表号 Serial \*</td>', page.text)
    assert re.search(r'<td class="num">4</td><td>表号 Serial \*</td>', page.text)
    assert re.search(
        r'<td class="num">3</td><td>通信地址 Address</td>', page.text
    )  # same gateway + address


def test_confirming_the_same_upload_twice_writes_nothing_new(client, users, site, place):
    login(client, "manager")
    data = fill(template(client), [meter_row(f"{7000 + i:012d}") for i in range(3)])
    token = token_of(upload(client, data).text)
    assert confirm(client, token).status_code == 303
    after_first = Meter.select().count()
    again = confirm(client, token)
    assert (
        again.status_code == 409
        and "upload the file again" in again.text.lower()
        or "重新上传" in again.text
    )
    assert Meter.select().count() == after_first
    # The same file uploaded again finds its meters in the database.
    page = upload(client, data)
    assert page.status_code == 422 and "000000007000" in page.text
    assert Meter.select().count() == after_first


def test_import_revalidates_inside_the_transaction(site, place, now):
    """A meter created between preview and confirm turns the whole import down."""
    from app.domain.imports import Row
    from app.domain.site import create_meter

    rows = [parse_row(meter_row("000000000201"), 2), parse_row(meter_row("000000000202"), 3)]
    create_meter(site.prop, serial="000000000202", kind="electricity", actor=SYSTEM, now=now)
    before = Meter.select().count()
    with pytest.raises(ValidationError) as exc:
        import_meters(site.prop, rows, actor=SYSTEM, now=now)
    assert [e.row for e in exc.value.errors] == [3]
    assert Meter.select().count() == before
    assert isinstance(rows[0], Row)


def parse_row(values, number):
    from app.domain.imports import METER_COLUMNS, Row

    return Row(number, {c.key: str(v) for c, v in zip(METER_COLUMNS, values, strict=True)})


def test_missing_rooms_are_created_only_when_asked(client, users, site, place):
    login(client, "manager")
    data = fill(template(client), [meter_row("000000000301", building="B", floor="2", room="201")])
    assert upload(client, data).status_code == 422
    page = upload(client, data, create_rooms="1")
    assert page.status_code == 200
    assert confirm(client, token_of(page.text), create_rooms="1").status_code == 303
    assert Meter.get(Meter.serial == "000000000301").room.floor.building.name == "B"
    assert Room.select().where(Room.number == "201").count() == 1


def test_gateways_import_and_duplicate_host_port(client, users, site, place):
    login(client, "manager")
    data = fill(
        template(client, "gateways"),
        [
            ["GW-B", "10.0.0.6", 502, 9600],
            ["GW-C", "10.0.0.7", "8899", ""],
            ["GW-D", "10.0.0.5", 502, 9600],
        ],
    )
    page = upload(client, data, kind="gateways")
    assert page.status_code == 422 and re.search(
        r'<td class="num">4</td><td>主机地址 Host \*</td>', page.text
    )
    data = fill(
        template(client, "gateways"),
        [["GW-B", "10.0.0.6", 502, 9600], ["GW-C", "10.0.0.7", "8899", ""]],
    )
    page = upload(client, data, kind="gateways")
    assert page.status_code == 200
    assert confirm(client, token_of(page.text), kind="gateways").status_code == 303
    assert Gateway.get(Gateway.name == "GW-C").port == 8899


@pytest.mark.parametrize(
    "data, message",
    [
        (b"serial,kind\n1,electricity\n", "not an Excel"),
        (b"", "empty"),
        (b"PK\x03\x04 broken zip", "not an Excel"),
    ],
)
def test_a_file_that_is_not_xlsx_is_rejected_with_a_message(client, users, site, data, message):
    login(client, "manager")
    with client.session_transaction() as s:
        s["lang"] = "en"
    page = upload(client, data, filename="meters.csv")
    assert page.status_code == 422 and message in page.text


def test_wrong_headings_and_empty_sheets_are_explained(client, users, site):
    login(client, "manager")
    with client.session_transaction() as s:
        s["lang"] = "en"
    wb = Workbook()
    wb.active.append(["Name", "Host", "Port"])
    wb.active.append(["x", "1.2.3.4", 1])
    buf = io.BytesIO()
    wb.save(buf)
    page = upload(client, buf.getvalue())
    assert page.status_code == 422 and "unknown columns: Name, Host, Port" in page.text
    empty = fill(template(client), [])
    page = upload(client, empty)
    assert page.status_code == 422 and "no data rows" in page.text


def test_more_than_the_row_limit_is_refused(site):
    wb = Workbook(write_only=True)
    ws = wb.create_sheet()
    ws.append(["表号 Serial", "类型 Kind"])
    for i in range(MAX_ROWS + 1):
        ws.append([f"S{i}", "electricity"])
    buf = io.BytesIO()
    wb.save(buf)
    with pytest.raises(ValidationError, match="more than 20000 rows"):
        parse_workbook(buf.getvalue(), "meters")


def test_cashier_and_viewer_cannot_import(client, users, site, place, now):
    for role in ("cashier", "viewer", "electrician"):
        login(client, role)
        assert client.get("/import").status_code == 403
        assert client.get("/import/template/meters.xlsx").status_code == 403
        r = upload(client, b"PK")
        assert r.status_code == 403
        client.post("/logout", data={"csrf_token": csrf(client)})
    with pytest.raises(PermissionDenied):
        import_meters(
            site.prop,
            [parse_row(meter_row("000000000401"), 2)],
            actor=Actor("c", "cashier"),
            now=now,
        )
