"""The meters grid, batch actions and their progress, gateways and meter detail."""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest
from openpyxl import load_workbook

from app.domain.accounts import set_keep_power
from app.domain.actors import SYSTEM, Actor
from app.domain.batch import run_batch, start_batch
from app.domain.sales import sell
from app.domain.site import create_gateway, create_meter
from app.domain.users import create_user
from app.models import AuditLog, BatchRun, Command, Meter
from tests.test_console import csrf, login


@pytest.fixture
def users(app, now):
    for role in ("admin", "manager", "cashier", "electrician", "viewer"):
        create_user(role, "password123", role, actor=SYSTEM, now=now)


def _funded(site, amount_fen=100_000):
    acct, meters = site.account()
    sell(
        acct,
        amount_fen=amount_fen,
        method="cash",
        idempotency_key=f"k{acct.id}",
        actor=SYSTEM,
        now=site.now,
    )
    return acct, meters[0]


def _grid_status(text: str, serial: str) -> str:
    row = text.split(serial, 1)[1].split("</tr>", 1)[0]
    return row.split('class="badge st-', 1)[1].split('"', 1)[0]


def test_grid_shows_each_display_status_with_a_text_label(client, users, site, now):
    _, normal = _funded(site)
    _, (arrears,) = site.account()  # opened at zero: arrears
    _, (kept,) = site.account()
    set_keep_power(kept, on=True, actor=SYSTEM, now=now, reason="hospital")
    _, offline = _funded(site)
    Meter.update(online=False).where(Meter.id == offline.id).execute()
    stock = create_meter(site.prop, serial="STOCK1", kind="electricity", actor=SYSTEM, now=now)
    login(client, "viewer")
    page = client.get("/meters")
    assert page.status_code == 200
    assert _grid_status(page.text, normal.serial) == "opened"
    assert _grid_status(page.text, arrears.serial) == "arrears"
    assert _grid_status(page.text, kept.serial) == "kept_on"
    assert _grid_status(page.text, offline.serial) == "offline"
    assert _grid_status(page.text, stock.serial) == "not_opened"
    client.post("/language", data={"lang": "en", "csrf_token": csrf(client), "next": "/meters"})
    english = client.get("/meters").text
    for text in ("Normal", "Arrears", "Kept on", "Offline", "Not opened"):
        assert f">{text}</span>" in english


def test_grid_filters_by_status_type_building_and_search(client, users, site, now):
    _, normal = _funded(site)
    _, (arrears,) = site.account()
    acct_w, (water,) = site.account(kinds=("water",))
    login(client, "electrician")
    assert 'id="run-batch"' in client.get("/meters").text
    only_arrears = client.get("/meters?status=arrears", headers={"HX-Request": "true"}).text
    assert arrears.serial in only_arrears and normal.serial not in only_arrears
    assert "<html" not in only_arrears
    only_water = client.get("/meters?kind=water").text
    assert water.serial in only_water and normal.serial not in only_water
    by_tenant = client.get(f"/meters?q={acct_w.tenant.name}").text
    assert water.serial in by_tenant and normal.serial not in by_tenant
    from app.models import Building

    building = Building.get(Building.name == "A")
    assert normal.serial in client.get(f"/meters?building={building.id}").text
    assert normal.serial not in client.get(f"/meters?building={building.id + 1000}").text


def test_grid_pages_by_serial(client, users, site, now):
    for i in range(55):
        create_meter(site.prop, serial=f"S{i:04d}", kind="electricity", actor=SYSTEM, now=now)
    login(client, "viewer")
    first = client.get("/meters").text
    assert (
        'id="run-batch"' not in first and 'id="export"' in first
    )  # viewers export but run nothing
    second = client.get("/meters?page=2").text
    assert "S0000" in first and "S0049" in first and "S0050" not in first
    assert "S0050" in second and "S0054" in second and "S0000" not in second
    assert "55" in first


