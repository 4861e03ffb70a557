"""Tariffs in the console: the list, the flat / TOU / tiered editor, versions, the compliance
cap with the admin override, and bulk assignment."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from app.domain.actors import SYSTEM
from app.domain.tariffs import TariffBook
from app.domain.users import create_user
from app.models import Account, AuditLog, Meter, Tariff, TariffVersion
from tests.test_console import csrf, login

TOU_FORM = {
    "seg_start": ["00:00", "08:00", "18:00", "22:00"],
    "seg_rate": ["valley", "flat", "peak", "valley"],
    "price_peak": "1.0000",
    "price_flat": "0.7000",
    "price_valley": "0.3500",
}


@pytest.fixture
def users(app, now):
    for role in ("admin", "manager", "cashier", "electrician", "viewer"):
        create_user(role, "password123", role, actor=SYSTEM, now=now)


@pytest.fixture
def clock(monkeypatch, now):
    """The console's clock, set by the test."""
    state = {"now": now}
    monkeypatch.setattr("app.tariffs.views.utcnow", lambda: state["now"])
    return state


def post(client, url, data, **kw):
    return client.post(url, data={**data, "csrf_token": csrf(client)}, **kw)


def new_tariff(client, kind, name, **fields):
    data = {
        "name": name,
        "utility": "electricity",
        "kind": kind,
        "effective_from": "2026-11-03",
        **fields,
    }
    return post(client, "/tariffs/new", data)


def counts():
    return Tariff.select().count(), TariffVersion.select().count(), AuditLog.select().count()


# ---------------------------------------------------------------- creating


def test_manager_creates_a_flat_tariff_priced_in_yuan_with_four_decimals(
    client, users, site, clock
):
    login(client, "manager")
    r = new_tariff(client, "flat", "Shops flat", price="0.6875")
    assert r.status_code == 303
    tariff = Tariff.get(Tariff.name == "Shops flat")
    assert r.headers["Location"].endswith(f"/tariffs/{tariff.id}")
    version = TariffVersion.get(TariffVersion.tariff == tariff)
    assert json.loads(version.spec) == {"price": 6875}
    # 2026-11-03 00:00 in Asia/Shanghai
    assert version.effective_from == dt.datetime(2026, 11, 2, 16, 0)
    assert version.created_by == "manager"
    page = client.get(f"/tariffs/{tariff.id}")
    assert "0.6875" in page.text


def test_manager_creates_a_tou_tariff_from_segment_rows(client, users, site, clock):
    login(client, "manager")
    r = new_tariff(client, "tou", "Offices TOU", **TOU_FORM)
    assert r.status_code == 303
    spec = json.loads(
        TariffVersion.get(TariffVersion.tariff == Tariff.get(Tariff.name == "Offices TOU")).spec
    )
    assert spec["prices"] == {"peak": 10000, "flat": 7000, "valley": 3500}
    assert spec["segments"] == [
        {"start": "00:00", "rate": "valley"},
        {"start": "08:00", "rate": "flat"},
        {"start": "18:00", "rate": "peak"},
        {"start": "22:00", "rate": "valley"},
    ]


def test_manager_creates_a_tiered_tariff_with_an_open_last_block(client, users, site, clock):
    login(client, "manager")
    r = new_tariff(
        client,
        "tiered",
        "Homes tiered",
        block_upto=["200", "400", ""],
        block_price=["0.5600", "0.6100", "0.7400"],
    )
    assert r.status_code == 303
    spec = json.loads(
        TariffVersion.get(TariffVersion.tariff == Tariff.get(Tariff.name == "Homes tiered")).spec
    )
    assert spec == {
        "blocks": [
            {"upto": 200, "price": 5600},
            {"upto": 400, "price": 6100},
            {"upto": None, "price": 7400},
        ]
    }


@pytest.mark.parametrize(
    "starts, field, message",
    [
        (["01:00", "08:00"], "seg-start-0", "00:00"),  # gap at the start of the day
        (["00:00", "10:00", "08:00"], "seg-start-2", "overlaps"),  # out of order: overlaps
        (["00:00", "08:00", "08:00"], "seg-start-2", "same time"),  # two rows at once
        (["00:00", "25:00"], "seg-start-1", "HH:MM"),  # bad time
        (["00:00", "eight"], "seg-start-1", "HH:MM"),
    ],
)
def test_bad_tou_segments_get_a_message_next_to_the_row_and_nothing_is_written(
    client, users, site, clock, starts, field, message
):
    login(client, "manager")
    client.post("/language", data={"lang": "en", "next": "/tariffs", "csrf_token": csrf(client)})
    before = counts()
    rates = ["valley", "flat", "peak"][: len(starts)]
    r = new_tariff(
        client,
        "tou",
        "Bad TOU",
        seg_start=starts,
        seg_rate=rates,
        price_peak="1.0000",
        price_flat="0.7000",
        price_valley="0.3500",
    )
    assert r.status_code == 422
    error = re.search(rf'<p class="error" role="alert" id="err-{field}">([^<]*)</p>', r.text)
    assert error and message in error.group(1)
    assert f'id="{field}"' in r.text and 'aria-invalid="true"' in r.text
    assert counts() == before


