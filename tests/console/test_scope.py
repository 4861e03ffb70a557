"""Staff limited to some properties see nothing of the others on any page or export."""

import io

from openpyxl import load_workbook

from app.domain.actors import SYSTEM
from app.domain.sales import sell
from app.domain.users import create_user
from app.models import Tariff
from tests.console.conftest import login
from tests.factories import make_site


def _rows(response) -> str:
    assert response.status_code == 200, response.status_code
    wb = load_workbook(io.BytesIO(response.data), read_only=True)
    return "\n".join(
        " ".join(str(c) for c in row if c is not None)
        for ws in wb
        for row in ws.iter_rows(values_only=True)
    )


def test_a_manager_of_one_property_sees_only_its_tenants_site_tariffs_and_exports(
    client, site, now, clock_at
):
    clock_at(now)  # the sales export's default range is this month so far
    other = make_site(now, code="P2")
    mine, (my_meter,) = site.account()
    theirs, (their_meter,) = other.account()
    sell(mine, amount_fen=1000, method="cash", idempotency_key="m", actor=SYSTEM, now=now)
    sell(theirs, amount_fen=2000, method="cash", idempotency_key="t", actor=SYSTEM, now=now)
    create_user(
        "p1boss", "password123", "manager", property_ids=[site.prop.id], actor=SYSTEM, now=now
    )
    login(client, "p1boss")

    tenants = client.get("/tenants").text
    assert (
        f'/tenants/{mine.tenant_id}"' in tenants and f'/tenants/{theirs.tenant_id}"' not in tenants
    )
    assert client.get(f"/tenants/{mine.tenant_id}").status_code == 200
    assert client.get(f"/tenants/{theirs.tenant_id}").status_code == 404

    tree = client.get("/site").text
    assert (
        f"/site/property/{site.prop.id}" in tree and f"/site/property/{other.prop.id}" not in tree
    )
    assert (
        client.get(f"/site/property/{other.prop.id}", headers={"HX-Request": "true"}).status_code
        == 404
    )

    their_tariff = Tariff.get(Tariff.property == other.prop)
    assert client.get(f"/tariffs/{their_tariff.id}").status_code == 404
    assert f'/tariffs/{their_tariff.id}"' not in client.get("/tariffs").text

    meters = _rows(client.get("/export/meters.xlsx"))
    assert my_meter.serial in meters and their_meter.serial not in meters
    accounts = _rows(client.get("/export/accounts.xlsx"))
    assert mine.number in accounts and theirs.number not in accounts
    sales = _rows(client.get("/export/sales.xlsx"))
    assert mine.number in sales and theirs.number not in sales
    assert client.get(f"/export/readings.xlsx?meter={their_meter.serial}").status_code == 422

    # A manager without property links sees both.
    create_user("boss", "password123", "manager", actor=SYSTEM, now=now)
    login(client, "boss")
    assert f'/tenants/{theirs.tenant_id}"' in client.get("/tenants").text
    assert their_meter.serial in _rows(client.get("/export/meters.xlsx"))


def test_the_overview_of_a_manager_of_one_property_counts_only_that_property(client, site, now):
    other = make_site(now, code="P2")
    mine, _ = site.account()
    theirs, _ = other.account()
    sell(mine, amount_fen=1000, method="cash", idempotency_key="m", actor=SYSTEM, now=now)
    sell(theirs, amount_fen=200_000, method="cash", idempotency_key="t", actor=SYSTEM, now=now)
    create_user(
        "p1boss", "password123", "manager", property_ids=[site.prop.id], actor=SYSTEM, now=now
    )
    create_user("boss", "password123", "manager", actor=SYSTEM, now=now)
    login(client, "p1boss")
    page = client.get("/overview").text
    assert "¥10.00" in page and "¥2,010.00" not in page and "¥2,000.00" not in page
    login(client, "boss")
    assert "¥2,010.00" in client.get("/overview").text
