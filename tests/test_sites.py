"""Setting up the site tree without the demo or Excel: the first property on an empty box,
rooms by pattern with a preview, editing a room (audited with before and after), and the
same through the API."""

from __future__ import annotations

import json

import pytest

from app.domain.actors import SYSTEM
from app.domain.errors import ValidationError
from app.domain.rooms import parse_area, parse_range
from app.domain.users import create_api_token, create_user
from app.models import AuditLog, Building, Floor, Property, Room
from tests.console.conftest import login, post


def test_ranges_and_areas_are_read_strictly():
    assert parse_range("1-3", "floors") == ["1", "2", "3"]
    assert parse_range("01-03", "rooms") == ["01", "02", "03"]
    assert parse_range("B1, 1-2", "floors") == ["B1", "1", "2"]
    assert parse_area("35.5") == 355_000 and parse_area("") == 0
    for bad in ("5-1", "", "1-99999"):
        with pytest.raises(ValidationError):
            parse_range(bad, "rooms")
    for bad in ("-1", "1e3", "3.555", "１２", "1,5"):
        with pytest.raises(ValidationError):
            parse_area(bad)


def test_an_admin_on_an_empty_box_creates_the_first_property_then_its_rooms(client, app, now):
    create_user("root", "password123", "admin", actor=SYSTEM, now=now)
    login(client, "root")
    first = client.get("/")
    assert first.status_code == 302 and first.headers["Location"].endswith("/sites/properties/new")
    page = client.get("/sites/properties/new")
    assert page.status_code == 200 and 'name="code"' in page.text
    refused = post(client, "/sites/properties/new", {"code": "", "name": "East Plaza"})
    assert refused.status_code == 422 and not Property.select().exists()
    made = post(
        client,
        "/sites/properties/new",
        {"code": "EP", "name": "East Plaza", "timezone": "Asia/Shanghai", "service_fee": "3"},
    )
    assert made.status_code == 303
    prop = Property.get(Property.code == "EP")
    assert prop.service_fee_bp == 300 and prop.timezone == "Asia/Shanghai"
    form = {"building": "A", "floors": "1-3", "rooms": "01-10", "area": "35.5", "kind": "office"}
    preview = post(client, f"/sites/rooms/new?property={prop.id}", form)
    assert preview.status_code == 200 and "101" in preview.text and "310" in preview.text
    assert Room.select().count() == 0  # a preview writes nothing
    done = post(client, f"/sites/rooms/new?property={prop.id}", {**form, "confirm": "1"})
    assert done.status_code == 200 and 'id="rooms-added"' in done.text
    assert Room.select().count() == 30 and Floor.select().count() == 3
    assert {r.kind for r in Room.select()} == {"office"}
    assert Room.get(Room.number == "205").area_cm2 == 355_000
    again = post(client, f"/sites/rooms/new?property={prop.id}", {**form, "confirm": "1"})
    assert again.status_code == 422 and Room.select().count() == 30
    assert client.get("/").headers["Location"].endswith("/overview")


def test_editing_a_room_is_audited_with_before_and_after(client, site, now):
    acct, _ = site.account()
    room = Room.get_by_id(acct.room_id)
    create_user("boss", "password123", "manager", actor=SYSTEM, now=now)
    login(client, "boss")
    assert client.get(f"/sites/rooms/{room.id}/edit").status_code == 200
    bad = post(
        client, f"/sites/rooms/{room.id}/edit", {"number": "R9", "area": "x", "kind": "shop"}
    )
    assert bad.status_code == 422 and Room.get_by_id(room.id).number == room.number
    ok = post(
        client, f"/sites/rooms/{room.id}/edit", {"number": "R9", "area": "60", "kind": "dorm"}
    )
    assert ok.status_code == 200
    room = Room.get_by_id(room.id)
    assert (room.number, room.area_cm2, room.kind) == ("R9", 600_000, "dorm")
    row = AuditLog.get(AuditLog.action == "room.update")
    assert json.loads(row.detail)["changed"]["area_cm2"] == [500_000, 600_000]


