"""Gateways and meters set up from the console: add and edit a gateway (audited), test its
link against a real socket, add a run of meters at consecutive bus addresses."""

from __future__ import annotations

import datetime as dt
import json
import socket

import pytest

from app.domain.actors import SYSTEM
from app.domain.devices import address_run, check_link
from app.domain.errors import ValidationError
from app.domain.users import create_user
from app.models import AuditLog, Gateway, Meter
from tests.console.conftest import login, post

H = dt.timedelta(hours=1)


@pytest.fixture
def manager(client, site, now):
    create_user("boss", "password123", "manager", actor=SYSTEM, now=now)
    login(client, "boss")
    return client


def test_address_runs_keep_their_width():
    assert address_run("000000000009", 3) == ["000000000009", "000000000010", "000000000011"]
    for first, count in (("12a", 1), ("1", 0), ("1", 501), ("9", 2)):
        with pytest.raises(ValidationError):
            address_run(first, count)


def test_a_gateway_is_added_edited_with_an_audit_trail_and_its_link_tested(manager, site):
    bad = post(
        manager,
        "/gateways/new",
        {"property": site.prop.id, "name": "GW", "host": "127.0.0.1", "port": "70000"},
    )
    assert bad.status_code == 422 and not Gateway.select().exists()
    made = post(
        manager,
        "/gateways/new",
        {
            "property": site.prop.id,
            "name": "Shaft 1",
            "host": "127.0.0.1",
            "port": "4001",
            "baud": "2400",
        },
    )
    assert made.status_code == 303
    gw = Gateway.get(Gateway.name == "Shaft 1")
    assert (gw.port, gw.baud, gw.property_id) == (4001, 2400, site.prop.id)
    form = {
        "name": "Shaft 1",
        "host": "127.0.0.1",
        "port": "4002",
        "baud": "9600",
        "parity": "N",
        "timeout_ms": "800",
        "transport": "serial",
        "enabled": "1",
    }
    assert post(manager, f"/gateways/{gw.id}/edit", {**form, "parity": "X"}).status_code == 422
    assert Gateway.get_by_id(gw.id).port == 4001
    assert post(manager, f"/gateways/{gw.id}/edit", form).status_code == 200
    gw = Gateway.get_by_id(gw.id)
    assert (gw.port, gw.parity, gw.timeout_ms) == (4002, "N", 800)
    changed = json.loads(AuditLog.get(AuditLog.action == "gateway.update").detail)["changed"]
    assert changed["port"] == [4001, 4002] and changed["parity"] == ["E", "N"]
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        Gateway.update(port=listener.getsockname()[1]).where(Gateway.id == gw.id).execute()
        answer = post(manager, f"/gateways/{gw.id}/test", headers={"HX-Request": "true"})
        assert answer.status_code == 200 and 'id="link-status"' in answer.text
        assert check_link(Gateway.get_by_id(gw.id)).ok
    closed = check_link(Gateway.get_by_id(gw.id), timeout=0.5)  # the listener is gone
    assert not closed.ok and closed.message


def test_a_run_of_meters_is_added_to_stock_on_a_gateway_all_or_nothing(manager, site, now):
    gw = Gateway.create(property=site.prop, name="G", host="127.0.0.1", port=4100)
    form = {
        "gateway": gw.id,
        "kind": "electricity",
        "protocol": "dlt645-2007",
        "address": "000000000001",
        "count": "5",
        "serial_prefix": "A-",
        "multiplier": "1",
    }
    made = post(manager, "/meters/new", form)
    assert made.status_code == 200 and 'id="meters-added"' in made.text
    meters = list(Meter.select().where(Meter.gateway == gw.id).order_by(Meter.address))
    assert [m.address for m in meters] == [f"00000000000{i}" for i in range(1, 6)]
    assert {m.status for m in meters} == {"stock"} and meters[0].serial == "A-000000000001"
    # the run overlaps: nothing of it is added
    again = post(manager, "/meters/new", {**form, "address": "000000000004", "count": "3"})
    assert again.status_code == 422 and Meter.select().where(Meter.gateway == gw.id).count() == 5


