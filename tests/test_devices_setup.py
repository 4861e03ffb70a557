"""Gateways and meters set up from the console: add and edit a gateway (audited), test its
link against a real socket, add a run of meters at consecutive bus addresses."""

from __future__ import annotations

import json
import socket

import pytest

from app.domain.actors import SYSTEM
from app.domain.devices import address_run, check_link
from app.domain.errors import ValidationError
from app.domain.users import create_user
from app.models import AuditLog, Gateway, Meter
from tests.console.conftest import login, post


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