def _trip_form(client, ids, **extra):
    return {
        "action": "trip",
        "reason": "maintenance",
        "meter_id": [str(i) for i in ids],
        "csrf_token": csrf(client),
        **extra,
    }


def test_batch_trip_of_20_meters_queues_off_commands_and_finishes_20_of_20(
    client, users, site, now
):
    meters = [_funded(site)[1] for _ in range(20)]
    login(client, "electrician")
    r = client.post("/meters/batch", data=_trip_form(client, [m.id for m in meters]))
    assert r.status_code == 303
    run = BatchRun.get()
    assert r.headers["Location"].endswith(f"/batches/{run.id}")
    assert (run.status, run.total, run.done, run.failed) == ("done", 20, 20, 0)
    for m in meters:
        assert Meter.get_by_id(m.id).relay_desired == "off"
        assert (
            Command.select()
            .where(
                (Command.meter == m.id)
                & (Command.kind == "relay_off")
                & (Command.status == "pending")
            )
            .count()
            == 1
        )
    page = client.get(r.headers["Location"])
    assert '<progress max="20" value="20"' in page.text
    assert 'hx-trigger="every 1s"' not in page.text  # finished: no more polling
    assert AuditLog.select().where(AuditLog.action == "meter.force_off").count() == 20


def test_a_missing_or_stock_meter_is_a_recorded_failure_and_the_rest_run(app, site, now):
    _, good = _funded(site)
    stock = create_meter(site.prop, serial="STOCK9", kind="electricity", actor=SYSTEM, now=now)
    missing = good.id + stock.id + 1000
    run = start_batch(
        "trip",
        [good.id, stock.id, missing],
        actor=Actor("e", "electrician"),
        now=now,
        params={"reason": "test"},
    )
    run = run_batch(run.id, now=now, chunk=2)
    assert (run.status, run.total, run.done, run.failed) == ("done", 3, 1, 2)
    failed = {f["meter_id"]: f for f in json.loads(run.failures)}
    assert set(failed) == {stock.id, missing} and failed[stock.id]["serial"] == "STOCK9"
    assert Meter.get_by_id(good.id).relay_desired == "off"
    assert Meter.get_by_id(stock.id).relay_desired == "on"


def test_running_a_batch_again_does_not_repeat_it(app, site, now):
    meters = [_funded(site)[1] for _ in range(3)]
    run = start_batch("trip", [m.id for m in meters], actor=SYSTEM, now=now, params={"reason": "x"})
    run_batch(run.id, now=now)
    again = run_batch(run.id, now=now + dt.timedelta(minutes=1))
    assert (again.done, again.failed, again.position) == (3, 0, 3)
    assert (
        Command.select()
        .where((Command.kind == "relay_off") & (Command.status == "pending"))
        .count()
        == 3
    )
    assert AuditLog.select().where(AuditLog.action == "meter.force_off").count() == 3


def test_a_half_done_run_carries_on_from_where_it_stopped(app, site, now):
    meters = [_funded(site)[1] for _ in range(4)]
    run = start_batch("read", [m.id for m in meters], actor=SYSTEM, now=now)
    BatchRun.update(position=2, done=2).where(BatchRun.id == run.id).execute()  # stopped after 2
    run = run_batch(run.id, now=now)
    assert (run.done, run.position, run.status) == (4, 4, "done")
    read = {c.meter_id for c in Command.select().where(Command.kind == "read")}
    assert read == {meters[2].id, meters[3].id}


def test_select_all_matching_the_filter_takes_every_matching_meter(client, users, site, now):
    arrears = [site.account()[1][0] for _ in range(3)]
    _, normal = _funded(site)
    login(client, "manager")
    r = client.post(
        "/meters/batch",
        data={"action": "read", "scope": "filter", "status": "arrears", "csrf_token": csrf(client)},
    )
    assert r.status_code == 303
    run = BatchRun.get()
    assert sorted(json.loads(run.meter_ids)) == sorted(m.id for m in arrears)
    assert (
        not Command.select().where((Command.meter == normal.id) & (Command.kind == "read")).exists()
    )


