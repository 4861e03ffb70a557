"""A manager builds a time-of-use tariff with the segment editor, checks the day bar, saves."""

from __future__ import annotations

import json
import re

from app.models import Tariff, TariffVersion
from tests.e2e.conftest import login, nav, shot


def test_manager_builds_a_tou_tariff_with_the_segment_editor(page, live_server, site):
    login(page, live_server, "manager")
    nav(page, "费率")
    page.wait_for_url("**/tariffs")
    page.click("text=新建费率")
    page.wait_for_url("**/tariffs/new")
    page.fill("#name", "写字楼分时")
    page.select_option("#kind", "tou")
    page.wait_for_selector("#add-segment")
    assert page.locator("tr.seg-row").count() == 2  # 00:00 valley, 08:00 flat to start with

    page.click("#add-segment")
    page.wait_for_selector("#seg-start-2")
    page.fill("#seg-start-2", "18:00")
    page.select_option("#seg-rate-2", "peak")
    page.click("#add-segment")
    page.wait_for_selector("#seg-start-3")
    assert page.input_value("#seg-start-2") == "18:00"  # rows typed before survive the re-render
    page.fill("#seg-start-3", "22:00")
    assert (
        page.inner_text("tr.seg-row:nth-child(3) td.until") == "22:00"
    )  # the peak row now ends at 22:00
    page.select_option("#seg-rate-3", "valley")
    assert page.locator("tr.seg-row").count() == 4

    page.fill("#price-peak", "1.0000")
    page.fill("#price-flat", "0.7000")
    page.fill("#price-valley", "0.3500")
    page.wait_for_selector("#tou-preview .tou-seg.rate-peak")
    legend = page.inner_text("#tou-preview .tou-legend")
    assert "18:00–22:00 峰" in legend and "00:00–08:00 谷" in legend and "22:00–24:00 谷" in legend
    assert "未超上限" in page.inner_text("#tariff-preview")
    shot(page, "tariff-tou-editor")

    page.click("#tariff-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/tariffs/\d+$"))
    tariff = Tariff.get(Tariff.name == "写字楼分时")
    spec = json.loads(TariffVersion.get(TariffVersion.tariff == tariff).spec)
    assert spec["segments"] == [
        {"start": "00:00", "rate": "valley"},
        {"start": "08:00", "rate": "flat"},
        {"start": "18:00", "rate": "peak"},
        {"start": "22:00", "rate": "valley"},
    ]
    assert spec["prices"] == {"peak": 10000, "flat": 7000, "valley": 3500}
    assert page.locator(".tou-bar").count() == 1  # the saved version's day on the tariff page
    shot(page, "tariff-tou-saved")