def test_a_period_used_by_the_segments_needs_a_price(client, users, site, clock):
    login(client, "manager")
    before = counts()
    r = new_tariff(client, "tou", "No peak price", **{**TOU_FORM, "price_peak": ""})
    assert r.status_code == 422 and 'id="price-peak"' in r.text
    assert re.search(r'id="price-peak"[^>]*aria-invalid="true"', r.text)
    assert counts() == before


def test_a_price_with_five_decimals_is_refused(client, users, site, clock):
    login(client, "manager")
    before = counts()
    r = new_tariff(client, "flat", "Too precise", price="0.65001")
    assert r.status_code == 422 and re.search(r'id="price"[^>]*aria-invalid="true"', r.text)
    assert counts() == before


def test_tiered_blocks_must_rise_and_end_open(client, users, site, clock):
    login(client, "manager")
    before = counts()
    r = new_tariff(
        client,
        "tiered",
        "Bad blocks",
        block_upto=["400", "200", "600"],
        block_price=["0.5", "0.6", "0.7"],
    )
    assert r.status_code == 422
    assert re.search(r'id="block-upto-1"[^>]*aria-invalid="true"', r.text)
    assert re.search(r'id="block-upto-2"[^>]*aria-invalid="true"', r.text)
    assert counts() == before


def test_a_duplicate_name_is_refused_next_to_the_name(client, users, site, clock):
    login(client, "manager")
    before = counts()
    r = new_tariff(client, "flat", "flat", price="0.7000")  # the site has a tariff named "flat"
    assert r.status_code == 422 and re.search(r'id="name"[^>]*aria-invalid="true"', r.text)
    assert counts() == before


# ---------------------------------------------------------------- the editor


def test_add_segment_renders_one_more_row_and_remove_takes_it_away(client, users, site, clock):
    login(client, "manager")
    data = {
        "kind": "tou",
        "utility": "electricity",
        "seg_start": ["00:00", "08:00"],
        "seg_rate": ["valley", "flat"],
        "op": "add_segment",
    }
    added = post(client, "/tariffs/editor", data, headers={"HX-Request": "true"})
    assert added.status_code == 200 and "<html" not in added.text
    assert added.text.count('name="seg_start"') == 3 and 'value="09:00"' in added.text
    assert added.headers["HX-Trigger-After-Swap"] == "tariff-changed"
    removed = post(
        client,
        "/tariffs/editor",
        {**data, "op": "remove_segment-0"},
        headers={"HX-Request": "true"},
    )
    assert removed.text.count('name="seg_start"') == 1 and 'value="08:00"' in removed.text


def test_switching_the_kind_renders_that_kinds_editor(client, users, site, clock):
    login(client, "manager")
    tiered = post(
        client,
        "/tariffs/editor",
        {"kind": "tiered", "utility": "water"},
        headers={"HX-Request": "true"},
    )
    assert 'name="block_upto"' in tiered.text and 'name="seg_start"' not in tiered.text
    added = post(
        client,
        "/tariffs/editor",
        {
            "kind": "tiered",
            "utility": "water",
            "block_upto": ["10", ""],
            "block_price": ["4", "5"],
            "op": "add_block",
        },
        headers={"HX-Request": "true"},
    )
    uptos = re.findall(r'name="block_upto" inputmode="numeric" value="([^"]*)"', added.text)
    assert uptos == ["10", "", ""]


def test_preview_shows_the_day_bar_with_text_labels(client, users, site, clock):
    login(client, "manager")
    client.post("/language", data={"lang": "en", "next": "/tariffs", "csrf_token": csrf(client)})
    r = post(
        client,
        "/tariffs/preview",
        {"kind": "tou", "utility": "electricity", **TOU_FORM},
        headers={"HX-Request": "true"},
    )
    assert 'id="tou-preview"' in r.text
    assert re.search(r'class="tou-seg rate-peak" style="left:75.0%;width:16.667%"', r.text)
    assert "18:00–22:00 Peak" in r.text and "Within the cap" in r.text


# ---------------------------------------------------------------- the compliance cap


