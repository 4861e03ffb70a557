"""The site tree: property -> building -> floor -> room, loaded level by level."""

from __future__ import annotations

import re

import pytest

from app.domain.actors import SYSTEM
from app.domain.sales import sell
from app.domain.site import add_room
from app.domain.users import create_user
from app.models import Building, Floor
from tests.test_console import login


@pytest.fixture
def users(app, now):
    for role in ("admin", "manager", "cashier", "electrician", "viewer"):
        create_user(role, "password123", role, actor=SYSTEM, now=now)


def test_site_tree_loads_levels_and_shows_rooms_with_tenant_balance_and_status(
    client, users, site, now
):
    paid, (meter,) = site.account()
    sell(paid, amount_fen=10000, method="cash", idempotency_key="s-1", actor=SYSTEM, now=now)
    owing, _ = site.account()  # zero balance, no credit: arrears
    vacant = add_room(site.prop, building="A", floor="1", number="R-EMPTY", actor=SYSTEM, now=now)
    login(client, "electrician")
    top = client.get("/site")
    assert top.status_code == 200 and site.prop.name in top.text
    building = Building.get((Building.property == site.prop) & (Building.name == "A"))
    assert f"/site/property/{site.prop.id}" in top.text
    buildings = client.get(f"/site/property/{site.prop.id}", headers={"HX-Request": "true"})
    assert f"/site/building/{building.id}" in buildings.text and "<html" not in buildings.text
    floor = Floor.get((Floor.building == building) & (Floor.name == "1"))
    floors = client.get(f"/site/building/{building.id}", headers={"HX-Request": "true"})
    assert f"/site/floor/{floor.id}" in floors.text
    rooms = client.get(f"/site/floor/{floor.id}", headers={"HX-Request": "true"}).text

    def row(number):
        return re.search(rf'<tr class="room" data-room="{number}">(.*?)</tr>', rooms, re.S).group(1)

    assert paid.tenant.name in row(paid.room.number) and "¥97.00" in row(paid.room.number)
    assert 'class="badge st-opened"' in row(paid.room.number) and meter.serial in row(
        paid.room.number
    )
    assert 'class="badge st-arrears"' in row(owing.room.number)
    assert re.search(
        r'class="badge st-arrears">\S+</span>', row(owing.room.number)
    )  # a text label too
    assert "st-not_opened" in row(vacant.number)


def test_site_tree_needs_a_login(client, site):
    assert client.get("/site").status_code == 302