def test_a_manager_of_another_property_cannot_edit_the_room(client, site, now):
    from tests.factories import make_site

    other = make_site(now, code="P2")
    acct, _ = other.account()
    create_user("p1", "password123", "manager", property_ids=[site.prop.id], actor=SYSTEM, now=now)
    login(client, "p1")
    assert client.get(f"/sites/rooms/{acct.room_id}/edit").status_code == 404
    assert post(client, f"/sites/rooms/{acct.room_id}/edit", {"number": "X"}).status_code == 404


def test_a_cashier_cannot_set_up_the_site(client, site, now):
    create_user("c", "password123", "cashier", actor=SYSTEM, now=now)
    login(client, "c")
    assert client.get("/sites/rooms/new").status_code == 403
    assert client.get("/sites/properties/new").status_code == 403


def test_the_site_tree_through_the_api_alone(client, app, now):
    _, secret = create_api_token("setup", "manager", actor=SYSTEM, now=now)
    h = {"Authorization": f"Bearer {secret}"}

    def make(path, body, status=201):
        r = client.post(f"/api/v1/{path}", json=body, headers=h)
        assert r.status_code == status, r.get_json()
        return r.get_json()

    prop = make("properties", {"code": "API", "name": "API Park", "service_fee": "2.50"})
    assert prop["timezone"] == "Asia/Shanghai" and prop["id"]
    building = make("buildings", {"property_id": prop["id"], "name": "B"})
    assert building == {"id": building["id"], "property_id": prop["id"], "name": "B"}
    floors = [make("floors", {"building_id": building["id"], "name": str(n)}) for n in (1, 2, 3)]
    assert [f["level"] for f in floors] == [1, 2, 3]
    room = make("rooms", {"floor_id": floors[0]["id"], "number": "101", "area": "35.50"})
    assert room["area"] == "35.50" and room["kind"] == "shop"
    # errors name the field and change nothing
    for body, field in (
        ({"floor_id": floors[0]["id"], "number": "101"}, "number"),  # taken
        ({"floor_id": floors[0]["id"], "number": "102", "area": "1e3"}, "area"),
        ({"floor_id": "1", "number": "102"}, "floor_id"),
        ({"floor_id": 987654, "number": "102"}, "floor_id"),
        ({"floor_id": floors[0]["id"], "number": "102", "kind": "castle"}, "kind"),
    ):
        r = client.post("/api/v1/rooms", json=body, headers=h)
        assert 400 <= r.status_code < 500 and r.get_json()["error"]["field"] == field, body
    assert Room.select().count() == 1
    changed = client.patch(
        f"/api/v1/rooms/{room['id']}", json={"area": "40", "kind": "office"}, headers=h
    )
    assert changed.status_code == 200 and changed.get_json()["area"] == "40.00"
    bad = client.patch(f"/api/v1/rooms/{room['id']}", json={"floor_id": 1}, headers=h)
    assert bad.status_code == 400 and Room.get_by_id(room["id"]).kind == "office"
    listed = client.get("/api/v1/rooms", headers=h).get_json()["items"]
    assert [r["number"] for r in listed] == ["101"]
    assert Building.select().count() == 1
    viewer = create_api_token("v", "viewer", actor=SYSTEM, now=now)[1]
    denied = client.post(
        "/api/v1/buildings",
        json={"property_id": prop["id"], "name": "C"},
        headers={"Authorization": f"Bearer {viewer}"},
    )
    assert denied.status_code == 403 and Building.select().count() == 1