def test_a_price_above_catalog_plus_15_percent_is_shown_and_refused_for_a_manager(
    client, users, site, clock
):
    login(client, "manager")
    client.post("/language", data={"lang": "en", "next": "/tariffs", "csrf_token": csrf(client)})
    preview = post(
        client,
        "/tariffs/preview",
        {"kind": "flat", "utility": "electricity", "price": "0.8000"},
        headers={"HX-Request": "true"},
    )
    assert "Above the cap" in preview.text and "0.7475" in preview.text  # 0.6500 x 1.15
    before = counts()
    r = new_tariff(
        client, "flat", "Too dear", price="0.8000", override_reason="the landlord says so"
    )
    assert r.status_code == 422
    assert re.search(r'id="err-spec">[^<]*0\.8000[^<]*administrator', r.text)
    assert counts() == before


def test_admin_saves_a_price_above_the_cap_only_with_a_reason_and_it_is_audited(
    client, users, site, clock
):
    login(client, "admin")
    before = counts()
    refused = new_tariff(client, "flat", "Too dear", price="0.8000")
    assert refused.status_code == 422 and re.search(
        r'id="override_reason"[^>]*aria-invalid="true"', refused.text
    )
    assert counts() == before
    saved = new_tariff(
        client, "flat", "Too dear", price="0.8000", override_reason="shared transformer losses"
    )
    assert saved.status_code == 303
    version = TariffVersion.get(TariffVersion.tariff == Tariff.get(Tariff.name == "Too dear"))
    assert version.override_reason == "shared transformer losses"
    row = AuditLog.get((AuditLog.action == "tariff.version") & (AuditLog.actor == "admin"))
    detail = json.loads(row.detail)
    assert detail["override_reason"] == "shared transformer losses" and detail["problems"]
    listing = client.get("/tariffs")
    assert re.search(r"Too dear.*?cap-overridden", listing.text, re.S)


def test_the_list_shows_kind_version_usage_and_compliance(client, users, site, clock):
    site.account()
    site.account(tariff=site.tou)
    login(client, "viewer")
    client.post("/language", data={"lang": "en", "next": "/tariffs", "csrf_token": csrf(client)})
    page = client.get("/tariffs")
    assert page.status_code == 200
    row = re.search(rf'<tr data-tariff="{site.tou.id}">(.*?)</tr>', page.text, re.S).group(1)
    assert "Time of use" in row and "v1 from" in row and "Within the cap" in row
    assert re.findall(r'<td class="num">(\d+)</td>', row) == ["1", "1"]
    assert "New tariff" not in page.text  # a viewer changes nothing


# ---------------------------------------------------------------- versions


def test_a_new_version_becomes_current_at_its_effective_date(client, users, site, clock, now):
    login(client, "manager")
    client.post("/language", data={"lang": "en", "next": "/tariffs", "csrf_token": csrf(client)})
    form = client.get(f"/tariffs/{site.flat.id}/versions/new")
    assert (
        'value="0.7000"' in form.text and 'value="2026-11-03"' in form.text
    )  # starts from the current one
    r = post(
        client,
        f"/tariffs/{site.flat.id}/versions",
        {"effective_from": "2026-11-10", "price": "0.7200"},
    )
    assert r.status_code == 303
    start = dt.datetime(2026, 11, 9, 16, 0)  # 2026-11-10 00:00 in Asia/Shanghai
    assert TariffVersion.select().where(TariffVersion.tariff == site.flat).count() == 2

    def current_price():
        page = client.get("/tariffs")
        row = re.search(rf'<tr data-tariff="{site.flat.id}">(.*?)</tr>', page.text, re.S).group(1)
        return re.search(r"(\d\.\d{4}) yuan/kWh", row).group(1), row

    price, row = current_price()
    assert price == "0.7000" and "next from" in row
    clock["now"] = start - dt.timedelta(seconds=1)
    assert current_price()[0] == "0.7000"
    clock["now"] = start
    price, row = current_price()
    assert price == "0.7200" and "v2 from" in row and "next from" not in row
    book = TariffBook([site.flat.id])  # what rating uses
    assert book.spec_at(site.flat.id, start - dt.timedelta(seconds=1)) == {"price": 7000}
    assert book.spec_at(site.flat.id, start) == {"price": 7200}


def test_a_version_cannot_start_in_the_past_or_before_the_latest(client, users, site, clock):
    login(client, "manager")
    before = counts()
    past = post(
        client,
        f"/tariffs/{site.flat.id}/versions",
        {"effective_from": "2026-11-01", "price": "0.7200"},
    )
    assert past.status_code == 422 and re.search(
        r'id="effective_from"[^>]*aria-invalid="true"', past.text
    )
    assert (
        post(
            client,
            f"/tariffs/{site.flat.id}/versions",
            {"effective_from": "2026-11-20", "price": "0.7200"},
        ).status_code
        == 303
    )
    earlier = post(
        client,
        f"/tariffs/{site.flat.id}/versions",
        {"effective_from": "2026-11-15", "price": "0.7300"},
    )
    assert earlier.status_code == 422
    assert counts()[1] == before[1] + 1
    assert [
        json.loads(v.spec)["price"]
        for v in TariffVersion.select()
        .where(TariffVersion.tariff == site.flat)
        .order_by(TariffVersion.effective_from)
    ] == [7000, 7200]