@pytest.mark.parametrize("role", ["cashier", "viewer"])
def test_cashier_and_viewer_cannot_run_batches(client, users, site, role):
    _, m = _funded(site)
    login(client, role)
    r = client.post("/meters/batch", data=_trip_form(client, [m.id]))
    assert r.status_code == 403
    assert BatchRun.select().count() == 0 and Meter.get_by_id(m.id).relay_desired == "on"
    assert (
        client.post(
            f"/meters/{m.id}/action",
            data={"action": "trip", "reason": "x", "csrf_token": csrf(client)},
        ).status_code
        == 403
    )


def test_electrician_cannot_push_prices_but_a_manager_can(client, users, site, now):
    _, m = _funded(site)
    login(client, "electrician")
    data = {
        "action": "push_price",
        "tariff_id": str(site.tou.id),
        "meter_id": [str(m.id)],
        "csrf_token": csrf(client),
    }
    assert client.post("/meters/batch", data=data).status_code == 403
    client.post("/logout", data={"csrf_token": csrf(client)})
    login(client, "manager")
    data["csrf_token"] = csrf(client)
    assert client.post("/meters/batch", data=data).status_code == 303
    assert Meter.get_by_id(m.id).tariff_id == site.tou.id


def test_a_batch_without_a_reason_or_selection_is_refused_with_a_message(client, users, site):
    _, m = _funded(site)
    login(client, "electrician")
    r = client.post("/meters/batch", data=_trip_form(client, [m.id], reason=""))
    assert r.status_code == 422 and 'class="error"' in r.text
    r = client.post("/meters/batch", data=_trip_form(client, []))
    assert r.status_code == 422
    assert BatchRun.select().count() == 0


def test_push_thresholds_sets_the_alarm_levels_of_the_accounts(client, users, site):
    acct, m = _funded(site, 10_000)  # 97.00 net
    login(client, "manager")
    r = client.post(
        "/meters/batch",
        data={
            "action": "push_thresholds",
            "alarm1": "120",
            "alarm2": "100",
            "meter_id": [str(m.id)],
            "csrf_token": csrf(client),
        },
    )
    assert r.status_code == 303
    from app.models import Account

    fresh = Account.get_by_id(acct.id)
    assert (fresh.alarm1_fen, fresh.alarm2_fen, fresh.status) == (12000, 10000, "alarm2")


def test_export_returns_a_workbook_with_the_selected_meters(client, users, site):
    _, a = _funded(site)
    _, b = _funded(site)
    login(client, "viewer")
    r = client.get(f"/meters/export?meter_id={a.id}")
    assert r.status_code == 200 and r.mimetype.endswith("spreadsheetml.sheet")
    ws = load_workbook(io.BytesIO(r.data)).active
    serials = [row[0] for row in ws.iter_rows(min_row=2, values_only=True)]
    assert serials == [a.serial]
    every = load_workbook(io.BytesIO(client.get("/meters/export?scope=filter").data)).active
    assert {row[0] for row in every.iter_rows(min_row=2, values_only=True)} == {a.serial, b.serial}


def test_batch_list_and_progress_poll_while_running(client, users, site, now):
    _, m = _funded(site)
    run = start_batch("read", [m.id], actor=SYSTEM, now=now)
    login(client, "viewer")
    page = client.get(f"/batches/{run.id}")
    assert 'hx-trigger="every 1s"' in page.text
    partial = client.get(f"/batches/{run.id}", headers={"HX-Request": "true"})
    assert "<html" not in partial.text and 'id="progress"' in partial.text
    assert f"/batches/{run.id}" in client.get("/batches").text


