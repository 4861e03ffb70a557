"""A manager imports meters from Excel: a file with one bad row shows that row and writes
nothing; the corrected file is confirmed and the meters are there."""

from __future__ import annotations

import io

from openpyxl import load_workbook

from app.domain.actors import SYSTEM
from app.domain.imports import template_workbook
from app.domain.site import add_room, create_gateway
from app.models import Meter
from tests.e2e.conftest import login, nav, shot

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def workbook(rows) -> bytes:
    wb = load_workbook(io.BytesIO(template_workbook("meters")))
    ws = wb.worksheets[0]
    for r, values in enumerate(rows, start=2):
        for c, value in enumerate(values, start=1):
            ws.cell(row=r, column=c, value=value)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def rows(bad_room: str = "101"):
    return [
        [
            f"{5100 + i:012d}",
            "electricity",
            "dlt645-2007",
            "",
            "GW-E2E",
            "A",
            "1",
            bad_room if i == 2 else "101",
        ]
        for i in range(4)
    ]


def test_import_with_a_bad_row_writes_nothing_then_the_good_file_is_confirmed(
    page, live_server, site
):
    add_room(site.prop, building="A", floor="1", number="101", actor=SYSTEM, now=site.now)
    create_gateway(site.prop, name="GW-E2E", host="10.9.9.9", port=502, actor=SYSTEM, now=site.now)
    before = Meter.select().count()
    login(page, live_server, "manager")
    nav(page, "导入")
    page.wait_for_url("**/import")

    page.set_input_files(
        "#file", files=[{"name": "meters.xlsx", "mimeType": XLSX, "buffer": workbook(rows("909"))}]
    )
    page.click("text=检查文件")
    error_row = page.locator("table.import-errors tbody tr")
    error_row.first.wait_for()
    assert error_row.count() == 1
    cells = error_row.first.locator("td").all_inner_texts()
    assert cells[0] == "4" and cells[1] == "房间 Room" and cells[2] == "909"
    assert page.locator("text=导入 4 行").count() == 0  # no confirm offered
    shot(page, "import-bad-row")
    assert Meter.select().count() == before

    page.set_input_files(
        "#file", files=[{"name": "meters.xlsx", "mimeType": XLSX, "buffer": workbook(rows())}]
    )
    page.click("text=检查文件")
    page.wait_for_selector("text=4 行可以导入")
    shot(page, "import-preview")
    page.click("text=导入 4 行")
    page.wait_for_selector("text=已导入 4 行")
    assert Meter.select().count() == before + 4
    page.click("text=查看表计")
    page.wait_for_url("**/meters")
    assert "000000005100" in page.content()
    shot(page, "import-done")