def test_a_manager_of_another_property_reaches_neither_its_gateways_nor_adds_meters_on_them(
    client, site, now
):
    from tests.factories import make_site

    other = make_site(now, code="P2")
    theirs = Gateway.create(property=other.prop, name="T", host="127.0.0.1", port=4200)
    create_user("p1", "password123", "manager", property_ids=[site.prop.id], actor=SYSTEM, now=now)
    login(client, "p1")
    assert client.get(f"/gateways/{theirs.id}/edit").status_code == 404
    assert post(client, f"/gateways/{theirs.id}/test").status_code == 404
    r = post(
        client,
        "/meters/new",
        {
            "gateway": theirs.id,
            "kind": "electricity",
            "protocol": "dlt645-2007",
            "address": "1",
            "count": "1",
        },
    )
    assert r.status_code == 422 and not Meter.select().where(Meter.gateway == theirs.id).exists()


def test_a_new_multiplier_is_shown_then_confirmed_and_shows_in_the_next_charge(manager, site, now):
    from app.domain.readings import apply_reading
    from app.domain.sales import sell

    acct, (meter,) = site.account()
    sell(acct, amount_fen=103_000, method="cash", idempotency_key="f", actor=SYSTEM, now=now)
    apply_reading(meter, read_at=now + H, total=100, actor=SYSTEM, now=now + H)  # 1 kWh: 0.70
    form = {
        "address": meter.address,
        "gateway": "",
        "multiplier": "40",
        "max_rate": "100000",
        "power_limit_w": "0",
        "poll_class": "tenant",
    }
    shown = post(manager, f"/meters/{meter.id}/edit", form)
    assert shown.status_code == 200 and 'id="meter-preview"' in shown.text
    assert Meter.get_by_id(meter.id).multiplier == 1  # not yet
    assert post(manager, f"/meters/{meter.id}/edit", {**form, "multiplier": "0"}).status_code == 422
    done = post(manager, f"/meters/{meter.id}/edit", {**form, "confirm": "1"})
    assert done.status_code == 200 and 'id="meter-saved"' in done.text
    assert Meter.get_by_id(meter.id).multiplier == 40
    detail = json.loads(AuditLog.get(AuditLog.action == "meter.update").detail)
    assert detail["changed"]["multiplier"] == [1, 40] and detail["effective_total"] == 100
    res = apply_reading(meter, read_at=now + 2 * H, total=200, actor=SYSTEM, now=now + 2 * H)
    assert (res.consumption, res.charge_fen) == (4000, 2800)  # 1 kWh x 40 at 0.70


def test_gateways_and_meters_through_the_api(client, site, now):
    from app.domain.users import create_api_token

    _, secret = create_api_token("t", "manager", actor=SYSTEM, now=now)
    h = {"Authorization": f"Bearer {secret}"}
    gw = client.post(
        "/api/v1/gateways",
        json={"property_id": site.prop.id, "name": "G1", "host": "127.0.0.1", "port": 4300},
        headers=h,
    )
    assert gw.status_code == 201, gw.get_json()
    gid = gw.get_json()["id"]
    bad = client.patch(f"/api/v1/gateways/{gid}", json={"port": 0}, headers=h)
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "port"
    ok = client.patch(f"/api/v1/gateways/{gid}", json={"timeout_ms": 500}, headers=h)
    assert ok.status_code == 200 and ok.get_json()["timeout_ms"] == 500
    m = client.post(
        "/api/v1/meters",
        json={
            "property_id": site.prop.id,
            "kind": "electricity",
            "serial": "API-1",
            "address": "000000000042",
            "gateway_id": gid,
        },
        headers=h,
    )
    assert m.status_code == 201, m.get_json()
    mid = m.get_json()["id"]
    assert (
        client.patch(f"/api/v1/meters/{mid}", json={"multiplier": 0}, headers=h).status_code == 400
    )
    assert client.patch(f"/api/v1/meters/{mid}", json={"serial": "X"}, headers=h).status_code == 400
    changed = client.patch(
        f"/api/v1/meters/{mid}", json={"multiplier": 80, "gateway_id": None}, headers=h
    )
    assert changed.status_code == 200 and changed.get_json()["multiplier"] == 80
    assert Meter.get_by_id(mid).gateway_id is None