def test_meter_detail_shows_commands_and_single_actions_for_electricians(client, users, site):
    _, m = _funded(site)
    login(client, "electrician")
    r = client.post(
        f"/meters/{m.id}/action",
        data={"action": "trip", "reason": "fault", "csrf_token": csrf(client)},
    )
    assert r.status_code == 303
    page = client.get(f"/meters/{m.id}").text
    assert 'name="action" value="restore"' in page
    assert (
        "<td>分闸</td>" in page and "<td>待发送</td>" in page
    )  # the queued relay_off command, pending
    missing = client.post(
        f"/meters/{m.id}/action",
        data={"action": "restore", "reason": "", "csrf_token": csrf(client)},
    )
    assert missing.status_code == 422
    client.post("/logout", data={"csrf_token": csrf(client)})
    login(client, "viewer")
    assert 'value="restore"' not in client.get(f"/meters/{m.id}").text


def test_gateways_page_lists_link_status_and_counters(client, users, site, now):
    gw = create_gateway(
        site.prop, name="GW-East", host="10.0.0.9", port=4001, actor=SYSTEM, now=now
    )
    from app.models import Gateway

    Gateway.update(online=False, frames_ok=120, frames_bad=7, timeouts=31).where(
        Gateway.id == gw.id
    ).execute()
    login(client, "viewer")
    text = client.get("/gateways").text
    assert "GW-East" in text and ">31<" in text and ">7<" in text and "st-offline" in text


def test_price_push_skips_meters_that_keep_their_own_balance_with_a_reason(app, site, now):
    _, platform = _funded(site)
    _, held = _funded(site)
    Meter.update(prepaid_mode="meter").where(Meter.id == held.id).execute()
    run = start_batch(
        "push_price",
        [platform.id, held.id],
        actor=Actor("m", "manager"),
        now=now,
        params={"tariff_id": str(site.tou.id)},
    )
    run = run_batch(run.id, now=now)
    assert (run.done, run.failed) == (1, 1)
    assert json.loads(run.failures)[0]["meter_id"] == held.id
    assert Meter.get_by_id(platform.id).tariff_id == site.tou.id
    assert Meter.get_by_id(held.id).tariff_id != site.tou.id


def test_staff_limited_to_one_property_see_only_its_meters_and_cannot_command_the_others(
    client, site, now
):
    from tests.factories import make_site

    other = make_site(now, code="P2")
    _, (mine,) = site.account()
    _, (theirs,) = other.account()
    create_user(
        "p1elec", "password123", "electrician", property_ids=[site.prop.id], actor=SYSTEM, now=now
    )
    commands_before = Command.select().where(Command.meter == theirs.id).count()
    login(client, "p1elec")
    grid = client.get("/meters").text
    assert mine.serial in grid and theirs.serial not in grid
    assert client.get(f"/meters/{theirs.id}").status_code == 404
    assert client.get(f"/meters/{mine.id}").status_code == 200
    r = client.post(
        "/meters/batch",
        data={
            "action": "trip",
            "reason": "test",
            "meter_id": [str(theirs.id)],
            "csrf_token": csrf(client),
        },
    )
    assert r.status_code == 422  # the other property's meter is not selectable: nothing to do
    assert BatchRun.select().count() == 0
    assert Command.select().where(Command.meter == theirs.id).count() == commands_before


def test_a_batch_whose_worker_died_shows_interrupted_not_running(client, users, site, now):
    import subprocess
    import sys

    from app.domain.leases import LEASE, new_owner

    _, (m,) = site.account(initial=100_00)
    run = start_batch(
        "trip", [m.id], actor=Actor("e", "electrician"), now=now, params={"reason": "x"}
    )
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    dead = f"{new_owner().split(':')[0]}:{proc.pid}:dead"
    far = dt.datetime(2100, 1, 1)  # a lease that has not run out: only the dead owner tells
    BatchRun.update(owner=dead, lease_until=far + LEASE).where(BatchRun.id == run.id).execute()
    login(client, "viewer")
    page = client.get(f"/batches/{run.id}").text
    assert "已中断，正在恢复" in page and "batch-interrupted" in page
    assert "batch-interrupted" in client.get("/batches").text