# ---------------------------------------------------------------- bulk assignment


def test_bulk_assign_by_list_changes_exactly_the_selected_accounts(client, users, site, clock):
    accounts = [site.account()[0] for _ in range(3)]
    login(client, "manager")
    chosen = f"{accounts[0].number}\n{accounts[2].number}"
    preview = post(
        client,
        f"/tariffs/{site.tou.id}/assign/preview",
        {"target": "accounts", "list": chosen},
        headers={"HX-Request": "true"},
    )
    ids = re.search(r'name="ids" value="([\d,]*)"', preview.text).group(1)
    assert sorted(int(i) for i in ids.split(",")) == sorted([accounts[0].id, accounts[2].id])
    assert re.search(r'id="assign-count">\s*2 ', preview.text) or "2 " in preview.text
    r = post(
        client, f"/tariffs/{site.tou.id}/assign", {"target": "accounts", "list": chosen, "ids": ids}
    )
    assert r.status_code == 303 and "accounts=2" in r.headers["Location"]
    tariffs = {a.id: a.tariff_electricity_id for a in Account.select()}
    assert tariffs == {
        accounts[0].id: site.tou.id,
        accounts[1].id: site.flat.id,
        accounts[2].id: site.tou.id,
    }
    audit = AuditLog.get(AuditLog.action == "tariff.assign")
    assert sorted(json.loads(audit.detail)["accounts"]) == sorted(
        [accounts[0].number, accounts[2].number]
    )


def test_bulk_assign_to_meters_by_filter_sets_their_own_tariff(client, users, site, clock):
    _acct, (m1,) = site.account()
    _acct2, (m2,) = site.account()
    login(client, "manager")
    preview = post(
        client,
        f"/tariffs/{site.tou.id}/assign/preview",
        {"target": "meters", "q": m2.serial},
        headers={"HX-Request": "true"},
    )
    ids = re.search(r'name="ids" value="([\d,]*)"', preview.text).group(1)
    assert ids == str(m2.id)
    assert (
        post(client, f"/tariffs/{site.tou.id}/assign", {"target": "meters", "ids": ids}).status_code
        == 303
    )
    assert (
        Meter.get_by_id(m2.id).tariff_id == site.tou.id and Meter.get_by_id(m1.id).tariff_id is None
    )


def test_an_unknown_serial_in_the_list_is_named_and_nothing_is_offered(client, users, site, clock):
    acct, _ = site.account()
    login(client, "manager")
    client.post("/language", data={"lang": "en", "next": "/tariffs", "csrf_token": csrf(client)})
    r = post(
        client,
        f"/tariffs/{site.tou.id}/assign/preview",
        {"target": "accounts", "list": f"{acct.number} NOPE-1"},
        headers={"HX-Request": "true"},
    )
    assert "NOPE-1" in r.text and 'name="ids"' not in r.text
    assert 'id="err-list" hx-swap-oob="true"' in r.text


def test_assigning_a_water_tariff_to_electricity_meters_is_refused(client, users, site, clock):
    _acct, (meter,) = site.account()
    login(client, "manager")
    before = Meter.get_by_id(meter.id).tariff_id
    r = post(client, f"/tariffs/{site.water.id}/assign", {"target": "meters", "ids": str(meter.id)})
    assert r.status_code == 422
    assert Meter.get_by_id(meter.id).tariff_id == before
    assert not AuditLog.select().where(AuditLog.action == "tariff.assign").exists()


# ---------------------------------------------------------------- who may


@pytest.mark.parametrize("role", ["cashier", "viewer", "electrician"])
def test_roles_without_tariff_edit_cannot_post(client, users, site, clock, role):
    acct, _ = site.account()
    login(client, role)
    assert client.get("/tariffs").status_code == 200
    before = counts()
    for url, data in [
        (
            "/tariffs/new",
            {
                "name": "x",
                "utility": "electricity",
                "kind": "flat",
                "price": "0.6",
                "effective_from": "2026-11-03",
            },
        ),
        (f"/tariffs/{site.flat.id}/versions", {"price": "0.6", "effective_from": "2026-11-20"}),
        ("/tariffs/editor", {"kind": "tou", "op": "add_segment"}),
        ("/tariffs/preview", {"kind": "flat", "price": "0.6"}),
        (f"/tariffs/{site.tou.id}/assign/preview", {"target": "accounts", "list": acct.number}),
        (f"/tariffs/{site.tou.id}/assign", {"target": "accounts", "ids": str(acct.id)}),
    ]:
        assert post(client, url, data).status_code == 403, url
    assert client.get("/tariffs/new").status_code == 403
    assert counts() == before
    assert Account.get_by_id(acct.id).tariff_electricity_id == site.flat.id