def test_a_tenant_is_added_and_edited_in_the_console_with_an_audit_trail(client, site, now):
    create_user("cash", "password123", "cashier", actor=SYSTEM, now=now)
    login(client, "cash")
    from app.models import Tenant

    bad = post(
        client, "/tenants/new", {"property": site.prop.id, "name": "Noodles", "phones": "12ab"}
    )
    assert bad.status_code == 422 and not Tenant.select().where(Tenant.name == "Noodles").exists()
    made = post(
        client,
        "/tenants/new",
        {
            "property": site.prop.id,
            "name": "Noodles",
            "phones": "138 0000 0001",
            "id_number": "91310000MA1K",
        },
    )
    assert made.status_code == 303
    tenant = Tenant.get(Tenant.name == "Noodles")
    assert (tenant.phones, tenant.id_number) == ("13800000001", "91310000MA1K")
    form = {
        "name": "Noodle House",
        "phones": "13800000001, 13900000002",
        "contact": "Ms Li",
        "id_number": "91310000MA1K",
        "note": "",
    }
    assert post(client, f"/tenants/{tenant.id}/edit", form).status_code == 200
    tenant = Tenant.get_by_id(tenant.id)
    assert tenant.name == "Noodle House" and tenant.phones == "13800000001,13900000002"
    last = (
        AuditLog.select()
        .where(AuditLog.action == "tenant.update")
        .order_by(AuditLog.id.desc())
        .first()
    )
    changed = json.loads(last.detail)["changed"]
    assert changed["name"] == ["Noodles", "Noodle House"]
    assert post(client, f"/tenants/{tenant.id}/edit", {**form, "name": ""}).status_code == 422
    assert Tenant.get_by_id(tenant.id).name == "Noodle House"


def test_tenants_through_the_api(client, site, now):
    from app.models import Tenant

    _, secret = create_api_token("t", "cashier", actor=SYSTEM, now=now)
    h = {"Authorization": f"Bearer {secret}"}
    r = client.post(
        "/api/v1/tenants",
        json={
            "property_id": site.prop.id,
            "name": "Tea",
            "phones": ["13800000003"],
            "id_number": "110101199001011234",
        },
        headers=h,
    )
    assert r.status_code == 201, r.get_json()
    tid = r.get_json()["id"]
    assert r.get_json()["phones"] == ["13800000003"]
    bad = client.patch(f"/api/v1/tenants/{tid}", json={"phones": ["x"]}, headers=h)
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "phones"
    unknown = client.patch(f"/api/v1/tenants/{tid}", json={"property_id": 9}, headers=h)
    assert unknown.status_code == 400
    ok = client.patch(f"/api/v1/tenants/{tid}", json={"contact": "Mr Wu"}, headers=h)
    assert ok.status_code == 200 and Tenant.get_by_id(tid).contact == "Mr Wu"
    assert (
        client.patch("/api/v1/tenants/987654", json={"contact": "x"}, headers=h).status_code == 404
    )


def test_an_agreement_is_set_up_and_ended_in_the_console(client, site, now):
    from app.models.operations import RecurringCharge

    acct, _ = site.account()
    create_user("boss", "password123", "manager", actor=SYSTEM, now=now)
    login(client, "boss")
    assert client.get("/agreements/").status_code == 200
    form = {
        "account": acct.number,
        "kind": "rent",
        "name": "Shop rent",
        "amount": "3000",
        "schedule": "monthly",
        "day_of_month": "1",
        "start_date": "2026-11-01",
        "prorate": "1",
    }
    for field, value in (
        ("amount", "0"),
        ("amount", "-5"),
        ("account", "NOPE"),
        ("start_date", "2026-13-01"),
        ("day_of_month", "x"),
    ):
        r = post(client, "/agreements/", {**form, field: value})
        assert r.status_code == 422, (field, value)
    assert not RecurringCharge.select().exists()
    assert post(client, "/agreements/", form).status_code == 303
    charge = RecurringCharge.get()
    assert (charge.amount_fen, charge.day_of_month, charge.name) == (300_000, 1, "Shop rent")
    page = client.get(f"/agreements/?account={acct.number}").text
    assert f'id="agreement-{charge.id}"' in page
    assert (
        post(client, f"/agreements/{charge.id}/end", {"end_date": "2027-06-30"}).status_code == 303
    )
    assert RecurringCharge.get_by_id(charge.id).end_date.isoformat() == "2027-06-30"
    assert AuditLog.get(AuditLog.action == "charge.end")
